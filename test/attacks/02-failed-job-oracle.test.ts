/**
 * Finding 2: failed DP jobs were a free one-bit oracle. The host padded a DP job with 10 000
 * fabricated records of distinct clear group values; the target record joined the filter only if
 * `spend >= X`, creating group 10 001 and failing the job with `too_many_groups`; a wrong job_end
 * digest turned the other branch into `digest_mismatch`. The budget was charged only on success.
 *
 * Mechanisms: the seal (fabricated records never reach a release), the group bound checked before any
 * record (the sealed record count or declared domains), one constant refusal once records flow
 * (privacy.md 4), and epsilon reserved when the job starts, so a refused job has spent it (privacy.md 3).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJob } from '../../host/run.js';
import { expectConstantRefusal, readRecords, setUp, writeRecords, type Fixture } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await setUp(50, { policy: { version: 1, minGroupSize: 10, dimensions: '*', aggregates: '*', filters: '*', dp: { required: true, epsilonMin: 0.5, epsilonMax: 1, budget: 3, delta: 1e-6 }, exactExtrema: false } });
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

const query = (x: number) => ({
  version: 1,
  filter: { op: 'or', args: [{ op: 'eq', field: 'region', value: 'pad' }, { op: 'gte', field: 'spend', value: x }] },
  groupBy: ['id'],
  aggregates: [{ name: 'n', op: 'count' }],
  privacy: { dp: { epsilon: 1 } },
});

describe('attack 2: a failing job as an oracle', () => {
  it('padding, either branch, and a wrong job_end digest all end in the same refusal, and each one is charged', async () => {
    const genuine = readRecords(fx.datasetPath);
    const pads = Array.from({ length: 200 }, (_, i) => ({ id: `pad${i}`, region: 'pad' }));
    const dataset = writeRecords(fx.stack.dir, 'oracle.ndjson', [...pads, genuine[5]!]);
    const a = await runJob(fx.baseRun({ dataset, query: query(0) }));
    const b = await runJob(fx.baseRun({ dataset, query: query(1e9) }));
    expectConstantRefusal(a);
    expectConstantRefusal(b);
    // Both jobs were admitted before any record, so both were charged: 1 + 1 of a budget of 3.
    if (!a.ok && !b.ok) {
      expect(a.refusal!.doc.ledger).toEqual({ generation: 1, spent: 1 });
      expect(b.refusal!.doc.ledger).toEqual({ generation: 2, spent: 2 });
    }
    const third = await runJob(fx.baseRun({ query: { ...query(0), groupBy: ['region'] } }));
    if (!third.ok) throw new Error(third.error.message);
    expect(third.result.privacy.dp!.budget).toEqual({ limit: 3, spent: 3 });
    // The budget is gone: the next job is refused before it reads a record.
    const fourth = await runJob(fx.baseRun({ query: { ...query(0), groupBy: ['region'] } }));
    expect(fourth.ok).toBe(false);
    if (!fourth.ok) expect(fourth.error.code).toBe('ERR_PRIVACY_BUDGET');
  });
});
