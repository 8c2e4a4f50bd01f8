/**
 * Every real report in test/vectors/sev-snp verifies with its own VCEK/VLEK and the built-in AMD
 * roots, on both crypto backends, at a time inside its certificates' validity; plus the real-world
 * negative cases sev-snp.md §6 suggests.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nodeCrypto } from '../../attestation/crypto/node.js';
import { nobleCrypto } from '../../attestation/crypto/noble.js';
import { verifySevSnpWith, SnpChainCache } from '../../attestation/sevsnp/verify.js';
import { verifySevSnp } from '../../attestation/sevsnp/node.js';
import { amdRoots } from '../../attestation/sevsnp/roots.js';
import { pemToDer, parseAmdCert } from '../../attestation/sevsnp/cert.js';
import { toHex } from '../../attestation/bytes.js';
import { loadVectors, vecFile } from './_vectors.js';

const vectors = loadVectors();
const byId = (id: string) => vectors.find((v) => v.id === id)!;
const certsOf = (v: (typeof vectors)[number]) => (v.kind === 'vlek' ? { vlek: v.leaf } : { vcek: v.leaf });
const allowDebug = { guestPolicy: { allowDebug: true } };

describe('AMD roots', () => {
  // SHA-256 of the DER as published in sev-snp.md §3.1 (identical in go-sev-guest, virtee/sev, trustee, oak).
  const published = {
    Milan: {
      ark: '69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd',
      ask: '67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b',
      asvk: 'c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5',
    },
    Genoa: {
      ark: '4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1',
      ask: '5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521',
      asvk: '197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372',
    },
    Turin: {
      ark: '1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a',
      ask: '5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185',
      asvk: '104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c',
    },
  } as const;
  const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  for (const product of ['Milan', 'Genoa', 'Turin'] as const) {
    for (const kind of ['ark', 'ask', 'asvk'] as const) {
      it(`${kind}-${product.toLowerCase()}: PEM file and TS constant both match AMD's fingerprint`, () => {
        const pem = readFileSync(
          fileURLToPath(new URL(`../../attestation/sevsnp/roots/${kind}-${product.toLowerCase()}.pem`, import.meta.url)),
          'utf8',
        );
        const [der] = pemToDer(pem);
        expect(sha256(der!)).toBe(published[product][kind]);
        expect(sha256(amdRoots()[product][kind])).toBe(published[product][kind]);
      });
    }
  }

  it('KDS cert_chain bodies (Turin with CRLF) split into intermediate then ARK, equal to the pinned ones', () => {
    for (const p of ['milan', 'genoa', 'turin'] as const) {
      const P = (p[0]!.toUpperCase() + p.slice(1)) as 'Milan' | 'Genoa' | 'Turin';
      const vcekChain = pemToDer(new TextDecoder().decode(vecFile(`cert_chain-${p}.pem`)));
      const vlekChain = pemToDer(new TextDecoder().decode(vecFile(`cert_chain-vlek-${p}.pem`)));
      expect(toHex(vcekChain[0]!)).toBe(toHex(amdRoots()[P].ask));
      expect(toHex(vcekChain[1]!)).toBe(toHex(amdRoots()[P].ark));
      expect(toHex(vlekChain[0]!)).toBe(toHex(amdRoots()[P].asvk));
    }
    expect(new TextDecoder().decode(vecFile('cert_chain-turin.pem'))).toContain('\r\n');
  });
});

describe.each([nodeCrypto, nobleCrypto])('real reports, $name backend', (crypto) => {
  for (const v of vectors) {
    it(`${v.id} (${v.product} v${v.version} ${v.kind.toUpperCase()}) verifies with the built-in roots`, () => {
      const r = verifySevSnpWith(v.report, certsOf(v), { now: v.at, crypto, cache: false, policy: allowDebug });
      expect(r.format).toBe('sev-snp');
      expect(r.platform).toBe('sev-snp');
      expect(r.product).toBe(v.product);
      expect(r.signingKey).toBe(v.kind.toUpperCase());
      expect(toHex(r.measurement)).toBe(v.meta.measurement);
      expect(toHex(r.reportData)).toBe(v.meta.report_data);
      expect(toHex(r.chipId)).toBe(v.meta.chip_id);
      expect(r.vmpl).toBe(v.meta.vmpl);
      expect(toHex(r.tcb.reported.raw)).toBe(v.meta.reported_tcb.raw_le_bytes);
      expect(r.tcb.reported.microcode).toBe(v.meta.reported_tcb.microcode);
      expect(r.tcb.reported.snp).toBe(v.meta.reported_tcb.snp);
      expect(Object.isFrozen(r)).toBe(true);
    });
  }
});

describe('real-world negative cases', () => {
  const opts = (at: Date) => ({ now: at, cache: false as const, policy: allowDebug });

  it('the AWS VLEK sample expires on 2025-12-10', () => {
    const v = byId('trustee-vlek-1');
    expect(verifySevSnp(v.report, certsOf(v), opts(new Date('2025-12-09T00:00:00Z'))).cspId).toBe('CN=cc-us-east-2.amazonaws.com');
    expect(() => verifySevSnp(v.report, certsOf(v), opts(new Date('2025-12-11T00:00:00Z')))).toThrow(
      expect.objectContaining({ code: 'ERR_SNP_CHAIN_INVALID', reason: 'expired' }),
    );
  });

  it('a VLEK outside the allowed cspID list is refused', () => {
    const v = byId('trustee-vlek-1');
    expect(() => verifySevSnp(v.report, certsOf(v), { ...opts(v.at), allowedCspIds: ['CN=other'] })).toThrow(
      expect.objectContaining({ code: 'ERR_SNP_BINDING_INVALID', reason: 'csp_id' }),
    );
  });

  it('debug guests (gsg-1) are refused by the default policy', () => {
    const v = byId('gsg-1');
    expect(() => verifySevSnp(v.report, certsOf(v), { now: v.at, cache: false })).toThrow(
      expect.objectContaining({ code: 'ERR_ATTESTATION_POLICY', violations: [{ field: 'POLICY.DEBUG', expected: '0', actual: '1' }] }),
    );
  });

  it('another chip\'s VCEK (same TCB) fails the hwID binding or the signature', () => {
    const a = byId('oak-3');
    const b = byId('oak-4');
    expect(() => verifySevSnp(a.report, { vcek: b.leaf }, opts(a.at))).toThrow(
      expect.objectContaining({ code: 'ERR_SNP_SIGNATURE_INVALID' }),
    );
  });

  it('a VCEK from a different TCB is rejected', () => {
    const a = byId('trustee-az-2'); // uc219
    const b = byId('trustee-1'); // uc115, another chip
    expect(() => verifySevSnp(a.report, { vcek: b.leaf }, opts(a.at))).toThrow(expect.objectContaining({ code: 'ERR_SNP_SIGNATURE_INVALID' }));
  });

  it('the Turin sample read as Milan (explicit product) is refused: products disagree', () => {
    const v = byId('oak-1');
    expect(() => verifySevSnp(v.report, certsOf(v), { ...opts(v.at), product: 'Milan' })).toThrow(
      expect.objectContaining({ code: 'ERR_SNP_CHAIN_INVALID', reason: 'product_mismatch' }),
    );
  });

  it('the Milan ARK does not anchor a Genoa report', () => {
    const v = byId('oak-2');
    expect(() => verifySevSnp(v.report, certsOf(v), { ...opts(v.at), roots: [amdRoots().Milan.ark] })).toThrow(
      expect.objectContaining({ code: 'ERR_SNP_CHAIN_INVALID', reason: 'no_root' }),
    );
    expect(() => verifySevSnp(v.report, { ...certsOf(v), ark: amdRoots().Milan.ark }, opts(v.at))).toThrow(
      expect.objectContaining({ code: 'ERR_SNP_CHAIN_INVALID', reason: 'ark_not_trusted' }),
    );
    expect(() => verifySevSnp(v.report, { ...certsOf(v), ask: amdRoots().Milan.ask }, opts(v.at))).toThrow(
      expect.objectContaining({ code: 'ERR_SNP_CHAIN_INVALID', reason: 'intermediate_name' }),
    );
  });

  it('a v2 report with a VCEK takes its product from productName; an explicit product must agree', () => {
    const v = byId('virtee-1');
    expect(verifySevSnp(v.report, certsOf(v), { ...opts(v.at), product: 'Milan' }).product).toBe('Milan');
    expect(() => verifySevSnp(v.report, certsOf(v), { ...opts(v.at), product: 'Genoa' })).toThrow(
      expect.objectContaining({ reason: 'product_mismatch' }),
    );
  });

  it('real leaves have serial 0 and raw hwID bytes; Turin hwID is 8 bytes', () => {
    const t = parseAmdCert(byId('oak-1').leaf);
    expect(t.serialHex).toBe('00');
    expect(t.amd.hwID!.length).toBe(8);
    expect(t.amd.fmcSPL).toBe(0);
    const m = parseAmdCert(byId('virtee-1').leaf);
    expect(m.amd.hwID!.length).toBe(64);
    expect(m.amd.productName).toBe('Milan-B0');
  });

  it('reports with provisional microcode (current != committed) verify unless the policy asks for equality', () => {
    const v = byId('trustee-1');
    expect(toHex(v.report.subarray(0x38, 0x40))).not.toBe(toHex(v.report.subarray(0x1e0, 0x1e8)));
    expect(() => verifySevSnp(v.report, certsOf(v), { ...opts(v.at), policy: { requireCommittedEqualsCurrent: true } })).toThrow(
      expect.objectContaining({ code: 'ERR_ATTESTATION_POLICY' }),
    );
  });

  it('flipping a signed byte, an r/s byte, or r padding is rejected', () => {
    const v = byId('oak-2');
    const flip = (i: number) => {
      const b = v.report.slice();
      b[i]! ^= 1;
      return b;
    };
    expect(() => verifySevSnp(flip(0x90), certsOf(v), opts(v.at))).toThrow(expect.objectContaining({ code: 'ERR_SNP_SIGNATURE_INVALID' }));
    expect(() => verifySevSnp(flip(0x2a0), certsOf(v), opts(v.at))).toThrow(expect.objectContaining({ code: 'ERR_SNP_SIGNATURE_INVALID' }));
    expect(() => verifySevSnp(flip(0x2e8 + 5), certsOf(v), opts(v.at))).toThrow(expect.objectContaining({ code: 'ERR_SNP_SIGNATURE_INVALID' }));
    expect(() => verifySevSnp(flip(0x2d0), certsOf(v), opts(v.at))).toThrow(
      expect.objectContaining({ code: 'ERR_SNP_REPORT_INVALID', reason: 'signature_r_padding' }),
    );
  });

  it('a warm verification reuses the chain and still checks the report signature and time', () => {
    const v = byId('oak-1');
    const cache = new SnpChainCache();
    verifySevSnp(v.report, certsOf(v), { now: v.at, cache });
    expect(cache.size).toBe(1);
    expect(verifySevSnp(v.report, certsOf(v), { now: v.at, cache }).product).toBe('Turin');
    const bad = v.report.slice();
    bad[0x50]! ^= 1;
    expect(() => verifySevSnp(bad, certsOf(v), { now: v.at, cache })).toThrow(expect.objectContaining({ code: 'ERR_SNP_SIGNATURE_INVALID' }));
    expect(() => verifySevSnp(v.report, certsOf(v), { now: new Date('2040-01-01T00:00:00Z'), cache })).toThrow(
      expect.objectContaining({ reason: 'expired' }),
    );
  });
});
