import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { JOB_REFUSED_MESSAGE, createJob, jobRefused, type Job } from '../../enclave/job.js';
import { nodeFieldDecryptor, type FieldDecryptor } from '../../enclave/field-decrypt.js';
import { DatasetDigest, decodeResult, fieldAad, formatField, queryDigest, sha384 } from '../../enclave/protocol/index.js';
import {
  TEST_KEY_ARN, clone, hex, encryptedCustomers, expectJobRefused, failureOf, hostExpectation, openJob, openPolicy, plainRecords, releaseFor, seededBytes,
  testLinks,
} from './fixtures.js';
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
const countQuery = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }] };

/** Exact mode needs the owner's consent: these datasets seal a policy that allows it. */
const exact = (count: number, opts: { rotateAfter?: number } = {}) => encryptedCustomers(count, { ...opts, policy: openPolicy() });

/** The arrays a key map holds now: the job clears the map when it wipes, so keep the arrays to check them. */
const arraysOf = (keys: Map<string, Uint8Array>) => [...keys.values()];
const allZero = (arrays: Uint8Array[]) => arrays.length > 0 && arrays.every((k) => k.every((b) => b === 0));

/** Feed records (cloned: a job decrypts in place) in batches of `size`. */
function feed(job: Job, records: readonly Record<string, unknown>[], size = records.length): void {
  for (let i = 0; i < records.length; i += size) job.addBatch(clone(records.slice(i, i + size)));
}

/** Everything about a poisoned job: addBatch did not throw, state failed, keys wiped, finish refuses constantly. */
function expectPoisoned(job: Job, keys: Uint8Array[] | undefined, code: string, reason?: string) {
  expect(job.state).toBe('failed');
  const f = failureOf(job);
  expect(f.code).toBe(code);
  if (reason !== undefined) expect(f.reason).toBe(reason);
  if (keys) expect(allZero(keys)).toBe(true);
  expectJobRefused(() => job.finish());
  return f;
}

