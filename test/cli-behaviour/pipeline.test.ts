/**
 * Issue #11 end to end, through `main(argv, io)` against the simulated stack (worker processes, the
 * KMS simulator checking SigV4 and key policies, the KMS proxy): the exit status of each class of job
 * outcome, and `demo --json`.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../host/cli/main.js';
import { startSimStack, type SimStack } from '../../host/sim-stack.js';
import { testIO } from './helpers.js';

const IMAGE_A = new Uint8Array(48).fill(0xa7);
const IMAGE_B = new Uint8Array(48).fill(0xb8);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const POLICY = {
  version: 1,
  minGroupSize: 10,
  dimensions: { region: { domain: ['north', 'south', 'east', 'west'] } },
  aggregates: { spend: { ops: ['sum', 'mean'], bounds: [0, 200] } },
  filters: '*',
  dp: { required: false, epsilonMin: 0.1, epsilonMax: 1, budget: 5, delta: 1e-6 },
  exactExtrema: false,
};

let stack: SimStack;
let workerA: Awaited<ReturnType<SimStack['startWorker']>>;
let dir: string;
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  stack = await startSimStack();
  dir = stack.dir;
  workerA = await stack.startWorker({ imageId: IMAGE_A, name: 'a' });
  await stack.startKms();
  const keyId = await stack.createEnclaveKey(workerA.pcr0);
  // `run --credentials chain` hands the parent's credentials (the SDK's chain: this process's
  // environment) to the attested worker: here, the stack's parent-instance role.
  const role = await stack.credentials('role');
  for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_CREDENTIAL_EXPIRATION', 'AWS_PROFILE']) saved[k] = process.env[k];
  process.env.AWS_ACCESS_KEY_ID = role.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = role.secretAccessKey;
  if (role.sessionToken) process.env.AWS_SESSION_TOKEN = role.sessionToken;
  if (role.expiration) process.env.AWS_CREDENTIAL_EXPIRATION = role.expiration.toISOString();
  delete process.env.AWS_PROFILE;
  const owner = await stack.credentials('data-owner');
  const env = { AWS_ACCESS_KEY_ID: owner.accessKeyId, AWS_SECRET_ACCESS_KEY: owner.secretAccessKey, ...(owner.sessionToken ? { AWS_SESSION_TOKEN: owner.sessionToken } : {}) };
  const lines = Array.from({ length: 120 }, (_, i) => JSON.stringify({ id: `r${i}`, region: ['north', 'south', 'east', 'west'][i % 4], spend: 10 + (i % 90), email: `p${i}@secret.test` }));
  writeFileSync(join(dir, 'plain.ndjson'), lines.join('\n') + '\n');
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(POLICY));
  writeFileSync(join(dir, 'query.json'), JSON.stringify({ version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }, { name: 's', op: 'mean', field: 'spend' }] }));
  writeFileSync(join(dir, 'refused.json'), JSON.stringify({ version: 1, groupBy: ['email'], aggregates: [{ name: 'n', op: 'count' }] }));
  const t = testIO({ env });
  const code = await main(
    ['encrypt', '--in', join(dir, 'plain.ndjson'), '--fields', 'email,spend', '--id-field', 'id', '--dataset', 'cli-b', '--key-id', keyId, '--endpoint', stack.kmsUrl,
      '--policy', join(dir, 'policy.json'), '--out', join(dir, 'data.ndjson'), '--manifest', join(dir, 'manifest.json'), '--json'],
    t,
  );
  if (code !== 0) throw new Error(`encrypt failed (${code}): ${t.out()} ${t.err()}`);
}, 90_000);
afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await stack?.close();
});

const run = (socket: string, pcr0: Uint8Array, extra: string[]) =>
  ['run', '--dataset', join(dir, 'data.ndjson'), '--manifest', join(dir, 'manifest.json'), '--enclave', `unix:${socket}`, '--expect-pcr', `0=${hex(pcr0)}`, '--sim-state', stack.stateDir, ...extra];

describe('run: one exit status per class of outcome', () => {
  it('0: the worker got the key, the result verified', async () => {
    const t = testIO();
    expect(await main(run(workerA.socketPath, workerA.pcr0, ['--query', join(dir, 'query.json'), '--out', join(dir, 'r0.json'), '--json']), t), t.err()).toBe(0);
    expect(t.json()).toMatchObject({ ok: true, records: 120, groups: 4, verified: true, platform: 'simulator' });
  }, 60_000);

  it('1: the owner\'s release policy refuses the query (an attested refusal)', async () => {
    const t = testIO();
    expect(await main(run(workerA.socketPath, workerA.pcr0, ['--query', join(dir, 'refused.json'), '--out', join(dir, 'r1.json'), '--json']), t)).toBe(1);
    expect(t.json()).toMatchObject({ ok: false, code: 'ERR_QUERY_REFUSED', reason: 'dimension', exit: 1, attested: true });
  }, 60_000);

  it('1: KMS denies the key to another image', async () => {
    const b = await stack.startWorker({ imageId: IMAGE_B, name: 'b' });
    const t = testIO();
    expect(await main(run(b.socketPath, b.pcr0, ['--query', join(dir, 'query.json'), '--out', join(dir, 'r2.json')]), t)).toBe(1);
    expect(t.err()).toMatch(/FAILED at \w+: ERR_KMS_REQUEST \(AccessDeniedException\): the worker refused the job: KMS Decrypt refused key "k0": AccessDeniedException: the key policy does not release the key to this worker's attested image/);
  }, 60_000);

  it('3: the worker cannot reach KMS; 3: the worker is gone', async () => {
    const c = await stack.startWorker({ imageId: IMAGE_A, name: 'nokms', kms: `unix:${join(dir, 'no-proxy-here.sock')}` });
    let t = testIO();
    expect(await main(run(c.socketPath, c.pcr0, ['--query', join(dir, 'query.json'), '--out', join(dir, 'r3.json'), '--json']), t)).toBe(3);
    expect(t.json()).toMatchObject({ ok: false, code: 'ERR_KMS_UNREACHABLE', exit: 3, message: expect.stringContaining('the worker could not reach KMS') });
    await c.stop();
    t = testIO();
    expect(await main(run(c.socketPath, c.pcr0, ['--query', join(dir, 'query.json'), '--out', join(dir, 'r4.json')]), t)).toBe(3);
    expect(t.err()).toContain(`cannot connect to the worker at ${c.socketPath}`);
  }, 60_000);
});

describe('demo --json', () => {
  it('one object on stdout with each step\'s outcome; the narration on stderr', async () => {
    const t = testIO();
    const code = await main(['demo', '--records', '2000', '--json'], t);
    expect(code, t.err()).toBe(0);
    const j = t.json();
    expect(j).toMatchObject({
      ok: true,
      records: 2000,
      result: { verified: true, platform: 'simulator', records: 2000 },
      refused: { code: 'ERR_QUERY_REFUSED', reason: 'dimension', attested: true },
      denied: { code: 'ERR_KMS_REQUEST', reason: 'AccessDeniedException' },
      audit: { entries: 3, ok: true, mode: 'evidence' },
    });
    expect(t.err()).toContain('result VERIFIED');
  }, 180_000);
});
