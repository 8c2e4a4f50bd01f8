/**
 * `enclavekit result verify RESULT.json` (issue #11): a result file as `enclavekit run` writes it
 * (run.ts resultFileJson over a real result document and real simulated evidence), re-verified offline,
 * and the ways a file can lie: decoded JSON that is not the attested CBOR, CBOR that is not what was
 * attested, the wrong image, an untrusted simulator root, another job's nonce, a truncated file.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toHex } from '../../attestation/bytes.js';
import { createNitroSimCa, issueNitroDocument } from '../../attestation/sim/nitro.js';
import { simBootPcrs, simSnpMeasurement } from '../../attestation/sim/image.js';
import { createSnpSimChain } from '../../attestation/sim/snp.js';
import { SimSnpPlatform } from '../../enclave/platform/sim-snp.js';
import { encodeResult, queryDigest, resultToJson, sha384, type ResultDocument } from '../../enclave/protocol/index.js';
import { resultFileJson } from '../../host/cli/run.js';
import { firstDifference } from '../../host/cli/result.js';
import type { RunOutcome } from '../../host/run.js';
import { cli } from './helpers.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const IMAGE = new Uint8Array(48).fill(0x5a);
const PCR0 = toHex(simBootPcrs({ imageId: IMAGE }).get(0)!);
const dir = mkdtempSync(join(tmpdir(), 'ek-result-verify-'));
const pem = (der: Uint8Array) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64')}\n-----END CERTIFICATE-----\n`;

const QUERY = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }, { name: 'spend_mean', op: 'mean', field: 'spend' }] };

function resultDoc(platform: ResultDocument['platform'] = 'simulator'): ResultDocument {
  return {
    version: 2,
    jobId: 'job-7f3a',
    datasetId: 'customers',
    datasetDigest: new Uint8Array(48).fill(1),
    sealDigest: new Uint8Array(48).fill(2),
    keyArns: ['arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'],
    query: QUERY,
    queryDigest: queryDigest(QUERY),
    counts: { records: 60, matched: 60, groups: 2, suppressedGroups: 0 },
    groups: [
      { key: ['north'], count: 31, aggregates: { n: 31, spend_mean: 52.25 } },
      { key: ['south'], count: 29, aggregates: { n: 29, spend_mean: 47.5 } },
    ],
    privacy: { minGroupSize: 10, dp: null },
    ledger: { generation: 1, spent: 0 },
    audit: { instance: new Uint8Array(16).fill(3), seq: 0, prev: new Uint8Array(48) },
    platform,
    workerVersion: '0.1.0',
  };
}

/** The file `enclavekit run --out` writes, through its own writer. */
function fileOf(o: { doc: ResultDocument; bytes: Uint8Array; evidence: Uint8Array; nonce: Uint8Array; publicKey: Uint8Array; format: 'nitro' | 'sev-snp'; pcrs?: Record<string, string>; measurement?: string }): Record<string, unknown> {
  const out = {
    ok: true,
    jobId: o.doc.jobId,
    result: o.doc,
    resultBytes: o.bytes,
    resultDigest: toHex(sha384(o.bytes)),
    evidence: o.evidence,
    jobNonce: o.nonce,
    verification: { format: o.format, platform: 'simulator', pcrs: o.pcrs ?? {}, ...(o.measurement ? { measurement: o.measurement } : {}), publicKey: o.publicKey },
  } as unknown as Extract<RunOutcome, { ok: true }>;
  return JSON.parse(JSON.stringify(resultFileJson(out))) as Record<string, unknown>;
}

let nitroFile: Record<string, unknown>;
let nitroBytes: Uint8Array;
let snpFile: Record<string, unknown>;
const SIM_ROOT = join(dir, 'sim-root.pem');
const OTHER_ROOT = join(dir, 'other-root.pem');
const SIM_ARK = join(dir, 'sim-ark.pem');
const NONCE = new Uint8Array(32).fill(0x4e);
const KEY = new Uint8Array(294).fill(0x30);

function write(name: string, content: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return p;
}

