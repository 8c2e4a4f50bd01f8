import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runJob } from '../../host/run.js';
import { connectEnclave } from '../../host/enclave-conn.js';
import { setUp, IMAGE_A, type Fixture } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await setUp(100);
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

describe('differential privacy budget kept by the worker', () => {
  it('spends epsilon per dataset across jobs and refuses a query past the budget', async () => {
    const budgetFile = join(fx.stack.dir, 'budget.json');
    const w = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'dp', extraArgs: ['--privacy-budget-file', budgetFile] });
    const query = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }], privacy: { minGroupSize: 10, dp: { epsilon: 6 } } };
    const run = () => runJob(fx.baseRun({ query, connect: () => connectEnclave({ kind: 'unix', path: w.socketPath }) }));
    const first = await run();
    if (!first.ok) throw new Error(first.error.message);
    expect(first.result.privacy.dp).toMatchObject({ mechanism: 'laplace', epsilon: 6, budget: { limit: 10, spent: 6 } });
    expect(existsSync(budgetFile)).toBe(true);
    expect(JSON.parse(readFileSync(budgetFile, 'utf8')).spent['e2e-ds']).toBe(6);
    const second = await run();
    expect(second.ok).toBe(false);
    if (!second.ok) expect(second.error.message).toMatch(/ERR_PRIVACY_BUDGET/);
  });

  it('--require-dp refuses an exact query before fetching any key, and answers a DP one', async () => {
    const w = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'dp-only', extraArgs: ['--require-dp'] });
    const connect = () => connectEnclave({ kind: 'unix', path: w.socketPath });
    const exact = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }] };
    const refused = await runJob(fx.baseRun({ query: exact, connect }));
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.error.message).toMatch(/ERR_QUERY_INVALID.*differentially private/);
    const noisy = { ...exact, privacy: { minGroupSize: 10, dp: { epsilon: 1 } } };
    const answered = await runJob(fx.baseRun({ query: noisy, connect }));
    if (!answered.ok) throw new Error(answered.error.message);
    expect(answered.result.privacy.dp).toMatchObject({ mechanism: 'laplace', epsilon: 1 });
  });
});
