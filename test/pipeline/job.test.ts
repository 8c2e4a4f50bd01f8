import { describe, expect, it } from 'vitest';
import { createJob, type JobOptions } from '../../enclave/job.js';
import { PrivacyBudget } from '../../enclave/analytics/privacy.js';
import { nodeFieldDecryptor, type FieldDecryptor } from '../../enclave/field-decrypt.js';
import { DatasetDigest, decodeResult, sha384 } from '../../enclave/protocol/index.js';
import { encryptedCustomers } from './fixtures.js';
import { expectCode } from './helpers.js';

const query = {
  version: 1,
  groupBy: ['region'],
  aggregates: [
    { name: 'customers', op: 'count' },
    { name: 'spend', op: 'sum', field: 'orders.total' },
    { name: 'avgSpend', op: 'mean', field: 'orders.total' },
    { name: 'spendQ', op: 'quantiles', field: 'orders.total', q: [0.5, 0.9] },
    { name: 'terms', op: 'topTerms', field: 'complaint', k: 5 },
    { name: 'mood', op: 'sentiment', field: 'complaint' },
    { name: 'emails', op: 'distinctCount', field: 'email' },
  ],
};

function jobOpts(data: Awaited<ReturnType<typeof encryptedCustomers>>, over: Partial<JobOptions> = {}): JobOptions {
  return {
    jobId: 'job-1', datasetId: 'demo-1', query, manifest: data.manifest, keys: data.kms.keys(),
    platform: 'simulator', workerVersion: '0.1.0', ...over,
  };
}

const clone = <T>(x: T): T => structuredClone(x);

