/**
 * Finding 1: DP released singleton groups with their decrypted keys. With `--require-dp`, the query
 * `groupBy: ["email"]`, count only, epsilon 1e-6 released about half of 200 customers' e-mails as
 * group keys: the release threshold was `noisy count >= minGroupSize` whatever the noise scale, any
 * epsilon > 0 was accepted, and groups + suppressedGroups was the exact distinct count.
 *
 * Mechanisms (privacy.md 3): the owner's epsilon range (a floor refuses 1e-6), partition selection
 * with a threshold that grows with the noise (minGroupSize + b ln(1/2δ)), integer noise from a
 * CSPRNG, and no exact group or suppressed-group counts under DP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJob } from '../../host/run.js';
import { setUp, type Fixture } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  // No release policy sealed: the strictest default (DP required, epsilon in [0.01, 1]).
  fx = await setUp(200, { policy: null });
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

const byEmail = (epsilon: number, dummies = 0) => ({
  version: 1,
  groupBy: ['email'],
  aggregates: [
    { name: 'n', op: 'count' },
    ...Array.from({ length: dummies }, (_, i) => ({ name: `m${i}`, op: 'mean', field: 'spend', clamp: [0, 100] })),
  ],
  privacy: { dp: { epsilon } },
});

describe('attack 1: DP group release of singleton groups', () => {
  it('a tiny epsilon is refused by the owner range before any key is fetched', async () => {
    const out = await runJob(fx.baseRun({ query: byEmail(1e-6) }));
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expect(out.error.code).toBe('ERR_QUERY_REFUSED');
      expect(out.error.reason).toBe('epsilon_range');
    }
  });

  it('at the largest allowed epsilon, no e-mail comes out as a group key, and no exact group counts', async () => {
    const secrets = new Set(Array.from({ length: 200 }, (_, i) => `person${i}@secret-mail.example`));
    for (const q of [byEmail(1), byEmail(1, 3)]) {
      const out = await runJob(fx.baseRun({ query: q }));
      if (!out.ok) throw new Error(`${out.error.code}: ${out.error.message}`);
      for (const g of out.result.groups) expect(secrets.has(String(g.key[0]))).toBe(false);
      expect(out.result.groups).toHaveLength(0);
      expect(out.result.counts.suppressedGroups).toBeNull();
      expect(out.result.counts.matched).toBeNull();
      expect(out.result.privacy.dp!.threshold).toBeGreaterThan(10);
      const text = Buffer.from(out.resultBytes).toString('latin1');
      for (const s of secrets) expect(text.includes(s)).toBe(false);
    }
  });
});
