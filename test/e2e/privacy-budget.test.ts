/**
 * The privacy ledger (privacy.md 3): the owner's budget, charged when a job is admitted, kept by the
 * worker for its life and sealed to the host between restarts; generations bound into every result.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { runJob } from '../../host/run.js';
import { connectEnclave } from '../../host/enclave-conn.js';
import { setUp, IMAGE_A, type Fixture } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await setUp(100, {
    policy: { version: 1, minGroupSize: 10, dimensions: '*', aggregates: '*', filters: '*', dp: { required: false, epsilonMin: 0.5, epsilonMax: 6, budget: 10, delta: 1e-6 }, exactExtrema: true },
  });
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

const dpQuery = (epsilon: number) => ({ version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }], privacy: { minGroupSize: 10, dp: { epsilon } } });

describe('differential privacy budget kept by the worker', () => {
  it('spends epsilon per dataset across jobs and refuses a query past the owner budget', async () => {
    const w = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'dp' });
    const connect = () => connectEnclave({ kind: 'unix', path: w.socketPath });
    const first = await runJob(fx.baseRun({ query: dpQuery(6), connect }));
    if (!first.ok) throw new Error(first.error.message);
    expect(first.result.privacy.dp).toMatchObject({ mechanism: 'discrete-laplace', epsilon: 6, delta: 1e-6, budget: { limit: 10, spent: 6 } });
    expect(first.result.ledger).toEqual({ generation: 1, spent: 6 });
    expect(first.ledger).toBeInstanceOf(Uint8Array);
    // An exact query is admitted too (the owner allows it) and takes the next generation, spending nothing.
    const exact = await runJob(fx.baseRun({ query: { version: 1, aggregates: [{ name: 'n', op: 'count' }] }, connect }));
    if (!exact.ok) throw new Error(exact.error.message);
    expect(exact.result.ledger).toEqual({ generation: 2, spent: 6 });
    const second = await runJob(fx.baseRun({ query: dpQuery(6), connect }));
    expect(second.ok).toBe(false);
    if (!second.ok) {
      expect(second.error.code).toBe('ERR_PRIVACY_BUDGET');
      expect(second.error.reason).toBe('exhausted');
      expect(second.refusal?.doc.ledger).toBeNull();
    }
  });

  it('--require-dp refuses an exact query the owner would allow, before any key; answers a DP one', async () => {
    const w = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'dp-only', extraArgs: ['--require-dp'] });
    const connect = () => connectEnclave({ kind: 'unix', path: w.socketPath });
    const refused = await runJob(fx.baseRun({ query: { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }] }, connect }));
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.error.code).toBe('ERR_QUERY_REFUSED');
      expect(refused.error.message).toMatch(/differentially private/);
      expect(refused.refusal?.doc.sealDigest).toBeNull();
    }
    const answered = await runJob(fx.baseRun({ query: dpQuery(1), connect }));
    if (!answered.ok) throw new Error(answered.error.message);
    expect(answered.result.privacy.dp).toMatchObject({ mechanism: 'discrete-laplace', epsilon: 1 });
  });

  it('a restarted worker resumes from the sealed ledger; an older or forged ledger is refused', async () => {
    const w1 = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'ledger-1' });
    const c1 = () => connectEnclave({ kind: 'unix', path: w1.socketPath });
    const a = await runJob(fx.baseRun({ query: dpQuery(2), connect: c1 }));
    if (!a.ok) throw new Error(a.error.message);
    const b = await runJob(fx.baseRun({ query: dpQuery(2), connect: c1, ledger: a.ledger! }));
    if (!b.ok) throw new Error(b.error.message);
    expect(b.result.ledger).toEqual({ generation: 2, spent: 4 });
    // Rolling back while the worker lives: refused.
    const rolled = await runJob(fx.baseRun({ query: dpQuery(2), connect: c1, ledger: a.ledger! }));
    expect(rolled.ok).toBe(false);
    if (!rolled.ok) expect(rolled.error.reason).toBe('ledger_rollback');
    // A forged blob: refused.
    const forged = new Uint8Array(b.ledger!);
    forged[20]! ^= 1;
    const bad = await runJob(fx.baseRun({ query: dpQuery(2), connect: c1, ledger: forged }));
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error).toMatchObject({ code: 'ERR_SEAL_INVALID', reason: 'ledger' });
    await w1.stop();

    // A new worker process (restart): with the latest sealed ledger it continues where w1 stopped.
    const w2 = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'ledger-2' });
    const c2 = () => connectEnclave({ kind: 'unix', path: w2.socketPath });
    const c = await runJob(fx.baseRun({ query: dpQuery(2), connect: c2, ledger: b.ledger! }));
    if (!c.ok) throw new Error(c.error.message);
    expect(c.result.ledger).toEqual({ generation: 3, spent: 6 });
    // Without it (a host that drops the ledger), the worker cannot know: the result repeats generation 1,
    // which `audit verify` reports as a rollback (two attested documents with one generation).
    const w3 = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'ledger-3' });
    const d = await runJob(fx.baseRun({ query: dpQuery(2), connect: () => connectEnclave({ kind: 'unix', path: w3.socketPath }) }));
    if (!d.ok) throw new Error(d.error.message);
    expect(d.result.ledger.generation).toBe(1);
    expect(d.result.ledger.generation).toBe(a.result.ledger.generation);
  });
});
