/**
 * Finding 5: concurrent jobs overspent the budget. Four sessions at epsilon 10 against a limit of 10
 * were all released: the ledger was read at job_start and written whole at the end (last writer
 * wins), and `--require-dp` without a budget file meant no limit.
 *
 * Mechanism: one process-wide ledger in the worker, updated under a lock, with the epsilon reserved
 * when the job is admitted (before any record); the budget is the owner's, sealed in the policy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJob } from '../../host/run.js';
import { setUp, type Fixture } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await setUp(40, { policy: { version: 1, minGroupSize: 10, dimensions: '*', aggregates: '*', filters: '*', dp: { required: true, epsilonMin: 1, epsilonMax: 10, budget: 10, delta: 1e-6 }, exactExtrema: false } });
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

describe('attack 5: concurrent sessions against one budget', () => {
  it('four concurrent jobs at epsilon 10 against a budget of 10: exactly one is released', async () => {
    const query = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }], privacy: { dp: { epsilon: 10 } } };
    const outs = await Promise.all([0, 1, 2, 3].map(() => runJob(fx.baseRun({ query }))));
    const released = outs.filter((o) => o.ok);
    expect(released).toHaveLength(1);
    for (const o of outs) if (!o.ok) expect(o.error.code).toBe('ERR_PRIVACY_BUDGET');
  });

  it('without a sealed policy the strictest default applies: DP required, a budget of 3', async () => {
    const f2 = await setUp(30, { policy: null, datasetId: 'no-policy' });
    try {
      const exact = await runJob(f2.baseRun({ query: { version: 1, aggregates: [{ name: 'n', op: 'count' }] } }));
      expect(exact.ok).toBe(false);
      if (!exact.ok) expect(exact.error.code).toBe('ERR_QUERY_REFUSED');
      const dp = { version: 1, aggregates: [{ name: 'n', op: 'count' }], privacy: { dp: { epsilon: 1 } } };
      const outs = await Promise.all([0, 1, 2, 3].map(() => runJob(f2.baseRun({ query: dp }))));
      expect(outs.filter((o) => o.ok)).toHaveLength(3);
    } finally {
      await f2.stack.close();
    }
  });
});
