/**
 * `enclavekit verify` (issue #11): several FILEs in one process, `--public-key` and `--max-age`, the
 * SEV-SNP flags in `--help`, debug-mode documents marked, and the validity window of expired evidence.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VERIFY_OPTIONS } from '../../host/cli/verify-common.js';
import { NITRO_VEC, SNP_VEC, cli } from './helpers.js';

const BLOCKY = NITRO_VEC + 'blocky-1.cose';
const DEBUG_DOC = NITRO_VEC + 'blocky-2.cose';
const BAD_SIG = NITRO_VEC + 'eternis-invalid-1.cose';
const AT = ['--at', '2024-09-07T15:00:00Z'];
const dir = mkdtempSync(join(tmpdir(), 'ek-cli-verify-'));

describe('verify FILE...: many documents in one process', () => {
  it('one JSON line per FILE, each naming its file; exit 0 when all verify', async () => {
    const r = await cli(['verify', BLOCKY, BLOCKY, '--allow-debug', DEBUG_DOC, ...AT, '--json']);
    expect(r.code).toBe(0);
    const lines = r.lines();
    expect(lines.map((l) => [l.file, l.valid])).toEqual([
      [BLOCKY, true],
      [BLOCKY, true],
      [DEBUG_DOC, true],
    ]);
    expect((lines[0]!.claims as { moduleId: string }).moduleId).toBe('i-0a22e5c5f24d22174-enc0191cceb4289903f');
  });

  it('the exit status is the worst of them: 1 for an invalid document, 2 for an unreadable FILE', async () => {
    const one = await cli(['verify', BLOCKY, DEBUG_DOC, ...AT, '--json']);
    expect(one.code).toBe(1);
    expect(one.lines().map((l) => [l.valid, l.code ?? null])).toEqual([
      [true, null],
      [false, 'ERR_ATTESTATION_POLICY'],
    ]);
    const two = await cli(['verify', BLOCKY, join(dir, 'missing.cose'), DEBUG_DOC, ...AT, '--json']);
    expect(two.code).toBe(2);
    const lines = two.lines();
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatchObject({ file: join(dir, 'missing.cose'), valid: false, code: 'ERR_INPUT', reason: 'ENOENT' });
    expect(lines[2]).toMatchObject({ file: DEBUG_DOC, valid: false });
  });

  it('readable output names each file; invalid evidence (bad signature) is reported and the rest still run', async () => {
    const r = await cli(['verify', BAD_SIG, BLOCKY, '--at', '2024-07-23T21:30:00Z', '--allow-debug']);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${BAD_SIG}: INVALID: ERR_NITRO_SIGNATURE_INVALID`);
    // blocky-1 is outside its window at that time: reported against its own file.
    expect(r.out).toContain(`${BLOCKY}: INVALID: ERR_NITRO_CHAIN_INVALID (not_yet_valid)`);
  });

  it('a bad flag stops the whole run (exit 2) instead of failing every file', async () => {
    const r = await cli(['verify', BLOCKY, BLOCKY, ...AT, '--pcr', '0=zz', '--json']);
    expect(r.code).toBe(2);
    expect(r.lines().filter((l) => 'file' in l)).toEqual([]);
    const twice = await cli(['verify', '-', '-', ...AT]);
    expect(twice.code).toBe(2);
  });

  it('flag values are not mistaken for FILEs (flags may come first)', async () => {
    const r = await cli(['verify', '--at', '2024-09-07T15:00:00Z', '--json', BLOCKY]);
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ valid: true });
  });
});

describe('verify flags', () => {
  it('--public-key: the policy file has publicKey, so the flag exists', async () => {
    const pk = '01'.repeat(1024);
    expect((await cli(['verify', BLOCKY, ...AT, '--public-key', pk])).code).toBe(0);
    const bad = await cli(['verify', BLOCKY, ...AT, '--public-key', '02', '--json']);
    expect(bad.code).toBe(1);
    expect(bad.json().violations).toEqual([expect.objectContaining({ field: 'public_key', expected: '02' })]);
  });

  it('--max-age SECONDS bounds the document age at --at (blocky-1 is 1340 s old at 15:00)', async () => {
    expect((await cli(['verify', BLOCKY, ...AT, '--max-age', '3600'])).code).toBe(0);
    const old = await cli(['verify', BLOCKY, ...AT, '--max-age', '60', '--json']);
    expect(old.code).toBe(1);
    expect((old.json().violations as { field: string }[]).map((v) => v.field)).toEqual(['timestamp']);
    expect((await cli(['verify', BLOCKY, ...AT, '--max-age', '1.5'])).code).toBe(2);
    expect((await cli(['verify', BLOCKY, ...AT, '--max-age', '0'])).code).toBe(2);
  });

  it('a flag of the other evidence format is a usage error that says so', async () => {
    const r = await cli(['verify', BLOCKY, ...AT, '--measurement', 'aa'.repeat(48)]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--measurement: SEV-SNP flag\(s\), but the evidence is a Nitro document/);
    const s = await cli(['verify', SNP_VEC + 'oak-2.report.bin', '--cert', SNP_VEC + 'oak-2.vcek.der', '--pcr', `0=${'00'.repeat(48)}`]);
    expect(s.code).toBe(2);
    expect(s.err).toMatch(/--pcr: Nitro flag\(s\), but the evidence is an SEV-SNP report/);
  });

  it('--help lists every flag, the SEV-SNP ones included', async () => {
    const r = await cli(['verify', '--help']);
    expect(r.code).toBe(0);
    for (const flag of Object.keys(VERIFY_OPTIONS)) expect(r.out).toContain(`--${flag}`);
    expect(r.out).toMatch(/SEV-SNP reports/);
  });
});

describe('debug-mode evidence accepted with --allow-debug is marked', () => {
  it('Nitro: claims.debug in JSON, a marker and a note in text', async () => {
    const j = await cli(['verify', DEBUG_DOC, ...AT, '--allow-debug', '--json']);
    expect(j.code).toBe(0);
    expect((j.json().claims as { debug: boolean }).debug).toBe(true);
    const prod = await cli(['verify', BLOCKY, ...AT, '--json']);
    expect((prod.json().claims as { debug: boolean }).debug).toBe(false);
    const t = await cli(['verify', DEBUG_DOC, ...AT, '--allow-debug']);
    expect(t.out).toMatch(/^VALID nitro evidence \(platform: nitro\) \[DEBUG MODE\]/);
    expect(t.out).toMatch(/NOTE: a debug-mode enclave .*--allow-debug/);
    expect((await cli(['verify', BLOCKY, ...AT])).out).not.toMatch(/DEBUG/);
  });

  it('SEV-SNP (gsg-1 is a debuggable guest)', async () => {
    const args = ['verify', SNP_VEC + 'gsg-1.report.bin', '--cert', SNP_VEC + 'gsg-1.vcek.der', '--at', '2022-10-01T00:00:00Z', '--allow-debug'];
    const j = await cli([...args, '--json']);
    expect(j.code).toBe(0);
    expect((j.json().claims as { debug: boolean }).debug).toBe(true);
    const t = await cli(args);
    expect(t.out).toMatch(/\[DEBUG MODE\]/);
    expect(t.out).toMatch(/NOTE: a debuggable guest \(POLICY\.DEBUG\)/);
    const oak = await cli(['verify', SNP_VEC + 'oak-2.report.bin', '--cert', SNP_VEC + 'oak-2.vcek.der', '--json'], { now: new Date('2025-09-01T00:00:00Z') });
    expect((oak.json().claims as { debug: boolean }).debug).toBe(false);
  });
});

describe('expired evidence without --at: its own validity window, and --at suggested', () => {
  it('Nitro: the window and issue time in text and JSON; the suggested --at verifies', async () => {
    const t = await cli(['verify', BLOCKY]);
    expect(t.code).toBe(1);
    expect(t.out).toContain('INVALID: ERR_NITRO_CHAIN_INVALID (expired)');
    expect(t.out).toContain('valid from 2024-09-07T14:37:36.000Z to 2024-09-07T17:37:39.000Z, issued 2024-09-07T14:37:39.545Z');
    expect(t.out).toContain('it was checked at the current time');
    const j = await cli(['verify', BLOCKY, '--json']);
    expect(j.json()).toMatchObject({
      valid: false,
      code: 'ERR_NITRO_CHAIN_INVALID',
      reason: 'expired',
      validity: { notBefore: '2024-09-07T14:37:36.000Z', notAfter: '2024-09-07T17:37:39.000Z', timestamp: '2024-09-07T14:37:39.545Z' },
    });
    const suggested = /--at (\S+?)\)/.exec(j.json().hint as string)![1]!;
    expect((await cli(['verify', BLOCKY, '--at', suggested])).code).toBe(0);
  });

  it('SEV-SNP: the VLEK window (AWS sample expired 2025-12-10)', async () => {
    const r = await cli(['verify', SNP_VEC + 'trustee-vlek-1.report.bin', '--cert', SNP_VEC + 'trustee-vlek-1.vlek.der', '--json'], { now: new Date('2026-01-01T00:00:00Z') });
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ code: 'ERR_SNP_CHAIN_INVALID', reason: 'expired', validity: { notBefore: '2024-12-10T22:14:21.000Z', notAfter: '2025-12-10T22:14:21.000Z' } });
    const suggested = /--at (\S+?)\)/.exec(r.json().hint as string)![1]!;
    expect((await cli(['verify', SNP_VEC + 'trustee-vlek-1.report.bin', '--cert', SNP_VEC + 'trustee-vlek-1.vlek.der', '--at', suggested])).code).toBe(0);
  });

  it('other failures carry no window', async () => {
    const r = await cli(['verify', BAD_SIG, '--at', '2024-07-23T21:30:00Z', '--allow-debug', '--json']);
    expect(r.json().validity).toBeUndefined();
    // An SNP report read from standard input (base64) still verifies through the same run.
    const b64 = Buffer.from(readFileSync(SNP_VEC + 'oak-2.report.bin')).toString('base64');
    expect((await cli(['verify', '-', '--cert', SNP_VEC + 'oak-2.vcek.der', '--at', '2025-09-01T00:00:00Z'], { stdin: b64 })).code).toBe(0);
  });
});