beforeAll(async () => {
  const ca = await createNitroSimCa({ now: NOW });
  const other = await createNitroSimCa({ now: NOW });
  writeFileSync(SIM_ROOT, pem(ca.rootDer));
  writeFileSync(OTHER_ROOT, pem(other.rootDer));
  const doc = resultDoc();
  nitroBytes = encodeResult(doc);
  const evidence = await issueNitroDocument(ca, { moduleId: 'i-0sim-enc0', timestamp: NOW, pcrs: simBootPcrs({ imageId: IMAGE }), publicKey: KEY, userData: sha384(nitroBytes), nonce: NONCE });
  const pcrs: Record<string, string> = {};
  for (const [i, v] of simBootPcrs({ imageId: IMAGE })) pcrs[String(i)] = toHex(v);
  nitroFile = fileOf({ doc, bytes: nitroBytes, evidence, nonce: NONCE, publicKey: KEY, format: 'nitro', pcrs });

  const chain = await createSnpSimChain({ now: NOW });
  writeFileSync(SIM_ARK, pem(chain.ark.der));
  const platform = new SimSnpPlatform({ chain, measurement: simSnpMeasurement(IMAGE) });
  const snpBytes = encodeResult(doc);
  const snpEvidence = await platform.attest({ publicKey: KEY, userData: sha384(snpBytes), nonce: NONCE });
  snpFile = fileOf({ doc, bytes: snpBytes, evidence: snpEvidence, nonce: NONCE, publicKey: KEY, format: 'sev-snp', measurement: toHex(simSnpMeasurement(IMAGE)) });
}, 60_000);

const NITRO_OK = () => ['--pcr', `0=${PCR0}`, '--trust-simulator-root', SIM_ROOT];

describe('result verify: a result file from enclavekit run, offline', () => {
  it('Nitro: verifies as of the evidence timestamp; JSON names what was checked', async () => {
    const f = write('nitro.json', nitroFile);
    const r = await cli(['result', 'verify', f, ...NITRO_OK(), '--json']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({
      valid: true,
      jobId: 'job-7f3a',
      datasetId: 'customers',
      resultDigest: toHex(sha384(nitroBytes)),
      platform: 'simulator',
      evidence: { format: 'nitro', platform: 'simulator', publicKey: toHex(KEY) },
      nonce: toHex(NONCE),
      nonceChecked: 'file',
      at: NOW.toISOString(),
      atSource: 'evidence',
    });
    const t = await cli(['result', 'verify', f, ...NITRO_OK(), '--nonce', toHex(NONCE)]);
    expect(t.code).toBe(0);
    expect(t.out).toMatch(/^VALID result .*job job-7f3a over dataset customers \(60 records, 2 groups\)/);
    expect(t.out).toContain('equals --nonce');
    expect(t.out).toContain('NOTE: simulator evidence');
  });

  it('--sim-state DIR trusts the state folder\'s simulator root', async () => {
    const state = join(dir, 'state');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(state, { recursive: true });
    const ca = await createNitroSimCa({ now: NOW });
    const { exportNitroSimCa } = await import('../../attestation/sim/nitro.js');
    writeFileSync(join(state, 'sim-ca.json'), JSON.stringify(await exportNitroSimCa(ca)));
    const doc = resultDoc();
    const bytes = encodeResult(doc);
    const evidence = await issueNitroDocument(ca, { moduleId: 'i-0sim-enc0', timestamp: NOW, pcrs: simBootPcrs({ imageId: IMAGE }), publicKey: KEY, userData: sha384(bytes), nonce: NONCE });
    const f = write('state.json', fileOf({ doc, bytes, evidence, nonce: NONCE, publicKey: KEY, format: 'nitro', pcrs: (nitroFile.verification as { pcrs: Record<string, string> }).pcrs }));
    const r = await cli(['result', 'verify', f, '--pcr', `0=${PCR0}`, '--sim-state', state]);
    expect(r.out).toMatch(/^VALID result/);
    expect(r.code).toBe(0);
    expect((await cli(['result', 'verify', f, '--pcr', `0=${PCR0}`, '--trust-simulator-root', SIM_ROOT])).code).toBe(1);
  });

  it('SEV-SNP: REPORT_DATA recomputed from the file\'s key and nonce and SHA-384(result)', async () => {
    const f = write('snp.json', snpFile);
    const m = toHex(simSnpMeasurement(IMAGE));
    const r = await cli(['result', 'verify', f, '--measurement', m, '--trust-simulator-root', SIM_ARK, '--json'], { now: NOW });
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ valid: true, evidence: { format: 'sev-snp', platform: 'simulator', measurement: m }, nonceChecked: 'file', atSource: 'now' });
    const wrong = await cli(['result', 'verify', f, '--measurement', 'ab'.repeat(48), '--trust-simulator-root', SIM_ARK, '--json'], { now: NOW });
    expect(wrong.code).toBe(1);
    expect((wrong.json().violations as { field: string }[]).map((v) => v.field)).toEqual(['MEASUREMENT']);
    // Without the nonce the binding cannot be recomputed: refused, not skipped.
    const { nonce: _n, ...noNonce } = snpFile;
    const g = write('snp-no-nonce.json', noNonce);
    const nn = await cli(['result', 'verify', g, '--measurement', m, '--trust-simulator-root', SIM_ARK, '--json'], { now: NOW });
    expect(nn.code).toBe(1);
    expect(nn.json()).toMatchObject({ code: 'ERR_RESULT_INVALID', reason: 'binding' });
    expect((await cli(['result', 'verify', g, '--measurement', m, '--trust-simulator-root', SIM_ARK, '--nonce', toHex(NONCE)], { now: NOW })).code).toBe(0);
  });

  it('a file without the nonce (Nitro): verifies, and says the nonce was not checked', async () => {
    const { nonce: _n, ...old } = nitroFile;
    const r = await cli(['result', 'verify', write('old.json', old), ...NITRO_OK(), '--json']);
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ nonce: toHex(NONCE), nonceChecked: false });
  });
});

