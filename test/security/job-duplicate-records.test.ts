// The host (untrusted) chooses which records a job receives. Sending one genuine encrypted record
// ten times lifted it past minGroupSize, so `groupBy: [<encrypted field>]` with a filter on its id
// released that record's decrypted value as a group key, even with DP on. A job now refuses a
// record id it has already seen.
import { describe, expect, it } from 'vitest';
import { RecordIdSet, createJob } from '../../enclave/job.js';
import fc from 'fast-check';
import { ToolkitError } from '../../attestation/errors.js';
import { encryptedCustomers } from '../pipeline/fixtures.js';

describe('a job and repeated records', () => {
  it('refuses the same record sent again (in one batch or a later one)', async () => {
    const data = await encryptedCustomers(20);
    const target = data.records[3]!;
    const idField = data.manifest.idField;
    const query = {
      version: 1,
      filter: { op: 'eq', field: idField, value: (target as Record<string, unknown>)[idField] },
      groupBy: ['email'],
      aggregates: [{ name: 'n', op: 'count' }],
      privacy: { dp: { epsilon: 1 } },
    };
    const open = () =>
      createJob({ jobId: 'job-1', datasetId: data.manifest.datasetId, query, manifest: data.manifest, keys: data.kms.keys(), platform: 'simulator', workerVersion: '0.1.0' });

    const copies = Array.from({ length: 40 }, () => structuredClone(target));
    let err: unknown;
    try {
      open().addBatch(copies);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ToolkitError);
    expect([(err as ToolkitError).code, (err as ToolkitError).reason]).toEqual(['ERR_DATASET_INVALID', 'duplicate_record_id']);
    // The message names neither the id nor any field value.
    expect((err as ToolkitError).message).not.toContain(String((target as Record<string, unknown>)[idField]));

    const job = open();
    job.addBatch([structuredClone(target)]);
    expect(() => job.addBatch([structuredClone(target)])).toThrow(ToolkitError);
    expect(job.state).toBe('failed');
  });

  it('distinct records still go through', async () => {
    const data = await encryptedCustomers(30);
    const job = createJob({
      jobId: 'job-2', datasetId: data.manifest.datasetId, manifest: data.manifest, keys: data.kms.keys(), platform: 'simulator', workerVersion: '0.1.0',
      query: { version: 1, groupBy: [], aggregates: [{ name: 'n', op: 'count' }], privacy: {} },
    });
    job.addBatch(structuredClone(data.records.slice(0, 15)));
    job.addBatch(structuredClone(data.records.slice(15)));
    expect(job.finish().result.counts.records).toBe(30);
  });

  it('the fingerprint set: every repeat refused, distinct ids kept across growth, any key', () => {
    const set = new RecordIdSet(undefined, 16);
    let refused = 0;
    for (let i = 0; i < 100_000; i++) if (!set.add(`cust-${i}`)) refused++;
    expect(refused).toBe(0);
    expect(set.size).toBe(100_000);
    let accepted = 0;
    for (let i = 0; i < 100_000; i++) if (set.add(`cust-${i}`)) accepted++;
    expect(accepted).toBe(0);
    expect(set.size).toBe(100_000);
    // Strings that share UTF-8 bytes (lone surrogates) but differ are distinct ids.
    const s2 = new RecordIdSet();
    expect(s2.add('a\ud800')).toBe(true);
    expect(s2.add('a\udc00')).toBe(true);
    expect(s2.add('a\ud800')).toBe(false);
    fc.assert(
      fc.property(fc.tuple(fc.integer(), fc.integer()), fc.uniqueArray(fc.string({ minLength: 1, maxLength: 40 }), { maxLength: 200 }), (seed, ids) => {
        const s = new RecordIdSet(seed, 16);
        for (const id of ids) expect(s.add(id)).toBe(true);
        for (const id of ids) expect(s.add(id)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });
});
