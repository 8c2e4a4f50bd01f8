/** verifyEvidence: one entry point, format detected, one claims shape for Nitro and SEV-SNP. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { verifyEvidence } from '../../attestation/sevsnp/node.js';
import { verifyEvidence as verifyEvidencePure } from '../../attestation/sevsnp/pure.js';
import { detectEvidenceFormat } from '../../attestation/evidence.js';
import { toHex } from '../../attestation/bytes.js';
import { vecFile } from './_vectors.js';

const nitroDoc = new Uint8Array(readFileSync(fileURLToPath(new URL('../vectors/nitro/base-1.cose', import.meta.url))));
const nitroAt = new Date('2026-01-03T20:41:07Z');
const snpReport = vecFile('oak-2.report.bin');
const snpVcek = vecFile('oak-2.vcek.der');
const snpAt = new Date('2025-09-01T00:00:00Z');

describe.each([
  ['node', verifyEvidence],
  ['pure', verifyEvidencePure],
] as const)('verifyEvidence (%s)', (_n, verify) => {
  it('verifies a real Nitro document with the common claims shape', () => {
    const e = verify(nitroDoc, { now: nitroAt, nitro: { cache: false } });
    expect(e.format).toBe('nitro');
    expect(e.platform).toBe('nitro');
    expect(e.measurements.get('PCR0')!.length).toBe(48);
    expect(e.validUntil).toBeInstanceOf(Date);
    expect(e.details.format).toBe('nitro');
    expect(e.reportData).toBeUndefined();
  });

  it('verifies a real SEV-SNP report (certs inline or in options) with the same shape', () => {
    const a = verify({ evidence: snpReport, certs: { vcek: snpVcek } }, { now: snpAt, snp: { cache: false } });
    const b = verify(snpReport, { now: snpAt, snp: { certs: { vcek: snpVcek }, cache: false } });
    for (const e of [a, b]) {
      expect(e.format).toBe('sev-snp');
      expect(e.platform).toBe('sev-snp');
      expect(toHex(e.measurements.get('MEASUREMENT')!)).toBe(toHex(snpReport.subarray(0x90, 0xc0)));
      expect(toHex(e.reportData!)).toBe(toHex(snpReport.subarray(0x50, 0x90)));
      expect(e.details.format).toBe('sev-snp');
      expect(e.nonce).toBeUndefined();
    }
  });

  it('passes policies through and honours `expect`', () => {
    expect(() => verify(snpReport, { now: snpAt, snp: { certs: { vcek: snpVcek }, cache: false, policy: { measurement: '00'.repeat(48) } } })).toThrow(
      expect.objectContaining({ code: 'ERR_ATTESTATION_POLICY' }),
    );
    expect(() => verify(snpReport, { now: snpAt, expect: 'nitro', snp: { certs: { vcek: snpVcek } } })).toThrow(
      expect.objectContaining({ code: 'ERR_EVIDENCE_FORMAT', reason: 'unexpected_format' }),
    );
  });
});

describe('detectEvidenceFormat', () => {
  it('tells the formats apart and rejects anything else with ERR_EVIDENCE_FORMAT', () => {
    expect(detectEvidenceFormat(nitroDoc)).toBe('nitro');
    expect(detectEvidenceFormat(snpReport)).toBe('sev-snp');
    for (const b of [new Uint8Array(0), new Uint8Array(0x4a0), snpReport.subarray(1), new Uint8Array([0xa0])])
      expect(() => detectEvidenceFormat(b)).toThrow(expect.objectContaining({ code: 'ERR_EVIDENCE_FORMAT' }));
  });
  it('a Nitro-looking prefix goes to the Nitro parser, which rejects it with a Nitro code', () => {
    expect(() => verifyEvidence(new Uint8Array([0x84, 0x40, 0xa0, 0x40, 0x40]), { now: nitroAt })).toThrow(
      expect.objectContaining({ code: expect.stringMatching(/^ERR_NITRO_/) }),
    );
  });
});
