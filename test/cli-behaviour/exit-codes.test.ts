/**
 * Issue #11: one exit status per class of failure, for every command, through the real entry
 * (host/cli/main.ts `main(argv, io)`): 0 success, 1 security verdict, 2 usage or input, 3 infrastructure.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ToolkitError, type ToolkitErrorCode } from '../../attestation/errors.js';
import { main } from '../../host/cli/main.js';
import { EXIT_BY_CODE, exitCodeOf } from '../../host/cli/exit.js';
import { UsageError } from '../../host/cli/io.js';
import { testIO } from './helpers.js';
import { PCR0_HEX, sealedFiles, startFakeWorker, type Files, type FakeWorker } from './fixtures.js';

describe('exitCodeOf: the one mapping', () => {
  it('maps every ToolkitError code to 1, 2 or 3, the same for an error and a RunOutcome error', () => {
    for (const [code, exit] of Object.entries(EXIT_BY_CODE)) {
      expect([1, 2, 3], code).toContain(exit);
      expect(exitCodeOf(new ToolkitError(code as ToolkitErrorCode, 'x')), code).toBe(exit);
      expect(exitCodeOf({ code, message: 'x', stage: 'stream' }), code).toBe(exit);
    }
  });

  it('security verdicts are 1', () => {
    for (const code of ['ERR_NITRO_CHAIN_INVALID', 'ERR_NITRO_SIGNATURE_INVALID', 'ERR_SNP_REPORT_INVALID', 'ERR_ATTESTATION_POLICY', 'ERR_QUERY_REFUSED', 'ERR_SEAL_INVALID', 'ERR_PRIVACY_BUDGET', 'ERR_JOB_REFUSED', 'ERR_RESULT_INVALID', 'ERR_AUDIT_INVALID', 'ERR_KMS_RECIPIENT'])
      expect(exitCodeOf({ code }), code).toBe(1);
    expect(exitCodeOf({ code: 'ERR_KMS_REQUEST', reason: 'AccessDeniedException', stage: 'stream' })).toBe(1);
    expect(exitCodeOf({ code: 'ERR_KMS_REQUEST', reason: 'InvalidCiphertextException' })).toBe(1);
    expect(exitCodeOf({ code: 'ERR_KMS_REQUEST', reason: 'UnrecognizedClientException' })).toBe(1);
  });

  it('usage and input errors are 2', () => {
    expect(exitCodeOf(new UsageError('bad flag'))).toBe(2);
    expect(exitCodeOf(new UsageError('no file', { code: 'ERR_INPUT' }))).toBe(2);
    for (const code of ['ERR_QUERY_INVALID', 'ERR_MANIFEST_INVALID', 'ERR_DATASET_INVALID', 'ERR_POLICY_INVALID', 'ERR_CONFIG_INVALID'])
      expect(exitCodeOf({ code }), code).toBe(2);
    expect(exitCodeOf({ code: 'ERR_KMS_REQUEST', reason: 'NotFoundException' })).toBe(2);
    expect(exitCodeOf(Object.assign(new Error('ENOENT'), { code: 'ENOENT', syscall: 'open', path: '/x' }))).toBe(2);
    expect(exitCodeOf(Object.assign(new Error('EACCES'), { code: 'EACCES', syscall: 'open', path: '/x' }))).toBe(2);
  });

  it('infrastructure is 3: worker or KMS unreachable or failing, timeouts', () => {
    expect(exitCodeOf({ code: 'ERR_KMS_UNREACHABLE', reason: 'connection' })).toBe(3);
    for (const reason of ['ThrottlingException', 'KMSInternalException', 'DependencyTimeoutException', 'timeout', 'response', 'InternalFailure'])
      expect(exitCodeOf({ code: 'ERR_KMS_REQUEST', reason }), reason).toBe(3);
    expect(exitCodeOf({ code: 'ERR_JOB_FAILED', reason: 'connect', stage: 'connect' })).toBe(3);
    expect(exitCodeOf({ code: 'ERR_JOB_FAILED', reason: 'timeout', stage: 'result' })).toBe(3);
    expect(exitCodeOf({ code: 'ERR_JOB_FAILED', reason: 'closed', stage: 'stream' })).toBe(3);
    expect(exitCodeOf({ code: 'ERR_PLATFORM_UNAVAILABLE' })).toBe(3);
    expect(exitCodeOf(Object.assign(new Error('refused'), { code: 'ECONNREFUSED', syscall: 'connect' }))).toBe(3);
    expect(exitCodeOf(new Error('a bug'))).toBe(3);
  });

  it('a worker `error` frame is judged by the code it carries', () => {
    expect(exitCodeOf({ code: 'ERR_JOB_FAILED', reason: 'ERR_KMS_UNREACHABLE' })).toBe(3);
    expect(exitCodeOf({ code: 'ERR_JOB_FAILED', reason: 'ERR_QUERY_INVALID' })).toBe(2);
    expect(exitCodeOf({ code: 'ERR_JOB_FAILED', reason: 'ERR_SEAL_INVALID' })).toBe(1);
    expect(exitCodeOf({ code: 'ERR_JOB_FAILED', reason: 'ERR_JOB_FAILED' })).toBe(3);
  });
});

describe('usage errors: exit 2, in words, pointing at --help; one JSON object with --json', () => {
  const commands: [string[], string][] = [
    [['run'], 'run'],
    [['encrypt'], 'encrypt'],
    [['policy'], 'policy'],
    [['audit', 'verify', 'log.jsonl'], 'audit verify'],
    [['query', 'check'], 'query check'],
    [['demo'], 'demo'],
    [['sim', 'kms'], 'sim kms'],
    [['verify', 'doc.cose'], 'verify'],
  ];
  it.each(commands)('%j: unknown option', async (argv, name) => {
    let t = testIO();
    expect(await main([...argv, '--bogus'], t)).toBe(2);
    expect(t.err()).toContain(`unknown option --bogus; see enclavekit ${name} --help`);
    expect(t.err()).not.toMatch(/Unknown option '|To specify a positional/);
    t = testIO();
    expect(await main([...argv, '--bogus', '--json'], t)).toBe(2);
    expect(t.json()).toEqual({ ok: false, code: 'ERR_USAGE', message: `unknown option --bogus; see enclavekit ${name} --help`, exit: 2 });
  });

  it('a flag without its value, an unknown command', async () => {
    let t = testIO();
    expect(await main(['run', '--dataset'], t)).toBe(2);
    expect(t.err()).toContain('--dataset needs a value; see enclavekit run --help');
    t = testIO();
    expect(await main(['frobnicate', '--json'], t)).toBe(2);
    expect(t.json()).toMatchObject({ ok: false, code: 'ERR_USAGE', message: expect.stringContaining('unknown command "frobnicate"') });
    t = testIO();
    expect(await main(['run', '--json'], t)).toBe(2);
    expect(t.json()).toMatchObject({ ok: false, code: 'ERR_USAGE', message: expect.stringMatching(/^--dataset, --manifest, --query, --enclave, --out are required/) });
  });
});

describe('run, query check and audit verify against files and an in-process worker', () => {
  let f: Files;
  let honest: FakeWorker;
  beforeAll(async () => {
    f = await sealedFiles();
    honest = await startFakeWorker(f.dir, 'honest');
  }, 60_000);
  afterAll(async () => {
    await honest?.close();
    f?.cleanup();
  });
  const runArgs = (socket: string, extra: string[] = []) => ['run', '--dataset', f.dataset, '--manifest', f.manifest, '--query', f.query, '--enclave', `unix:${socket}`, '--expect-pcr', `0=${PCR0_HEX}`, '--credentials', 'none', ...extra];

  it('0: the result verified', async () => {
    const t = testIO();
    const code = await main(runArgs(honest.socket, ['--sim-state', honest.stateDir, '--out', join(f.dir, 'r0.json')]), t);
    expect(t.err()).not.toMatch(/FAILED/);
    expect(code).toBe(0);
    expect(t.out()).toMatch(/result verified \(simulator, PCR0 [0-9a-f]{96}\); wrote /);
    expect(JSON.parse(readFileSync(join(f.dir, 'r0.json'), 'utf8')).verification.verified).toBe(true);
  });

  it('1: evidence under a root that is not trusted, a result that does not match its attestation', async () => {
    let t = testIO();
    expect(await main(runArgs(honest.socket, ['--out', join(f.dir, 'r1.json')]), t)).toBe(1);
    expect(t.err()).toMatch(/FAILED at attestation: ERR_NITRO_CHAIN_INVALID/);
    const liar = await startFakeWorker(f.dir, 'lie');
    try {
      t = testIO();
      expect(await main(runArgs(liar.socket, ['--sim-state', liar.stateDir, '--out', join(f.dir, 'r1b.json')]), t)).toBe(1);
      expect(t.err()).toMatch(/ERR_ATTESTATION_POLICY.*user_data/);
    } finally {
      await liar.close();
    }
    expect(existsSync(join(f.dir, 'r1.json')) || existsSync(join(f.dir, 'r1b.json'))).toBe(false);
  });

  it('3: a stopped worker (its target named), a worker whose KMS is unreachable', async () => {
    const gone = join(f.dir, 'stopped.sock');
    let t = testIO();
    expect(await main(runArgs(gone, ['--sim-state', honest.stateDir, '--out', join(f.dir, 'r3.json')]), t)).toBe(3);
    expect(t.err()).toContain(`cannot connect to the worker at ${gone}: ENOENT`);
    expect(t.err()).toContain(`is the worker running and listening at unix:${gone}`);
    const noKms = await startFakeWorker(f.dir, { fail: 'ERR_KMS_UNREACHABLE', reason: 'connection' });
    try {
      t = testIO();
      expect(await main(runArgs(noKms.socket, ['--sim-state', noKms.stateDir, '--out', join(f.dir, 'r3b.json'), '--json']), t)).toBe(3);
      expect(t.json()).toMatchObject({ ok: false, code: 'ERR_JOB_FAILED', reason: 'ERR_KMS_UNREACHABLE', exit: 3, stage: 'stream' });
    } finally {
      await noKms.close();
    }
  });

  it('2 and 1 from the codes a worker sends: an invalid query, a seal that does not check', async () => {
    const invalid = await startFakeWorker(f.dir, { fail: 'ERR_QUERY_INVALID', reason: '$.aggregates' });
    const seal = await startFakeWorker(f.dir, { fail: 'ERR_SEAL_INVALID', reason: 'mac' });
    try {
      let t = testIO();
      expect(await main(runArgs(invalid.socket, ['--sim-state', invalid.stateDir, '--out', join(f.dir, 'r2.json')]), t)).toBe(2);
      t = testIO();
      expect(await main(runArgs(seal.socket, ['--sim-state', seal.stateDir, '--out', join(f.dir, 'r2b.json')]), t)).toBe(1);
    } finally {
      await invalid.close();
      await seal.close();
    }
  });

  it('2: missing or malformed input files, named with their flag (never "ENOENT: ENOENT")', async () => {
    let t = testIO();
    const nope = join(f.dir, 'nope.json');
    expect(await main(['run', '--dataset', f.dataset, '--manifest', nope, '--query', f.query, '--enclave', `unix:${honest.socket}`, '--expect-pcr', `0=${PCR0_HEX}`, '--out', join(f.dir, 'x.json')], t)).toBe(2);
    expect(t.err()).toContain(`--manifest: no such file: ${nope}`);
    t = testIO();
    expect(await main(['query', 'check', '--manifest', f.manifest, '--query', nope, '--json'], t)).toBe(2);
    expect(t.json()).toEqual({ ok: false, code: 'ERR_INPUT', message: `--query: no such file: ${nope}`, exit: 2 });
    t = testIO();
    expect(await main(['audit', 'verify', nope, '--chain-only'], t)).toBe(2);
    expect(t.err()).toContain(`audit log: no such file: ${nope}`);
    t = testIO();
    expect(await main(['verify', nope], t)).toBe(2);
    expect(t.err()).toContain(nope);
    expect(t.err()).not.toMatch(/ENOENT: ENOENT/);
    const bad = join(f.dir, 'bad-manifest.json');
    writeFileSync(bad, '{"version": 2}');
    t = testIO();
    expect(await main(['query', 'check', '--manifest', bad, '--query', f.query, '--json'], t)).toBe(2);
    expect(t.json()).toMatchObject({ ok: false, code: 'ERR_MANIFEST_INVALID', exit: 2 });
  });

  it('query check: 0 allowed, 1 refused, 2 an invalid query', async () => {
    const q = (v: unknown) => {
      const p = join(f.dir, `q-${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(p, JSON.stringify(v));
      return p;
    };
    let t = testIO();
    expect(await main(['query', 'check', '--manifest', f.manifest, '--query', f.query, '--json'], t)).toBe(0);
    expect(t.json()).toMatchObject({ ok: true, allowed: true, minGroupSize: 10 });
    t = testIO();
    expect(await main(['query', 'check', '--manifest', f.manifest, '--query', q({ version: 1, groupBy: ['email'], aggregates: [{ name: 'n', op: 'count' }] }), '--json'], t)).toBe(1);
    expect(t.json()).toMatchObject({ ok: true, allowed: false, code: 'ERR_QUERY_REFUSED', reason: 'dimension' });
    t = testIO();
    expect(await main(['query', 'check', '--manifest', f.manifest, '--query', q({ version: 1, aggregates: [] }), '--json'], t)).toBe(2);
    expect(t.json()).toMatchObject({ ok: false, code: 'ERR_QUERY_INVALID', exit: 2 });
    t = testIO();
    expect(await main(['query', 'check', '--manifest', f.manifest, '--query', q({ version: 1, aggregates: [] })], t)).toBe(2);
    expect(t.out()).toBe('');
    expect(t.err()).toMatch(/invalid query: ERR_QUERY_INVALID/);
  });
});
