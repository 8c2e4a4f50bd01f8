// The host (untrusted) chooses which records a job receives. Sending one genuine encrypted record
// ten times once lifted it past minGroupSize, so `groupBy: [<encrypted field>]` with a filter on its
// id released that record's decrypted value as a group key, even with DP on. A per-id set in the job
// refused that; now the owner's seal does (privacy.md 1): the job releases nothing unless the count
// and the in-order digest of what it received equal the sealed ones, so a record sent twice (in one
// batch or across batches, in addition to the sealed records or in place of others) is refused at
// finish, with the one constant refusal, and no per-id memory is needed.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { clone, encryptedCustomers, expectJobRefused, failureOf, hostExpectation, openJob, testLinks, type EncryptedDataset } from '../pipeline/fixtures.js';

function attackQuery(data: EncryptedDataset, target: Record<string, unknown>) {
  const idField = data.manifest.idField;
  return {
    version: 1,
    filter: { op: 'eq', field: idField, value: target[idField] },
    groupBy: ['email'],
    aggregates: [{ name: 'n', op: 'count' }],
    privacy: { dp: { epsilon: 1 } },
  };
}

/** Send `records` in the given batch sizes (cycled) and ask for the result with an honest job_end. */
function runWith(data: EncryptedDataset, query: Record<string, unknown>, records: readonly Record<string, unknown>[], sizes: readonly number[] = [records.length || 1]) {
  const job = openJob(data, query);
  let i = 0;
  let s = 0;
  while (i < records.length) {
    const n = Math.max(1, sizes[s++ % sizes.length]!);
    job.addBatch(clone(records.slice(i, i + n)));
    i += n;
  }
  return { job, finish: () => job.finish(hostExpectation(data.manifest.datasetId, records)) };
}

describe('a job and repeated records', () => {
  it('the same genuine record sent k times is never released: in one batch or across batches', async () => {
    const data = await encryptedCustomers(20);
    const target = data.records[3]!;
    const query = attackQuery(data, target);
    const decrypted = String((JSON.parse(data.plaintext.split('\n')[3]!) as Record<string, unknown>).email);
    for (const k of [2, 5, 10, 20, 40]) {
      const copies = Array.from({ length: k }, () => target);
      // In one batch, and one record per batch.
      for (const sizes of [[k], [1]]) {
        const { job, finish } = runWith(data, query, copies, sizes);
        const e = expectJobRefused(finish);
        expect(e.message).not.toContain(String(target.id));
        expect(e.message).not.toContain(decrypted);
        // Which check fired (inside the enclave only): past the sealed count, or not the sealed sequence.
        expect(failureOf(job)).toMatchObject({ code: 'ERR_DATASET_INVALID', reason: k > 20 ? 'count' : 'seal_mismatch' });
      }
    }
  });

  it('a duplicate added to the genuine records, or in place of another record, is refused', async () => {
    const data = await encryptedCustomers(20);
    const target = data.records[3]!;
    const query = attackQuery(data, target);
    const added = [...data.records, target];
    const inPlace = data.records.map((r, i) => (i === 10 ? target : r));
    const tenInPlace = data.records.map((r, i) => (i >= 10 ? target : r));
    const sentAgainLater = [...data.records.slice(0, 19), target];
    for (const [recs, reason] of [[added, 'count'], [inPlace, 'seal_mismatch'], [tenInPlace, 'seal_mismatch'], [sentAgainLater, 'seal_mismatch']] as const) {
      for (const sizes of [[recs.length], [1], [7, 3]]) {
        const { job, finish } = runWith(data, query, recs, sizes);
        expectJobRefused(finish);
        expect(failureOf(job).reason).toBe(reason);
      }
    }
  });

  it('property: any sequence holding a repeated record is refused, with the one constant refusal', async () => {
    const data = await encryptedCustomers(12);
    const query = attackQuery(data, data.records[0]!);
    const n = data.records.length;
    fc.assert(
      fc.property(
        fc.nat(n - 1),
        fc.array(fc.nat(n - 1), { maxLength: 3 * n }),
        fc.nat(3 * n),
        fc.boolean(),
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 5 }),
        (dup, picks, at, replace, sizes) => {
          // Any sequence of genuine records (in any order, any subset) with record `dup` at least twice.
          const seq = [...picks.map((i) => data.records[i]!)];
          const pos = Math.min(at, seq.length);
          if (replace && seq.length > 0) seq[Math.min(pos, seq.length - 1)] = data.records[dup]!;
          else seq.splice(pos, 0, data.records[dup]!);
          seq.push(data.records[dup]!);
          const { job, finish } = runWith(data, query, seq, sizes);
          expectJobRefused(finish);
          expect(['count', 'seal_mismatch']).toContain(failureOf(job).reason);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('distinct sealed records go through, however they are batched', async () => {
    const data = await encryptedCustomers(30);
    const query = { version: 1, groupBy: [], aggregates: [{ name: 'n', op: 'count' }], privacy: { dp: { epsilon: 1 } } };
    const { finish } = runWith(data, query, data.records, [15]);
    const out = finish().build(testLinks({ limit: 3, spent: 1 }));
    expect(out.result.counts.records).toBe(30);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 6 }), (sizes) => {
        const r = runWith(data, query, data.records, sizes);
        expect(r.job.state).toBe('open');
        expect(r.finish().build(testLinks({ limit: 3, spent: 1 })).result.counts.records).toBe(30);
      }),
      { numRuns: 30 },
    );
  });
});
