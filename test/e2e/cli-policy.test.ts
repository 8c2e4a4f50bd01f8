/**
 * The data owner's side on the command line: `encrypt --policy` seals a release policy into the
 * manifest, `query check` gives the worker's verdict offline, and `run --ledger` keeps the sealed
 * privacy ledger between jobs.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { PassThrough } from 'node:stream';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';
import { parseManifest, manifestBody, sealDigest } from '../../enclave/protocol/index.js';
import { datasetDigestOfFile } from '../../host/run.js';
import { setUp, type Fixture } from './helpers.js';

let fx: Fixture;
let dir: string;
const policy = {
  version: 1,
  minGroupSize: 10,
  dimensions: { region: { domain: ['north', 'south', 'east', 'west'] } },
  aggregates: { spend: { ops: ['sum', 'mean'], bounds: [0, 200] } },
  filters: { region: ['eq'] },
  dp: { required: true, epsilonMin: 0.1, epsilonMax: 1, budget: 2, delta: 1e-6 },
  exactExtrema: false,
  expires: '2099-01-01T00:00:00Z',
};

function io(env: NodeJS.ProcessEnv = {}): CliIO & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c) => (o += c));
  stderr.on('data', (c) => (e += c));
  return { stdout, stderr, stdin: new PassThrough(), env, now: () => new Date(), out: () => o, err: () => e };
}

const write = (name: string, v: unknown): string => {
  const p = join(dir, name);
  writeFileSync(p, typeof v === 'string' ? v : JSON.stringify(v));
  return p;
};

beforeAll(async () => {
  fx = await setUp(80);
  dir = fx.stack.dir;
  write('policy.json', policy);
  // The data owner's keys in the environment, as `eval "$(enclavekit sim kms credentials add ...)"` sets them.
  const owner = await fx.stack.credentials('data-owner');
  const t = io({ AWS_ACCESS_KEY_ID: owner.accessKeyId, AWS_SECRET_ACCESS_KEY: owner.secretAccessKey, AWS_SESSION_TOKEN: owner.sessionToken });
  const code = await main(
    ['encrypt', '--in', fx.plainPath, '--fields', 'email,spend,complaint', '--id-field', 'id', '--dataset', 'cli-ds', '--key-id', fx.keyId,
      '--endpoint', fx.stack.kmsUrl, '--policy', join(dir, 'policy.json'), '--out', join(dir, 'cli.enc.ndjson'), '--manifest', join(dir, 'cli.manifest.json')],
    t,
  );
  if (code !== 0) throw new Error(t.err());
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

describe('encrypt --policy', () => {
  it('seals the policy, the schema, the record count and the digest of the file it wrote', async () => {
    const m = parseManifest(readFileSync(join(dir, 'cli.manifest.json')));
    expect(m.version).toBe(2);
    expect(m.policy).toEqual(policy);
    expect(m.records).toBe(80);
    expect(m.schema).toEqual({ complaint: 'string', email: 'string', id: 'string', region: 'string', spend: 'number' });
    expect(m.digest).toBe(Buffer.from(await datasetDigestOfFile(join(dir, 'cli.enc.ndjson'), 'cli-ds')).toString('hex'));
    expect(Object.keys(m.seal)).toEqual(Object.keys(m.keys));
  });

  it('refuses a malformed policy file with exit 2 before any KMS call', async () => {
    const t = io();
    write('bad-policy.json', { ...policy, dp: { ...policy.dp, delta: 0.5 } });
    const code = await main(['encrypt', '--in', fx.plainPath, '--fields', 'email', '--id-field', 'id', '--dataset', 'x', '--key-id', fx.keyId,
      '--endpoint', fx.stack.kmsUrl, '--policy', join(dir, 'bad-policy.json'), '--out', join(dir, 'x.ndjson'), '--manifest', join(dir, 'x.json')], t);
    expect(code).toBe(2);
    expect(t.err()).toMatch(/--policy: release policy \$\.dp\.delta/);
    expect(existsSync(join(dir, 'x.json'))).toBe(false);
  });
});

describe('query check', () => {
  const check = async (query: unknown, extra: string[] = []) => {
    const t = io();
    const code = await main(['query', 'check', '--manifest', join(dir, 'cli.manifest.json'), '--query', write('q.json', query), '--json', ...extra], t);
    return { code, out: t.out() ? JSON.parse(t.out()) : undefined, err: t.err() };
  };
  const ok = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }, { name: 's', op: 'mean', field: 'spend' }], privacy: { dp: { epsilon: 0.5 } } };

  it('allows what the policy allows (exit 0) and reports the resolved parameters', async () => {
    const r = await check(ok);
    expect(r.code).toBe(0);
    expect(r.out).toMatchObject({ ok: true, allowed: true, policy: 'sealed', minGroupSize: 10, dp: { epsilon: 0.5, delta: 1e-6, budget: 2 }, clamps: { spend: [0, 200] }, publicDomains: ['region'] });
  });

  it('refuses each rule with exit 1 and its reason', async () => {
    const cases: [unknown, string][] = [
      [{ ...ok, groupBy: ['email'] }, 'dimension'],
      [{ ...ok, privacy: undefined }, 'dp_required'],
      [{ ...ok, privacy: { dp: { epsilon: 2 } } }, 'epsilon_range'],
      [{ ...ok, privacy: { dp: { epsilon: 0.5 }, minGroupSize: 2 } }, 'min_group_size'],
      [{ ...ok, groupBy: ['regoin'] }, 'unknown_field'],
      [{ ...ok, aggregates: [{ name: 'x', op: 'histogram', field: 'spend', bins: [0, 1] }] }, 'aggregate'],
      [{ ...ok, aggregates: [{ name: 'x', op: 'mean', field: 'spend', clamp: [0, 500] }] }, 'clamp'],
      [{ ...ok, filter: { op: 'gte', field: 'spend', value: 10 } }, 'filter'],
    ];
    for (const [q, reason] of cases) {
      const r = await check(q);
      expect(r.code, reason).toBe(1);
      expect(r.out, reason).toMatchObject({ ok: true, allowed: false, code: 'ERR_QUERY_REFUSED', reason });
    }
    const expired = await check(ok, ['--at', '2099-06-01T00:00:00Z']);
    expect(expired.out).toMatchObject({ allowed: false, reason: 'expired' });
  });

  it('a malformed query or manifest is a usage error (exit 2)', async () => {
    expect((await check({ version: 1, aggregates: [] })).code).toBe(2);
    const t = io();
    const v1 = write('v1.json', { version: 1, datasetId: 'd', idField: 'id', fields: ['a'], keys: {} });
    expect(await main(['query', 'check', '--manifest', v1, '--query', join(dir, 'q.json')], t)).toBe(2);
    expect(t.err()).toMatch(/not sealed.*re-encrypt/);
  });
});

describe('run --ledger', () => {
  it('keeps the sealed ledger per dataset between jobs: the budget holds across worker restarts', async () => {
    const q = write('dpq.json', { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }], privacy: { dp: { epsilon: 1 } } });
    const ledger = join(dir, 'ledger.json');
    // The parent role's session, as `enclavekit run` takes it from the environment (issue #10).
    const role = await fx.stack.credentials('role');
    const run = async (out: string) => {
      const t = io({ AWS_ACCESS_KEY_ID: role.accessKeyId, AWS_SECRET_ACCESS_KEY: role.secretAccessKey, AWS_SESSION_TOKEN: role.sessionToken });
      const w = await fx.stack.startWorker({ imageId: fx.worker.imageId, name: `w-${out}` });
      const code = await main(['run', '--dataset', join(dir, 'cli.enc.ndjson'), '--manifest', join(dir, 'cli.manifest.json'), '--query', q,
        '--enclave', `unix:${w.socketPath}`, '--expect-pcr', `0=${Buffer.from(w.pcr0).toString('hex')}`, '--sim-state', join(dir, 'state'),
        '--out', join(dir, out), '--ledger', ledger], t);
      await w.stop();
      return { code, err: t.err() };
    };
    expect((await run('l1.json')).code).toBe(0);
    expect((await run('l2.json')).code).toBe(0);
    // Each run used a fresh worker process: only the sealed ledger the host kept carries the spend.
    const third = await run('l3.json');
    expect(third.code).toBe(1);
    expect(third.err).toMatch(/ERR_PRIVACY_BUDGET/);
    const held = JSON.parse(readFileSync(ledger, 'utf8'));
    const m = parseManifest(readFileSync(join(dir, 'cli.manifest.json')));
    expect(Object.keys(held)).toEqual([Buffer.from(sealDigest(manifestBody(m))).toString('hex')]);
  });
});