describe('createJob end to end', () => {
  it('decrypts, aggregates, suppresses small groups and produces a canonical version 2 result', async () => {
    const data = await exact(3000, { rotateAfter: 4000 });
    expect(Object.keys(data.manifest.keys).length).toBeGreaterThan(1);
    const keys = data.keys();
    const held = arraysOf(keys);
    const job = openJob(data, query, { keys });
    feed(job, data.records, 700);
    expect(job.count).toBe(3000);
    const completion = job.finish(hostExpectation('demo-1', data.records));
    expect(job.state).toBe('finished');
    // Keys are wiped when the computation is done, before anything is built or attested.
    expect(allZero(held)).toBe(true);
    expect(keys.size).toBe(0);
    const links = testLinks();
    const { resultBytes, resultDigest, result } = completion.build(links);
    expect(resultDigest).toEqual(sha384(resultBytes));
    const doc = decodeResult(resultBytes);
    expect(doc).toEqual(result);
    expect(doc.version).toBe(2);
    expect(doc.sealDigest).toEqual(data.sealDigest);
    expect(Buffer.from(doc.datasetDigest).toString('hex')).toBe(data.manifest.digest);
    expect(doc.keyArns).toEqual([TEST_KEY_ARN]);
    expect(doc.query).toEqual(query);
    expect(doc.queryDigest).toEqual(queryDigest(query));
    expect(doc.ledger).toEqual(links.ledger);
    expect(doc.audit).toEqual(links.audit);
    expect(doc.privacy).toEqual({ minGroupSize: 10, dp: null });
    expect(doc.counts.records).toBe(3000);
    expect(typeof doc.counts.suppressedGroups).toBe('number');
    expect(doc.counts.suppressedGroups! + doc.counts.groups).toBeGreaterThanOrEqual(5);
    const plain = plainRecords(data).filter((c) => c.region === 'eu-west');
    const eu = doc.groups.find((g) => g.key[0] === 'eu-west')!;
    expect(eu.count).toBe(plain.length);
    expect(eu.aggregates.customers).toBe(plain.length);
    const sum = plain.reduce((s: number, c) => s + c.orders.total, 0);
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
    // The links are the worker's: the same computation under other links is another document.
    const again = completion.build(links);
    expect(hex(again.resultBytes)).toBe(hex(resultBytes));
    const other = completion.build({ ...links, audit: { ...links.audit, seq: 1, prev: new Uint8Array(48).fill(3) } });
    expect(other.resultDigest).not.toEqual(resultDigest);
    expect(other.result.groups).toEqual(result.groups);
  });

  it('the result does not depend on how the host batches the records', async () => {
    const data = await exact(120);
    const results = [1, 7, 64, 120].map((size) => {
      const job = openJob(data, query);
      feed(job, data.records, size);
      return hex(job.finish().build(testLinks()).resultBytes);
    });
    expect(new Set(results).size).toBe(1);
  });

  it('refuses a field moved to another record: silently at addBatch, constantly at finish', async () => {
    const data = await exact(20);
    const recs = clone(data.records);
    recs[3]!.email = recs[4]!.email;
    const keys = data.keys();
    const held = arraysOf(keys);
    const job = openJob(data, countQuery, { keys });
    expect(() => job.addBatch(recs)).not.toThrow();
    // Poisoned at once: keys wiped before finish.
    expect(job.state).toBe('failed');
    expect(allZero(held)).toBe(true);
    const f = expectPoisoned(job, held, 'ERR_FIELD_DECRYPT', 'open');
    expect(f.message).toBe(`field "email" of record "${recs[3]!.id}" could not be decrypted`);
    // Later batches are read and dropped; the refusal stays the same, however often it is asked.
    expect(() => job.addBatch(clone(data.records.slice(0, 1)))).not.toThrow();
    expect(job.state).toBe('failed');
    expect(failureOf(job)).toEqual(f);
    expectJobRefused(() => job.finish(hostExpectation('demo-1', data.records)));
  });

  it('refuses a field moved to another column of the same record, naming no value even internally', async () => {
    const data = await exact(20);
    const recs = clone(data.records);
    recs[5]!.phone = recs[5]!.email;
    const job = openJob(data, countQuery);
    job.addBatch(recs);
    const f = expectPoisoned(job, undefined, 'ERR_FIELD_DECRYPT', 'open');
    expect(f.message).toContain('"phone"');
    expect(f.message).not.toContain(String(recs[5]!.email));
  });

  it('refuses the wrong key, a missing key, a changed record id, a tampered tag, a clear value and a non-JSON plaintext', async () => {
    const data = await exact(20);
    const wrong = new Map([['k0', new Uint8Array(32).fill(1)]]);
    const held = arraysOf(wrong);
    const j1 = openJob(data, countQuery, { keys: wrong });
    j1.addBatch(clone(data.records));
    expectPoisoned(j1, held, 'ERR_FIELD_DECRYPT', 'open');

    const j2 = openJob(data, countQuery, { keys: new Map() });
    j2.addBatch(clone(data.records));
    expectPoisoned(j2, undefined, 'ERR_FIELD_DECRYPT', 'no_key');

    const recs = clone(data.records);
    recs[0]!.id = 'someone-else';
    const j3 = openJob(data, countQuery);
    j3.addBatch(recs);
    expectPoisoned(j3, undefined, 'ERR_FIELD_DECRYPT', 'open');

    const recs2 = clone(data.records);
    const s = recs2[2]!.name as string;
    recs2[2]!.name = s.slice(0, -2) + (s.at(-2) === 'A' ? 'B' : 'A') + s.at(-1);
    const j4 = openJob(data, countQuery);
    j4.addBatch(recs2);
    expectPoisoned(j4, undefined, 'ERR_FIELD_DECRYPT');

    const recs3 = clone(data.records);
    recs3[1]!.email = 'plain@example.com';
    const j5 = openJob(data, countQuery);
    j5.addBatch(recs3);
    const f5 = expectPoisoned(j5, undefined, 'ERR_FIELD_FORMAT');
    expect(f5.message).not.toContain('plain@example.com');

    // A field the owner's key really sealed under the right record, field and key reference, whose
    // plaintext is not JSON: it opens, and is still refused.
    const recs4 = clone(data.records);
    const k0 = data.keys().get('k0')!;
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', k0, iv);
    c.setAAD(fieldAad('demo-1', String(recs4[6]!.id), 'email', 'k0'));
    recs4[6]!.email = formatField('k0', iv, Buffer.concat([c.update('not json {', 'utf8'), c.final(), c.getAuthTag()]));
    const j6 = openJob(data, countQuery);
    j6.addBatch(recs4);
    const f6 = expectPoisoned(j6, undefined, 'ERR_FIELD_DECRYPT', 'plaintext');
    expect(f6.message).not.toContain('not json');

    // A key of the wrong length is the caller's error, before any record: thrown by createJob, keys wiped.
    const short = new Map([['k0', new Uint8Array(16).fill(9)], ['k1', new Uint8Array(32).fill(9)]]);
    const shortHeld = arraysOf(short);
    expectCode(() => openJob(data, countQuery, { keys: short }), 'ERR_FIELD_DECRYPT', 'key_length');
    expect(allZero(shortHeld)).toBe(true);
  });

  it('releases nothing unless count and digest equal the seal and the host\'s job_end', async () => {
    const data = await exact(30);
    const good = hostExpectation('demo-1', data.records);
    // The genuine records, with and without the host's expectation, go through.
    const ok = openJob(data, countQuery);
    feed(ok, data.records);
    expect(ok.finish(good).build(testLinks()).result.counts.records).toBe(30);
    const ok2 = openJob(data, countQuery);
    feed(ok2, data.records, 4);
    expect(ok2.finish().build(testLinks()).result.counts.records).toBe(30);

    // The host's job_end disagrees with what it sent.
    const expectations = [
      { count: 30, datasetDigest: new Uint8Array(48) },
      { count: 31, datasetDigest: good.datasetDigest },
      { count: 29, datasetDigest: good.datasetDigest },
      { count: 30, datasetDigest: good.datasetDigest.subarray(0, 32) },
      { count: 30, datasetDigest: Array.from(good.datasetDigest) as unknown as Uint8Array },
    ];
    for (const e of expectations) {
      const keys = data.keys();
      const held = arraysOf(keys);
      const job = openJob(data, countQuery, { keys });
      feed(job, data.records);
      expectJobRefused(() => job.finish(e));
      expectPoisoned(job, held, 'ERR_DATASET_INVALID', 'seal_mismatch');
    }

    // What was sent differs from the seal, and the host's job_end says what it really sent.
    const plain = plainRecords(data);
    const reordered = [data.records[1]!, data.records[0]!, ...data.records.slice(2)];
    const dropped = data.records.slice(0, 29);
    const dropMiddle = [...data.records.slice(0, 10), ...data.records.slice(11)];
    const replaced = [...data.records.slice(0, 29), data.records[0]!];
    const clearEdited = clone(data.records);
    const other = plain.find((c) => c.region !== clearEdited[7]!.region)!.region;
    clearEdited[7]!.region = other; // a clear field: it decrypts nothing, but it is sealed all the same
    const extraField = clone(data.records);
    extraField[2]!.vip = true;
    const retyped = clone(data.records);
    (retyped[3]!.orders as Record<string, unknown>).count = String((retyped[3]!.orders as Record<string, unknown>).count);
    const cases: [string, Record<string, unknown>[]][] = [
      ['two records swapped', reordered], ['the last record dropped', dropped], ['a record dropped from the middle', dropMiddle],
      ['a record replaced by another genuine one', replaced], ['a clear field edited', clearEdited], ['a clear field added', extraField],
      ['a clear value retyped', retyped], ['no record at all', []],
    ];
    for (const [name, recs] of cases) {
      const job = openJob(data, countQuery);
      feed(job, recs, 8);
      expect(job.state, name).toBe('open');
      expectJobRefused(() => job.finish(hostExpectation('demo-1', recs)));
      expect(failureOf(job), name).toMatchObject({ code: 'ERR_DATASET_INVALID', reason: 'seal_mismatch' });
    }
  });

  it('refuses more records than sealed before it decrypts any of them', async () => {
    const data = await exact(20);
    const calls: number[] = [];
    const counting: FieldDecryptor = { decryptBatch: (k, items) => { calls.push(items.length); return nodeFieldDecryptor.decryptBatch(k, items); } };
    // One batch past the count: nothing of it is decrypted.
    const j1 = openJob(data, countQuery, { decryptor: counting });
    j1.addBatch(clone([...data.records, data.records[0]!]));
    expect(calls).toEqual([]);
    expectPoisoned(j1, undefined, 'ERR_DATASET_INVALID', 'count');
    // The sealed records, then one more in a later batch.
    const j2 = openJob(data, countQuery, { decryptor: counting });
    j2.addBatch(clone(data.records));
    const before = calls.length;
    expect(before).toBeGreaterThan(0);
    j2.addBatch(clone([data.records[19]!]));
    expect(calls.length).toBe(before);
    expectPoisoned(j2, undefined, 'ERR_DATASET_INVALID', 'count');
  });

  it('the job checks against the digest in the manifest it was given', async () => {
    const data = await exact(10);
    // (The worker would refuse this manifest at the seal; the job does not trust that alone.)
    const edited = { ...data.manifest, digest: 'ab'.repeat(48) };
    const job = openJob(data, countQuery, { manifest: edited });
    feed(job, data.records);
    expectJobRefused(() => job.finish(hostExpectation('demo-1', data.records)));
    expect(failureOf(job)).toMatchObject({ code: 'ERR_DATASET_INVALID', reason: 'seal_mismatch' });
    const fewer = openJob(data, countQuery, { manifest: { ...data.manifest, records: 9 } });
    fewer.addBatch(clone(data.records));
    expectPoisoned(fewer, undefined, 'ERR_DATASET_INVALID', 'count');
  });

  it('every refusal once records flowed is the same error, whatever the cause', async () => {
    const data = await exact(12);
    const tampered = clone(data.records);
    tampered[0]!.name = 'x';
    const moved = clone(data.records);
    moved[1]!.email = moved[2]!.email;
    const scenarios: [string, (j: Job) => void, ReturnType<typeof openJob> | undefined][] = [
      ['bad field format', (j) => j.addBatch(tampered), undefined],
      ['field does not open', (j) => j.addBatch(moved), undefined],
      ['not an object', (j) => j.addBatch([7]), undefined],
      ['too many records', (j) => j.addBatch(clone([...data.records, ...data.records])), undefined],
      ['digest differs', (j) => j.addBatch(clone(data.records.slice(1))), undefined],
      ['too many groups', (j) => j.addBatch(clone(data.records)), openJob(data, { version: 1, groupBy: ['id'], aggregates: [{ name: 'n', op: 'count' }] }, { maxGroups: 3 })],
      ['no key', (j) => j.addBatch(clone(data.records)), openJob(data, countQuery, { keys: new Map() })],
    ];
    const seen = new Set<string>();
    const reasons = new Set<string | undefined>();
    for (const [name, act, given] of scenarios) {
      const job = given ?? openJob(data, countQuery);
      expect(() => act(job), name).not.toThrow();
      const e = expectJobRefused(() => job.finish());
      seen.add(JSON.stringify({ name: e.name, code: e.code, reason: e.reason, message: e.message, keys: Object.keys(e) }));
      reasons.add(failureOf(job).reason);
    }
    expect(seen.size).toBe(1);
    expect(JSON.parse([...seen][0]!).message).toBe(JOB_REFUSED_MESSAGE);
    // ... while the causes were all different checks.
    expect(reasons.size).toBe(scenarios.length);
    expect(jobRefused()).toMatchObject({ code: 'ERR_JOB_REFUSED', reason: 'refused', message: JOB_REFUSED_MESSAGE });
  });

  it('dataset digest is independent of batching and key order, and covers every record', async () => {
    const data = await exact(50);
    const a = new DatasetDigest('demo-1');
    for (const r of data.records) a.add(r);
    const b = new DatasetDigest('demo-1');
    for (const r of data.records) b.add(Object.fromEntries(Object.entries(r).reverse()));
    const da = a.digest();
    expect(da).toEqual(b.digest());
    expect(Buffer.from(da).toString('hex')).toBe(data.manifest.digest);
    const c = new DatasetDigest('demo-1');
    for (const r of data.records.slice(1)) c.add(r);
    expect(c.digest()).not.toEqual(da);
    const d = new DatasetDigest('demo-2');
    for (const r of data.records) d.add(r);
    expect(d.digest()).not.toEqual(da);
  });

  it('batches decryptor calls per key, and a malformed or failing decryptor poisons the job', async () => {
    const data = await exact(40, { rotateAfter: 60 });
    const calls: number[] = [];
    const counting: FieldDecryptor = { decryptBatch: (k, items) => { calls.push(items.length); return nodeFieldDecryptor.decryptBatch(k, items); } };
    const job = openJob(data, countQuery, { decryptor: counting });
    job.addBatch(clone(data.records));
    expect(calls.length).toBe(Object.keys(data.manifest.keys).length);
    expect(calls.reduce((a, b) => a + b, 0)).toBe(200);
    expect(job.finish().build(testLinks()).result.counts.records).toBe(40);
    const bad: FieldDecryptor = { decryptBatch: () => ({ ok: [true], plaintexts: [] }) };
    const j2 = openJob(data, countQuery, { decryptor: bad });
    j2.addBatch(clone(data.records));
    expectPoisoned(j2, undefined, 'ERR_FIELD_DECRYPT', 'decryptor');
    const throwing: FieldDecryptor = { decryptBatch: () => { throw new Error('boom'); } };
    const j3 = openJob(data, countQuery, { decryptor: throwing });
    expect(() => j3.addBatch(clone(data.records))).not.toThrow();
    expectPoisoned(j3, undefined, 'ERR_FIELD_DECRYPT', 'decryptor');
  });

  it('DP: integer noise from the injected random bytes; the result names the mechanism and the budget', async () => {
    // No policy sealed: the strict default (DP required, epsilon up to 1, budget 3, delta 1e-6).
    const data = await encryptedCustomers(400);
    const dpQuery = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }, { name: 's', op: 'sum', field: 'orders.count', clamp: [0, 12] }], privacy: { dp: { epsilon: 1 } } };
    const release = releaseFor(data, dpQuery);
    expect(release.dp).toEqual({ epsilon: 1, delta: 1e-6 });
    let draws = 0;
    const run = (seed: string) => {
      const src = seededBytes(seed);
      const job = openJob(data, dpQuery, { release, randomBytes: (n) => { draws++; return src(n); } });
      feed(job, data.records, 100);
      return job.finish(hostExpectation('demo-1', data.records)).build(testLinks({ limit: 3, spent: 1 }));
    };
    const r1 = run('a');
    expect(draws).toBeGreaterThan(0);
    const doc = decodeResult(r1.resultBytes);
    expect(doc.counts.matched).toBeNull();
    expect(doc.counts.suppressedGroups).toBeNull();
    expect(doc.counts.records).toBe(400);
    expect(doc.ledger).toEqual({ generation: 1, spent: 1 });
    const dp = doc.privacy.dp!;
    expect(dp).toMatchObject({ mechanism: 'discrete-laplace', epsilon: 1, delta: 1e-6, budget: { limit: 3, spent: 1 } });
    expect(dp.threshold).toBeGreaterThanOrEqual(10);
    const plain = plainRecords(data);
    for (const g of doc.groups) {
      expect(Number.isInteger(g.count)).toBe(true);
      expect(g.count).toBeGreaterThanOrEqual(dp.threshold);
      const truth = plain.filter((c) => c.region === g.key[0]).length;
      expect(Math.abs(g.count - truth)).toBeLessThan(40);
    }
    // Same bytes, same result; other bytes, another result.
    expect(hex(run('a').resultBytes)).toBe(hex(r1.resultBytes));
    expect(hex(run('b').resultBytes)).not.toBe(hex(r1.resultBytes));
  });

  it('refuses records that could not come from a dataset file, silently, naming no values', async () => {
    const data = await exact(12);
    const r0 = data.records[0]!;
    const cases: [unknown[], string][] = [
      [[1], 'record'], [[null], 'record'], [[[r0]], 'record'], [[{ ...r0, blob: new Uint8Array(3) }], 'record_value'],
      [[{ ...r0, when: new Date(0) }], 'record_value'], [[{ ...r0, id: { x: 1 } }], 'record_id'],
      [[{ ...r0, id: '' }], 'record_id'], [[{ ...r0, n: NaN }], 'record_value'], [[{ ...r0, big: 10n }], 'record_value'],
    ];
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = { d: deep };
    cases.push([[{ ...r0, deep }], 'record_value']);
    for (const [batch, reason] of cases) {
      const keys = data.keys();
      const held = arraysOf(keys);
      const job = openJob(data, countQuery, { keys });
      expect(() => job.addBatch(batch), reason).not.toThrow();
      const f = expectPoisoned(job, held, 'ERR_DATASET_INVALID', reason);
      expect(f.message).not.toContain(String(r0.id));
    }
    // Not an array at all is the caller's programming error.
    expect(() => openJob(data, countQuery).addBatch('x' as unknown as unknown[])).toThrow(TypeError);
  });

  it('an aborted or finished job takes nothing more, and abort wipes the keys', async () => {
    const data = await exact(12);
    const keys = data.keys();
    const held = arraysOf(keys);
    const job = openJob(data, countQuery, { keys });
    job.addBatch(clone(data.records.slice(0, 5)));
    job.abort();
    expect(job.state).toBe('aborted');
    expect(allZero(held)).toBe(true);
    expectCode(() => job.addBatch(clone(data.records)), 'ERR_JOB_FAILED', 'aborted');
    expectCode(() => job.finish(), 'ERR_JOB_FAILED', 'aborted');
    const done = openJob(data, countQuery);
    done.addBatch(clone(data.records));
    done.finish();
    expectCode(() => done.addBatch(clone(data.records)), 'ERR_JOB_FAILED', 'finished');
    expectCode(() => done.finish(), 'ERR_JOB_FAILED', 'finished');
  });

  it('refuses invalid manifests and options up front and wipes keys', async () => {
    const data = await exact(5);
    const up = (over: Parameters<typeof openJob>[2], code: Parameters<typeof expectCode>[1], reason?: string) => {
      const keys = data.keys();
      const held = arraysOf(keys);
      expectCode(() => openJob(data, countQuery, { keys, ...over }), code, reason);
      expect(allZero(held)).toBe(true);
    };
    up({ manifest: { ...data.manifest, version: 1 } }, 'ERR_MANIFEST_INVALID', 'unsealed');
    up({ manifest: { ...data.manifest, seal: {} } }, 'ERR_MANIFEST_INVALID', '.seal.k0');
    up({ manifest: { ...data.manifest, records: -1 } }, 'ERR_MANIFEST_INVALID', '.records');
    up({ datasetId: 'other' }, 'ERR_MANIFEST_INVALID', 'dataset');
    const keys = data.keys();
    const held = arraysOf(keys);
    expect(() => openJob(data, countQuery, { keys, sealDigest: new Uint8Array(32) })).toThrow(TypeError);
    expect(allZero(held)).toBe(true);
  });
});

describe('the job and the owner\'s verdict', () => {
  it('runs with the privacy parameters of the release, not those the raw query asks for', async () => {
    const data = await exact(60);
    const q = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }], privacy: { minGroupSize: 25 } };
    const release = releaseFor(data, q);
    expect(release.minGroupSize).toBe(25);
    const job = openJob(data, q, { release: { ...release, minGroupSize: 1000 } });
    feed(job, data.records);
    const doc = job.finish().build(testLinks()).result;
    expect(doc.privacy.minGroupSize).toBe(1000);
    expect(doc.groups).toEqual([]);
    expect(doc.query).toEqual(q);
  });

});
