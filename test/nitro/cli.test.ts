/** `enclavekit verify` through its run() with a fake CliIO: exit codes and JSON. */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { run } from '../../host/cli/verify.js';
import { UsageError, type CliIO } from '../../host/cli/io.js';
import { createNitroSimCa, issueNitroDocument } from '../../attestation/sim/nitro.js';
import { toHex } from '../../attestation/bytes.js';
import { VEC, PROD_PCRS, pcr } from './helpers.js';

function fakeIO(stdin: Uint8Array | string = ''): { io: CliIO; out: () => string; err: () => string } {
  const o = new PassThrough();
  const e = new PassThrough();
  let out = '';
  let err = '';
  o.on('data', (c) => (out += c));
  e.on('data', (c) => (err += c));
  const io: CliIO = { stdout: o, stderr: e, stdin: Readable.from([Buffer.from(stdin)]), env: {}, now: () => new Date('2030-01-01T00:00:00Z') };
  return { io, out: () => out, err: () => err };
}

/** run() but with UsageError mapped to 2 as main.ts does. */
async function exec(argv: string[], stdin?: Uint8Array | string) {
  const f = fakeIO(stdin);
  let code: number;
  try {
    code = await run(argv, f.io);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    code = 2;
  }
  return { code, out: f.out(), json: () => JSON.parse(f.out()) };
}

const BLOCKY = VEC + 'blocky-1.cose';
const AT = ['--at', '2024-09-07T15:00:00Z'];
const dir = mkdtempSync(join(tmpdir(), 'enclavekit-verify-'));