describe('result verify: negative cases', () => {
  it('the decoded "result" in the file differs from the attested CBOR: exit 1, and where', async () => {
    const tampered = structuredClone(nitroFile) as { result: { groups: { count: number }[] } };
    tampered.result.groups[0]!.count = 310;
    const r = await cli(['result', 'verify', write('json-tampered.json', tampered), ...NITRO_OK(), '--json']);
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ valid: false, code: 'ERR_RESULT_INVALID', reason: 'file_mismatch' });
    expect(r.json().violations).toEqual([{ field: 'result', expected: 'the attested result CBOR, decoded', actual: 'differs at $.groups[0].count' }]);
    // Also the fields beside it: resultDigest and the verification summary.
    const v = structuredClone(nitroFile) as { resultDigest: string; verification: { pcrs: Record<string, string> } };
    v.resultDigest = '00'.repeat(48);
    v.verification.pcrs['0'] = 'ff'.repeat(48);
    const s = await cli(['result', 'verify', write('summary-tampered.json', v), ...NITRO_OK(), '--json']);
    expect(s.code).toBe(1);
    expect((s.json().violations as { field: string }[]).map((x) => x.field)).toEqual(['resultDigest', 'verification.pcrs.0']);
  });

  it('CBOR that is not what was attested: user_data does not match (exit 1); non-canonical CBOR does not decode', async () => {
    const bytes = Buffer.from(nitroBytes);
    const i = bytes.indexOf(Buffer.from('north'));
    bytes[i] = 'N'.charCodeAt(0);
    const swapped = { ...nitroFile, resultCborBase64: bytes.toString('base64'), result: resultToJson({ ...resultDoc(), groups: [{ key: ['North'], count: 31, aggregates: { n: 31, spend_mean: 52.25 } }, resultDoc().groups[1]!] }) };
    const r = await cli(['result', 'verify', write('cbor-tampered.json', swapped), ...NITRO_OK(), '--json']);
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ code: 'ERR_ATTESTATION_POLICY' });
    expect((r.json().violations as { field: string }[]).map((x) => x.field)).toEqual(['user_data']);
    const cut = { ...nitroFile, resultCborBase64: Buffer.from(nitroBytes.subarray(0, nitroBytes.length - 3)).toString('base64') };
    const c = await cli(['result', 'verify', write('cbor-cut.json', cut), ...NITRO_OK(), '--json']);
    expect(c.code).toBe(1);
    expect(c.json()).toMatchObject({ code: 'ERR_RESULT_INVALID' });
  });

  it('the wrong PCR: exit 1 with the violation', async () => {
    const r = await cli(['result', 'verify', write('nitro.json', nitroFile), '--pcr', `0=${'ab'.repeat(48)}`, '--trust-simulator-root', SIM_ROOT, '--json']);
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ code: 'ERR_ATTESTATION_POLICY', violations: [{ field: 'PCR0', actual: PCR0 }] });
  });

  it('an untrusted simulator root: without the flag, or another simulator\'s root (exit 1)', async () => {
    const f = write('nitro.json', nitroFile);
    for (const extra of [[], ['--trust-simulator-root', OTHER_ROOT]]) {
      const r = await cli(['result', 'verify', f, '--pcr', `0=${PCR0}`, ...extra, '--json']);
      expect(r.code).toBe(1);
      expect(r.json()).toMatchObject({ code: 'ERR_NITRO_CHAIN_INVALID', reason: 'untrusted_root' });
    }
    const snp = await cli(['result', 'verify', write('snp.json', snpFile), '--measurement', toHex(simSnpMeasurement(IMAGE)), '--json'], { now: NOW });
    expect(snp.code).toBe(1);
    expect(snp.json()).toMatchObject({ code: 'ERR_SNP_CHAIN_INVALID' });
  });

  it('another job\'s nonce, by --nonce or in the file: exit 1', async () => {
    const f = write('nitro.json', nitroFile);
    const r = await cli(['result', 'verify', f, ...NITRO_OK(), '--nonce', 'aa'.repeat(32), '--json']);
    expect(r.code).toBe(1);
    expect((r.json().violations as { field: string }[]).map((x) => x.field)).toEqual(['nonce', 'nonce']);
    const g = write('nonce-swapped.json', { ...nitroFile, nonce: 'bb'.repeat(32) });
    const s = await cli(['result', 'verify', g, ...NITRO_OK(), '--json']);
    expect(s.code).toBe(1);
    expect((s.json().violations as { field: string }[]).map((x) => x.field)).toEqual(['nonce']);
  });

  it('a truncated or foreign file is not a result file: exit 2 with a message', async () => {
    const text = readFileSync(write('nitro.json', nitroFile), 'utf8');
    const r = await cli(['result', 'verify', write('truncated.json', text.slice(0, Math.floor(text.length / 2))), ...NITRO_OK(), '--json']);
    expect(r.code).toBe(2);
    expect(r.json()).toMatchObject({ ok: false, code: 'ERR_INPUT' });
    expect(r.err).toMatch(/is not a result file written by `enclavekit run --out`: not JSON .*truncated\?/);
    expect((await cli(['result', 'verify', write('array.json', '[]'), ...NITRO_OK()])).code).toBe(2);
    expect((await cli(['result', 'verify', write('no-evidence.json', { ...nitroFile, evidenceBase64: undefined }), ...NITRO_OK()])).code).toBe(2);
    expect((await cli(['result', 'verify', join(dir, 'absent.json'), ...NITRO_OK()])).code).toBe(2);
  });

  it('no expected image is a usage error (exit 2): a result is only as good as the image it is bound to', async () => {
    const r = await cli(['result', 'verify', write('nitro.json', nitroFile), '--trust-simulator-root', SIM_ROOT]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--pcr/);
  });

  it('firstDifference: key order does not matter, values and shapes do', () => {
    expect(firstDifference({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 })).toBeUndefined();
    expect(firstDifference({ a: 1 }, { a: 1, b: null })).toBe('$.b');
    expect(firstDifference([1, 2], [1, 2, 3])).toBe('$.length');
    expect(firstDifference({ a: '1' }, { a: 1 })).toBe('$.a');
  });
});
