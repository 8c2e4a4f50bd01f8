/**
 * Issue #11: `--json` on every command prints one JSON object on stdout (logs and progress on stderr
 * only), and `--out -` puts run's RESULT.json / encrypt's dataset or manifest on stdout.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../host/cli/main.js';
import { main as simAttestMain } from '../../enclave/cli-sim-attest.js';
import { generateRecipientKeyPair } from '../../enclave/keys.js';
import { testIO } from './helpers.js';
import { PCR0_HEX, sealedFiles, startFakeWorker, type Files, type FakeWorker } from './fixtures.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const PCR = 'ab'.repeat(48);
const ARNS = ['--key-admin', 'arn:aws:iam::111122223333:role/admin', '--data-owner', 'arn:aws:iam::111122223333:role/owner', '--role', 'arn:aws:iam::444455556666:role/parent'];

let f: Files;
let worker: FakeWorker;
beforeAll(async () => {
  f = await sealedFiles();
  worker = await startFakeWorker(f.dir, 'honest');
}, 60_000);
afterAll(async () => {
  await worker?.close();
  f?.cleanup();
});
const runArgs = (extra: string[]) => ['run', '--dataset', f.dataset, '--manifest', f.manifest, '--query', f.query, '--enclave', `unix:${worker.socket}`, '--expect-pcr', `0=${PCR0_HEX}`, '--sim-state', worker.stateDir, '--credentials', 'none', ...extra];

describe('run', () => {
  it('--json: a summary of the verified result; logs only on stderr', async () => {
    const t = testIO();
    expect(await main(runArgs(['--out', join(f.dir, 'r.json'), '--audit', join(f.dir, 'audit.jsonl'), '--json']), t)).toBe(0);
    const j = t.json();
    expect(j).toMatchObject({ ok: true, records: 40, groups: 0, verified: true, platform: 'simulator', pcrs: { '0': PCR0_HEX }, out: join(f.dir, 'r.json') });
    expect(j.jobId).toMatch(/^job-/);
    expect(j.resultDigest).toMatch(/^[0-9a-f]{96}$/);
    expect(t.err()).toContain('worker attested');
  });

  it('--out -: RESULT.json on stdout (pretty, or one line with --json), the summary on stderr', async () => {
    let t = testIO();
    expect(await main(runArgs(['--out', '-']), t)).toBe(0);
    const r = JSON.parse(t.out());
    expect(r).toMatchObject({ ok: true, verification: { verified: true, platform: 'simulator' } });
    expect(typeof r.resultCborBase64).toBe('string');
    expect(t.err()).toMatch(/result verified .* wrote standard output/);
    expect(existsSync(join(ROOT, '-'))).toBe(false);
    t = testIO();
    expect(await main(runArgs(['--out', '-', '--json']), t)).toBe(0);
    expect(t.json()).toMatchObject({ ok: true, verification: { verified: true } });
  });

  it('--json failure: {"ok":false,code,reason,message,exit,stage,jobId,attested}', async () => {
    const t = testIO();
    const args = runArgs(['--out', join(f.dir, 'never.json'), '--json']).filter((a, i, all) => a !== '--sim-state' && all[i - 1] !== '--sim-state');
    expect(await main(args, t)).toBe(1);
    expect(t.json()).toMatchObject({ ok: false, code: 'ERR_NITRO_CHAIN_INVALID', exit: 1, stage: 'attestation', attested: false });
    expect(existsSync(join(f.dir, 'never.json'))).toBe(false);
  });
});

describe('audit verify', () => {
  it('--json: ok, or ok:false with ERR_AUDIT_INVALID and the first broken line', async () => {
    const log = join(f.dir, 'audit.jsonl');
    if (!existsSync(log)) expect(await main(runArgs(['--out', join(f.dir, 'ra.json'), '--audit', log]), testIO())).toBe(0);
    let t = testIO();
    expect(await main(['audit', 'verify', log, '--expect-pcr', `0=${PCR0_HEX}`, '--sim-state', worker.stateDir, '--json'], t)).toBe(0);
    expect(t.json()).toMatchObject({ ok: true, mode: 'evidence' });
    const broken = join(f.dir, 'audit-broken.jsonl');
    writeFileSync(broken, readFileSync(log, 'utf8').replace('"seq":0', '"seq":7'));
    t = testIO();
    expect(await main(['audit', 'verify', broken, '--chain-only', '--json'], t)).toBe(1);
    const j = t.json();
    expect(j).toMatchObject({ ok: false, code: 'ERR_AUDIT_INVALID', exit: 1, firstBroken: { line: 1 } });
    expect(j.message).toMatch(/^audit log BROKEN at line 1/);
  });
});

describe('policy', () => {
  it('--json: {"ok":true,"policy":{...}}', async () => {
    const t = testIO();
    expect(await main(['policy', '--pcr', `0=${PCR}`, ...ARNS, '--json'], t)).toBe(0);
    const j = t.json();
    expect(j.ok).toBe(true);
    expect((j.policy as { Statement: unknown[] }).Statement).toHaveLength(4);
    const plain = testIO();
    expect(await main(['policy', '--pcr', `0=${PCR}`, ...ARNS], plain)).toBe(0);
    expect(JSON.parse(plain.out())).toEqual(j.policy);
  });
});

describe('sim attest', () => {
  it('--json: what was written; usage errors as {"ok":false}', async () => {
    const keys = await generateRecipientKeyPair();
    const spki = join(f.dir, 'spki.der');
    writeFileSync(spki, keys.publicKeySpki);
    let t = testIO();
    expect(await simAttestMain(['--state', join(f.dir, 'attest-state'), '--public-key', spki, '--image-id', '5c'.repeat(48), '--out', join(f.dir, 'doc.cose'), '--json'], t)).toBe(0);
    expect(t.json()).toEqual({ ok: true, out: join(f.dir, 'doc.cose'), bytes: readFileSync(join(f.dir, 'doc.cose')).length, format: 'nitro', platform: 'simulator', pcr0: PCR0_HEX });
    t = testIO();
    expect(await simAttestMain(['--state', join(f.dir, 'attest-state'), '--bogus', '--json'], t)).toBe(2);
    expect(t.json()).toEqual({ ok: false, code: 'ERR_USAGE', message: 'unknown option --bogus; see enclavekit sim attest --help', exit: 2 });
  });
});

describe('sim kms', () => {
  const RUN_MAIN = "const m = await import('./host/cli/main.ts'); process.exitCode = await m.main(process.argv.slice(1));";
  it('--port 0 --json --port-file: one ready line with the port, the port file, removed on stop', async () => {
    const state = join(f.dir, 'kms-state');
    const portFile = join(f.dir, 'kms.port');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', RUN_MAIN, 'sim', 'kms', '--state', state, '--port', '0', '--json', '--port-file', portFile], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    try {
      const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!));
        });
        void exited.then(() => reject(new Error(`exited early: ${out} ${err}`)));
      });
      expect(ready).toMatchObject({ ok: true, ready: true, host: '127.0.0.1', state, portFile });
      expect(ready.port).toBeGreaterThan(0);
      expect(ready.url).toBe(`http://127.0.0.1:${ready.port}`);
      expect(readFileSync(portFile, 'utf8')).toBe(`${ready.port}\n`);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(err).toContain('listening on');
      expect(err).toContain('stopped');
      expect(out.trim().split('\n')).toHaveLength(1);
      expect(existsSync(portFile)).toBe(false);
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
    }
  }, 30_000);
});