describe('enclavekit verify (Nitro)', () => {
  it('a real document verifies at its time: exit 0 and the JSON claims', async () => {
    const r = await exec([BLOCKY, ...AT, '--json']);
    expect(r.code).toBe(0);
    const j = r.json();
    expect(j).toMatchObject({ valid: true, format: 'nitro', platform: 'nitro' });
    expect(j.claims.moduleId).toBe('i-0a22e5c5f24d22174-enc0191cceb4289903f');
    expect(j.claims.timestamp).toBe('2024-09-07T14:37:39.545Z');
    expect(j.claims.pcrs['0']).toBe('e72a46ca80a260fb044a125442f0c7e331813bcbaf9724d9f3857758992766f2d65710a27aa94ae3949dd54e7c9fe86a');
    expect(j.claims.nonce).toBe('01'.repeat(1024));
    expect(j.claims.validUntil).toBe('2024-09-07T17:37:39.000Z');
    expect(j.claims.chain).toHaveLength(5);
  });

  it('without --at the injected clock is used, and the expired document is invalid: exit 1', async () => {
    const r = await exec([BLOCKY, '--json']);
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ valid: false, code: 'ERR_NITRO_CHAIN_INVALID', reason: 'expired', violations: [] });
  });

  it('readable summary by default', async () => {
    const r = await exec([BLOCKY, ...AT]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^VALID nitro evidence \(platform: nitro\)/);
    expect(r.out).toContain('PCR0');
  });

  it('hex and base64 input, and standard input', async () => {
    const raw = new Uint8Array(readFileSync(BLOCKY));
    const hexFile = join(dir, 'doc.hex');
    writeFileSync(hexFile, toHex(raw));
    expect((await exec([hexFile, ...AT])).code).toBe(0);
    expect((await exec(['-', ...AT, '--json'], Buffer.from(raw).toString('base64'))).code).toBe(0);
    expect((await exec(['-', ...AT], raw)).code).toBe(0);
  });

  it('--pcr / --nonce / --user-data violations are all reported: exit 1', async () => {
    const r = await exec([BLOCKY, ...AT, '--json', '--pcr', `0=${'00'.repeat(48)}`, '--pcr', `1=${'11'.repeat(48)}`, '--nonce', '02', '--user-data', '03']);
    expect(r.code).toBe(1);
    const j = r.json();
    expect(j.code).toBe('ERR_ATTESTATION_POLICY');
    expect(j.violations.map((v: { field: string }) => v.field)).toEqual(['PCR0', 'PCR1', 'nonce', 'user_data']);
  });

  it('a repeated --pcr index allows any of the values', async () => {
    const pcr0 = 'e72a46ca80a260fb044a125442f0c7e331813bcbaf9724d9f3857758992766f2d65710a27aa94ae3949dd54e7c9fe86a';
    expect((await exec([BLOCKY, ...AT, '--pcr', `0=${'00'.repeat(48)}`, '--pcr', `0=${pcr0.toUpperCase()}`])).code).toBe(0);
  });

  it('--policy JSON: matching passes, unknown keys are a usage error (exit 2)', async () => {
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ pcrs: { '4': '45706d7b621e4620a332e147a5ddb000b049f73d47d3e61f6b03d2069152d4df6a4a786ad1c10102b955799a9dc96b44' }, nonce: '01'.repeat(1024), maxAgeSeconds: 3600 }));
    expect((await exec([BLOCKY, ...AT, '--policy', good])).code).toBe(0);
    const unknown = join(dir, 'unknown.json');
    writeFileSync(unknown, JSON.stringify({ pcr: {} }));
    expect((await exec([BLOCKY, ...AT, '--policy', unknown])).code).toBe(2);
    const badHex = join(dir, 'badhex.json');
    writeFileSync(badHex, JSON.stringify({ nonce: 'zz' }));
    expect((await exec([BLOCKY, ...AT, '--policy', badHex])).code).toBe(2);
    const notJson = join(dir, 'not.json');
    writeFileSync(notJson, '{');
    expect((await exec([BLOCKY, ...AT, '--policy', notJson])).code).toBe(2);
    const old = join(dir, 'old.json');
    writeFileSync(old, JSON.stringify({ maxAgeSeconds: 60 }));
    const r = await exec([BLOCKY, ...AT, '--policy', old, '--json']);
    expect(r.code).toBe(1);
    expect(r.json().violations[0].field).toBe('timestamp');
  });

  it('debug documents need --allow-debug (or allowDebug in the policy file)', async () => {
    const dbg = [VEC + 'blocky-2.cose', ...AT];
    expect((await exec(dbg)).code).toBe(1);
    expect((await exec([...dbg, '--allow-debug'])).code).toBe(0);
    const p = join(dir, 'dbg.json');
    writeFileSync(p, JSON.stringify({ allowDebug: true }));
    expect((await exec([...dbg, '--policy', p])).code).toBe(0);
  });

  it('--root replaces the AWS root: a simulator document verifies only with its root, and says so', async () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const ca = await createNitroSimCa({ now });
    const doc = await issueNitroDocument(ca, { moduleId: 'i-0-enc0', timestamp: now, pcrs: PROD_PCRS(), nonce: pcr(5, 8) });
    const f = join(dir, 'sim.cose');
    writeFileSync(f, doc);
    const pem = join(dir, 'sim-root.pem');
    writeFileSync(pem, `-----BEGIN CERTIFICATE-----\n${Buffer.from(ca.rootDer).toString('base64')}\n-----END CERTIFICATE-----\n`);
    const bad = await exec([f, '--json']);
    expect(bad.code).toBe(1);
    expect(bad.json().reason).toBe('untrusted_root');
    const ok = await exec([f, '--root', pem, '--json']);
    expect(ok.code).toBe(0);
    // Passed with --root it is trusted as a root, so the platform is whatever the caller pinned.
    expect(ok.json().claims.nonce).toBe('05'.repeat(8));
    // The AWS document now fails: --root replaced the built-in root.
    expect((await exec([BLOCKY, ...AT, '--root', pem, '--json'])).json().reason).toBe('untrusted_root');
    // --simulator-root trusts it in addition to the AWS root, labelled as the simulator.
    const sim = await exec([f, '--simulator-root', pem, '--json']);
    expect(sim.code).toBe(0);
    expect(sim.json()).toMatchObject({ valid: true, platform: 'simulator' });
    expect((await exec([BLOCKY, ...AT, '--simulator-root', pem, '--json'])).json()).toMatchObject({ valid: true, platform: 'nitro' });
  });

  it('usage errors exit 2: no file, missing file, bad --at, bad --pcr, unknown flag', async () => {
    expect((await exec([])).code).toBe(2);
    expect((await exec([BLOCKY, '--at', 'yesterday'])).code).toBe(2);
    expect((await exec([BLOCKY, '--pcr', '32=00'])).code).toBe(2);
    expect((await exec([BLOCKY, '--pcr', '0=xyz'])).code).toBe(2);
    expect((await exec([BLOCKY, '--frobnicate'])).code).toBe(2);
    await expect(run([join(dir, 'missing.cose')], fakeIO().io)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('garbage evidence that looks like CBOR is invalid (exit 1) with an ERR_ code', async () => {
    const f = join(dir, 'junk.bin');
    writeFileSync(f, Uint8Array.of(0x84, 0x01, 0x02));
    const r = await exec([f, '--json']);
    expect(r.code).toBe(1);
    expect(r.json().code).toBe('ERR_NITRO_DOC_INVALID');
  });

  it('non-CBOR input is handed to the SEV-SNP verifier', async () => {
    const f = join(dir, 'report.bin');
    writeFileSync(f, new Uint8Array(0x4a0));
    const r = await exec([f, '--json']);
    // Whatever verify-snp.ts decides, it is a verdict or a usage error, not a Nitro parse error.
    expect([1, 2]).toContain(r.code);
    if (r.out) expect(r.out).not.toContain('ERR_NITRO');
  });
});