describe('createJob end to end', () => {
  it('decrypts, aggregates, suppresses small groups and produces a canonical result', async () => {
    const data = await encryptedCustomers(3000, { rotateAfter: 4000 });
    expect(Object.keys(data.manifest.keys).length).toBeGreaterThan(1);
    const keys = data.kms.keys();
    const job = createJob(jobOpts(data, { keys }));
    const recs = clone(data.records);
    for (let i = 0; i < recs.length; i += 700) job.addBatch(recs.slice(i, i + 700));
    const host = new DatasetDigest('demo-1');
    for (const r of data.records) host.add(r);
    const { resultBytes, resultDigest, result } = job.finish({ count: 3000, datasetDigest: host.digest() });
    expect(resultDigest).toEqual(sha384(resultBytes));
    for (const k of keys.values()) expect(k.every((b) => b === 0)).toBe(true);
    const doc = decodeResult(resultBytes);
    expect(doc.counts.records).toBe(3000);
    expect(doc.counts.suppressedGroups + doc.counts.groups).toBeGreaterThanOrEqual(5);
    const eu = doc.groups.find((g) => g.key[0] === 'eu-west')!;
    const plain = data.plaintext.trim().split('\n').map((l) => JSON.parse(l)).filter((c) => c.region === 'eu-west');
    expect(eu.count).toBe(plain.length);
    expect(eu.aggregates.customers).toBe(plain.length);
    const sum = plain.reduce((s: number, c: { orders: { total: number } }) => s + c.orders.total, 0);
    expect(eu.aggregates.spend as number).toBeCloseTo(sum, 6);
    expect(eu.aggregates.emails as number).toBeGreaterThan(plain.length * 0.9);
    const terms = eu.aggregates.terms as { term: string; count: number }[];
    expect(terms.length).toBeGreaterThan(0);
    for (const t of terms) expect(t.count).toBeGreaterThanOrEqual(10);
    const mood = eu.aggregates.mood as { mean: number; positive: number };
    expect(mood.positive).toBeGreaterThan(0);
    expect(result.platform).toBe('simulator');
    // nothing per-record: no email or name of any customer appears in the result bytes
    const text = Buffer.from(resultBytes).toString('latin1');
    for (const c of plain.slice(0, 200)) {
      expect(text.includes(c.email)).toBe(false);
      expect(text.includes(c.name)).toBe(false);
    }
  });

  it('refuses a field moved to another record', async () => {
    const data = await encryptedCustomers(20);
    const recs = clone(data.records);
    recs[3]!.email = recs[4]!.email;
    const job = createJob(jobOpts(data));
    const e = expectCode(() => job.addBatch(recs), 'ERR_FIELD_DECRYPT', 'open');
    expect(e.message).toBe(`field "email" of record "${recs[3]!.id}" could not be decrypted`);
    expect(job.state).toBe('failed');
    // poisoned: no partial result, ever
    expectCode(() => job.finish(), 'ERR_JOB_FAILED', 'poisoned');
    expectCode(() => job.addBatch(data.records.slice(0, 1)), 'ERR_JOB_FAILED', 'poisoned');
  });

  it('refuses a field moved to another column of the same record', async () => {
    const data = await encryptedCustomers(20);
    const recs = clone(data.records);
    recs[5]!.phone = recs[5]!.email;
    const e = expectCode(() => createJob(jobOpts(data)).addBatch(recs), 'ERR_FIELD_DECRYPT');
    expect(e.message).toContain('"phone"');
    expect(e.message).not.toContain(String(recs[5]!.email));
  });

  it('refuses the wrong key, a missing key, a changed record id and a tampered tag', async () => {
    const data = await encryptedCustomers(20);
    const wrong = new Map([['k0', new Uint8Array(32).fill(1)]]);
    expectCode(() => createJob(jobOpts(data, { keys: wrong })).addBatch(clone(data.records)), 'ERR_FIELD_DECRYPT', 'open');
    expectCode(() => createJob(jobOpts(data, { keys: new Map() })).addBatch(clone(data.records)), 'ERR_FIELD_DECRYPT', 'no_key');
    const recs = clone(data.records);
    recs[0]!.id = 'someone-else';
    expectCode(() => createJob(jobOpts(data)).addBatch(recs), 'ERR_FIELD_DECRYPT', 'open');
    const recs2 = clone(data.records);
    const s = recs2[2]!.name as string;
    recs2[2]!.name = s.slice(0, -2) + (s.at(-2) === 'A' ? 'B' : 'A') + s.at(-1);
    expectCode(() => createJob(jobOpts(data)).addBatch(recs2), 'ERR_FIELD_DECRYPT');
    const recs3 = clone(data.records);
    recs3[1]!.email = 'plain@example.com';
    const e = expectCode(() => createJob(jobOpts(data)).addBatch(recs3), 'ERR_FIELD_FORMAT');
    expect(e.message).not.toContain('plain@example.com');
    expectCode(() => createJob(jobOpts(data, { keys: new Map([['k0', new Uint8Array(16)]]) })), 'ERR_FIELD_DECRYPT', 'key_length');
  });

  it('checks the host\'s count and digest before any result exists', async () => {
    const data = await encryptedCustomers(30);
    const job = createJob(jobOpts(data, { minGroupSizeFloor: 1 }));
    job.addBatch(clone(data.records));
    expectCode(() => job.finish({ count: 30, datasetDigest: new Uint8Array(48) }), 'ERR_JOB_FAILED', 'digest_mismatch');
    const job2 = createJob(jobOpts(data));
    job2.addBatch(clone(data.records));
    expectCode(() => job2.finish({ count: 31, datasetDigest: new Uint8Array(48) }), 'ERR_JOB_FAILED', 'count_mismatch');
  });

  it('dataset digest is independent of batching and key order', async () => {
    const data = await encryptedCustomers(50);
    const a = new DatasetDigest('demo-1');
    for (const r of data.records) a.add(r);
    const b = new DatasetDigest('demo-1');
    for (const r of data.records) b.add(Object.fromEntries(Object.entries(r).reverse()));
    expect(a.digest()).toEqual(b.digest());
    const c = new DatasetDigest('demo-1');
    for (const r of data.records.slice(1)) c.add(r);
    expect(c.digest()).not.toEqual(new DatasetDigest('demo-1').digest());
  });

  it('batches decryptor calls per key and fails on a malformed decryptor answer', async () => {
    const data = await encryptedCustomers(40, { rotateAfter: 60 });
    const calls: number[] = [];
    const counting: FieldDecryptor = { decryptBatch: (k, items) => { calls.push(items.length); return nodeFieldDecryptor.decryptBatch(k, items); } };
    const job = createJob(jobOpts(data, { decryptor: counting, minGroupSizeFloor: 1 }));
    job.addBatch(clone(data.records));
    expect(calls.length).toBe(Object.keys(data.manifest.keys).length);
    expect(calls.reduce((a, b) => a + b, 0)).toBe(200);
    const bad: FieldDecryptor = { decryptBatch: () => ({ ok: [true], plaintexts: [] }) };
    expectCode(() => createJob(jobOpts(data, { decryptor: bad })).addBatch(clone(data.records)), 'ERR_FIELD_DECRYPT', 'decryptor');
  });

  it('DP: noise comes from the injected RNG, and the budget refuses queries past it', async () => {
    const data = await encryptedCustomers(400);
    const dpQuery = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }, { name: 's', op: 'sum', field: 'orders.count', clamp: [0, 12] }], privacy: { dp: { epsilon: 1 } } };
    const run = (random: () => number, budget?: PrivacyBudget) => {
      const job = createJob(jobOpts(data, { query: dpQuery, random, ...(budget ? { budget } : {}) }));
      job.addBatch(clone(data.records));
      return job.finish();
    };
    let draws = 0;
    const fixed = () => { draws++; return 0.5; }; // u = 0: zero noise
    const r1 = run(fixed);
    expect(draws).toBeGreaterThan(0);
    expect(r1.result.counts.matched).toBeNull();
    const plain = data.plaintext.trim().split('\n').map((l) => JSON.parse(l));
    const eu = r1.result.groups.find((g) => g.key[0] === 'eu-west')!;
    expect(eu.count).toBe(plain.filter((c) => c.region === 'eu-west').length);
    const r2 = run(() => 0.9);
    const eu2 = r2.result.groups.find((g) => g.key[0] === 'eu-west')!;
    expect(eu2.count).toBeGreaterThan(eu.count);
    expect(run(() => 0.9).resultBytes).toEqual(r2.resultBytes);

    const budget = new PrivacyBudget({ limit: 2.5 });
    run(fixed, budget);
    run(fixed, budget);
    expect(budget.spent('demo-1')).toBe(2);
    expectCode(() => run(fixed, budget), 'ERR_PRIVACY_BUDGET', 'exhausted');
    expect(budget.spent('demo-1')).toBe(2);
    const restored = PrivacyBudget.fromJSON(JSON.parse(JSON.stringify(budget)));
    expect(restored.remaining('demo-1')).toBeCloseTo(0.5);
    expectCode(() => PrivacyBudget.fromJSON({ limit: -1 }), 'ERR_CONFIG_INVALID');
  });

  it('refuses records that could not come from a dataset file, naming no values', async () => {
    const data = await encryptedCustomers(12);
    const cases: [unknown, string][] = [
      [[1], 'record'], [[null], 'record'], [[{ ...data.records[0], blob: new Uint8Array(3) }], 'record_value'],
      [[{ ...data.records[0], when: new Date(0) }], 'record_value'], [[{ ...data.records[0], id: { x: 1 } }], 'record_id'],
      [[{ ...data.records[0], id: '' }], 'record_id'], [[{ ...data.records[0], n: NaN }], 'record_value'],
    ];
    for (const [batch, reason] of cases) {
      const job = createJob(jobOpts(data));
      expectCode(() => job.addBatch(batch as unknown[]), 'ERR_DATASET_INVALID', reason);
      expect(job.state).toBe('failed');
    }
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = { d: deep };
    expectCode(() => createJob(jobOpts(data)).addBatch([{ ...data.records[0], deep }]), 'ERR_DATASET_INVALID', 'record_value');
    const job = createJob(jobOpts(data));
    job.abort();
    expect(job.state).toBe('aborted');
    expectCode(() => job.addBatch(clone(data.records)), 'ERR_JOB_FAILED', 'aborted');
  });

  it('refuses invalid queries and manifests up front and wipes keys', async () => {
    const data = await encryptedCustomers(5);
    const keys = data.kms.keys();
    expectCode(() => createJob(jobOpts(data, { keys, query: { version: 1, aggregates: [], extra: 1 } })), 'ERR_QUERY_INVALID');
    for (const k of keys.values()) expect(k.every((b) => b === 0)).toBe(true);
    expectCode(() => createJob(jobOpts(data, { manifest: { ...data.manifest, version: 2 } })), 'ERR_MANIFEST_INVALID');
    expectCode(() => createJob(jobOpts(data, { datasetId: 'other' })), 'ERR_MANIFEST_INVALID', 'dataset');
  });
});
