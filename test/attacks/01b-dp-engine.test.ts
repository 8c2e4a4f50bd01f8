// Finding (a), hostile-host review, at engine level: under DP the engine released any group whose
// noisy count reached minGroupSize, whatever the noise scale. Grouping 200 people by email at a tiny
// epsilon (or at epsilon 1 spread over 31 dummy means) released about half of the singleton groups
// with their decrypted email as the key, and counts.groups + counts.suppressedGroups was the exact
// number of distinct emails.
//
// Confirmed against the pre-fix engine (same scenarios through its API: query.privacy.dp, float
// Laplace): 88 of 200 emails released at epsilon 1e-6, 97 of 200 at epsilon 1 with 31 dummy means,
// and groups + suppressedGroups = 200 exactly. This file asserts the fixed behaviour: a key found in
// the data needs a noisy count of minGroupSize + ceil(b ln(1/(2 delta))), so a singleton is released
// with probability below delta, and the number of suppressed groups is not released.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AnalyticsEngine, discreteLaplaceTail, splitEpsilon, validateQuery, type EngineOptions } from '../../enclave/analytics/index.js';

function seededBytes(seed: string): (n: number) => Uint8Array {
  let ctr = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) out.set(createHash('sha256').update(`${seed}/${ctr++}`).digest().subarray(0, Math.min(32, n - off)), off);
    return out;
  };
}

const people = Array.from({ length: 200 }, (_, i) => ({ email: `person${i}@example.com`, ...Object.fromEntries(Array.from({ length: 31 }, (_, j) => [`x${j}`, 1])) }));

/** groupBy email, count, and `dummies` means (one per field: at most 4 aggregates may read a field). */
function query(dummies: number) {
  const aggregates: object[] = [{ name: 'n', op: 'count' }];
  for (let j = 0; j < dummies; j++) aggregates.push({ name: `m${j}`, op: 'mean', field: `x${j}`, clamp: [0, 1] });
  return validateQuery({ version: 1, groupBy: ['email'], aggregates });
}

function attack(dummies: number, dp: { epsilon: number; delta: number }, randomBytes?: EngineOptions['randomBytes'], extra: Record<string, unknown>[] = []) {
  const e = new AnalyticsEngine(query(dummies), { minGroupSize: 10, dp, ...(randomBytes ? { randomBytes } : {}) });
  for (const r of [...people, ...extra]) e.add(r);
  return e.finish();
}

const leaked = (out: ReturnType<typeof attack>): number => out.groups.filter((g) => String(g.key[0]).startsWith('person')).length;

describe('01b: DP must not release singleton groups with their plaintext keys', () => {
  it('epsilon 1e-6, count only: no email released, the distinct count not revealed (default CSPRNG)', () => {
    const out = attack(0, { epsilon: 1e-6, delta: 1e-6 });
    expect(leaked(out)).toBe(0);
    expect(JSON.stringify(out)).not.toContain('@example.com');
    expect(out.counts.groups).toBe(0);
    expect(out.counts.suppressedGroups).toBeNull();
    expect(out.counts.matched).toBeNull();
    expect(out.privacy.dp!.threshold).toBeGreaterThan(1_000_000);
  });

  it('epsilon 1 over 31 dummy means: no email released (default CSPRNG)', () => {
    const out = attack(31, { epsilon: 1, delta: 1e-6 });
    expect(leaked(out)).toBe(0);
    expect(out.counts.suppressedGroups).toBeNull();
  });

  it('300 seeded trials of each: not a single email released', () => {
    const src = seededBytes('01b-trials');
    let released = 0;
    for (let t = 0; t < 300; t++) {
      released += leaked(attack(0, { epsilon: 1e-6, delta: 1e-6 }, src));
      released += leaked(attack(31, { epsilon: 1, delta: 1e-6 }, src));
    }
    // 120 000 singleton chances, each below delta = 1e-6
    expect(released).toBe(0);
  });

  it('calibration: at delta 0.01 the measured release rate of singletons matches a^(T-1)/(1+a) < delta', () => {
    const delta = 0.01;
    const src = seededBytes('01b-calibration');
    let released = 0;
    const T = 300;
    let threshold = 0;
    for (let t = 0; t < T; t++) {
      const out = attack(31, { epsilon: 1, delta }, src);
      threshold = out.privacy.dp!.threshold;
      released += leaked(out);
    }
    const eps = splitEpsilon(1, 63);
    const b = Number(eps.den) / Number(eps.num);
    expect(threshold).toBe(10 + Math.ceil(b * Math.log(1 / (2 * delta))));
    const p = discreteLaplaceTail(b, threshold - 1);
    expect(p).toBeLessThan(delta);
    const n = T * people.length;
    expect(Math.abs(released / n - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / n));
    expect(released / n).toBeLessThan(delta);
  });

  it('a group that many records share is still released', () => {
    const shared = Array.from({ length: 3000 }, () => ({ email: 'team@corp.example', ...Object.fromEntries(Array.from({ length: 31 }, (_, j) => [`x${j}`, 1])) }));
    const out = attack(31, { epsilon: 1, delta: 1e-6 }, seededBytes('01b-shared'), shared);
    expect(out.groups.map((g) => g.key)).toEqual([['team@corp.example']]);
    expect(leaked(out)).toBe(0);
  });
});
