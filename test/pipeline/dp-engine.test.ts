// The engine under differential privacy with resolved parameters (EngineOptions): partition
// selection, public domains, clamping and fixed point, integer outputs, what is withheld, refusals.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AnalyticsEngine, discreteLaplaceVariance, fixedPoint, measurementsPerGroup, splitEpsilon, validateQuery, type EngineOptions } from '../../enclave/analytics/index.js';
import { expectCode } from './helpers.js';

function seededBytes(seed: string): (n: number) => Uint8Array {
  let ctr = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) out.set(createHash('sha256').update(`${seed}/${ctr++}`).digest().subarray(0, Math.min(32, n - off)), off);
    return out;
  };
}

const DP = { epsilon: 1, delta: 1e-6 };

function run(query: object, records: Record<string, unknown>[], opts: Partial<EngineOptions> = {}) {
  const e = new AnalyticsEngine(validateQuery(query), { minGroupSize: 10, dp: DP, ...opts });
  for (const r of records) e.add(r);
  return e.finish();
}

const recs = (n: number, region: string, extra: (i: number) => object = () => ({})) =>
  Array.from({ length: n }, (_, i) => ({ region, age: 20 + (i % 40), ...extra(i) }));

describe('fixed point for DP sums', () => {
  it('unit between 2^-20 and 2^-19 of max(|lo|, |hi|); sensitivity = ceil(M / unit)', () => {
    expect(fixedPoint(0, 100)).toEqual({ unit: 2 ** -13, sensitivity: BigInt(100 * 2 ** 13) });
    expect(fixedPoint(-1, 1)).toEqual({ unit: 2 ** -20, sensitivity: 2n ** 20n });
    expect(fixedPoint(-3, 2)).toEqual({ unit: 2 ** -18, sensitivity: 3n * 2n ** 18n });
    for (const [lo, hi] of [[0, 1e-300], [-1e300, 5], [0.1, 0.3], [0, 2 ** 40 + 1]] as const) {
      const fp = fixedPoint(lo, hi);
      const m = Math.max(Math.abs(lo), Math.abs(hi));
      expect(fp.unit > 0).toBe(true);
      expect(Number(fp.sensitivity)).toBeLessThanOrEqual(2 ** 20 + 1);
      expect(Math.abs(Math.round(m / fp.unit))).toBeLessThanOrEqual(Number(fp.sensitivity));
    }
  });
});

describe('partition selection', () => {
  it('threshold = max(minGroupSize, 2) + ceil(b ln(1/(2 delta))) with b the count scale', () => {
    const q = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }, { name: 'm', op: 'mean', field: 'age', clamp: [0, 100] }] };
    const out = run(q, recs(5, 'a'), { randomBytes: seededBytes('t') });
    const eps = splitEpsilon(1, measurementsPerGroup(validateQuery(q)));
    expect(measurementsPerGroup(validateQuery(q))).toBe(3);
    const b = Number(eps.den) / Number(eps.num);
    expect(out.privacy).toEqual({ minGroupSize: 10, dp: { mechanism: 'discrete-laplace', epsilon: 1, delta: 1e-6, threshold: 10 + Math.ceil(b * Math.log(1 / 2e-6)) } });
    expect(out.privacy.dp!.threshold).toBe(10 + 40);
    const one = run({ version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }] }, [], { minGroupSize: 1 });
    expect(one.privacy.dp!.threshold).toBe(2 + Math.ceil(Math.log(1 / 2e-6)));
  });

  it('big groups are released with integer noisy counts; small ones and their keys are not; exact counts withheld', () => {
    const data = [...recs(400, 'north'), ...recs(300, 'south'), ...recs(3, 'tiny'), ...Array.from({ length: 50 }, (_, i) => ({ region: `solo-${i}`, age: 30 }))];
    const out = run({ version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }] }, data, { randomBytes: seededBytes('big') });
    expect(out.groups.map((g) => g.key)).toEqual([['north'], ['south']]);
    for (const g of out.groups) {
      expect(Number.isInteger(g.count)).toBe(true);
      expect(g.aggregates.n).toBe(g.count);
    }
    expect(Math.abs(out.groups[0]!.count - 400)).toBeLessThan(20);
    expect(out.counts).toEqual({ records: 753, matched: null, groups: 2, suppressedGroups: null });
    const text = JSON.stringify(out);
    expect(text).not.toContain('tiny');
    expect(text).not.toContain('solo-');
  });

  it('requires 0 < delta < 0.5 for keys found in the data', () => {
    const q = validateQuery({ version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }] });
    expectCode(() => new AnalyticsEngine(q, { minGroupSize: 10, dp: { epsilon: 1, delta: 0 } }), 'ERR_QUERY_REFUSED', 'delta');
    expect(() => new AnalyticsEngine(q, { minGroupSize: 10, dp: { epsilon: 1, delta: 1 } })).toThrow(RangeError);
    // without groupBy there is one public key: delta 0 is fine
    expect(new AnalyticsEngine(validateQuery({ version: 1, aggregates: [{ name: 'n', op: 'count' }] }), { minGroupSize: 10, dp: { epsilon: 1, delta: 0 } }).threshold).toBe(0);
  });
});

describe('public domains', () => {
  const q = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }] };
  const domains = new Map([['region', ['north', 'south', 'empty']]]);

  it('releases the declared keys only, records outside the domain go nowhere, threshold 0', () => {
    const data = [...recs(200, 'north'), ...recs(150, 'south'), ...recs(1000, 'elsewhere')];
    const out = run(q, data, { publicDomains: domains, dp: { epsilon: 2, delta: 0 }, randomBytes: seededBytes('pd') });
    expect(out.privacy.dp!.threshold).toBe(0);
    expect(out.groups.map((g) => g.key)).toEqual([['north'], ['south']]);
    expect(Math.abs(out.groups[0]!.count - 200)).toBeLessThan(15);
    expect(Math.abs(out.groups[1]!.count - 150)).toBeLessThan(15);
    expect(JSON.stringify(out)).not.toContain('elsewhere');
    expect(out.counts.records).toBe(1350);
  });

  it('an empty combination is a candidate like any other: its count is noised from 0', () => {
    // minGroupSize 1: "empty" appears whenever its noise is >= 1, i.e. with probability a/(1+a)
    let shown = 0;
    const T = 400;
    const src = seededBytes('empty');
    for (let i = 0; i < T; i++) {
      const out = run(q, recs(50, 'north'), { publicDomains: domains, minGroupSize: 1, dp: { epsilon: 0.5, delta: 0 }, randomBytes: src });
      if (out.groups.some((g) => g.key[0] === 'empty')) shown++;
    }
    const a = Math.exp(-0.5);
    const p = a / (1 + a);
    expect(Math.abs(shown / T - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / T));
  });

  it('the cross product of several domains, in declared order; partial domains mean data-derived keys', () => {
    const data = [...recs(300, 'n', () => ({ tier: 'gold' })), ...recs(300, 's', () => ({ tier: 'basic' }))];
    const q2 = { version: 1, groupBy: ['region', 'tier'], aggregates: [{ name: 'n', op: 'count' }] };
    const out = run(q2, data, { publicDomains: new Map([['region', ['n', 's']], ['tier', ['gold', 'basic']]]), dp: { epsilon: 4, delta: 0 }, randomBytes: seededBytes('x') });
    expect(out.groups.map((g) => g.key).filter((k) => k.join() === 'n,gold' || k.join() === 's,basic')).toEqual([['n', 'gold'], ['s', 'basic']]);
    const partial = run(q2, data, { publicDomains: new Map([['region', ['n', 's']]]), randomBytes: seededBytes('y') });
    expect(partial.privacy.dp!.threshold).toBeGreaterThan(10);
  });

  it('too large a cross product is refused before any record', () => {
    const big = new Map<string, (string | number)[]>([['a', Array.from({ length: 200 }, (_, i) => i)], ['b', Array.from({ length: 200 }, (_, i) => `v${i}`)]]);
    expectCode(() => new AnalyticsEngine(validateQuery({ version: 1, groupBy: ['a', 'b'], aggregates: [{ name: 'n', op: 'count' }] }), { minGroupSize: 10, dp: DP, publicDomains: big }), 'ERR_QUERY_REFUSED', 'too_many_groups');
  });
});

describe('sums, means, histograms and sentiment under DP', () => {
  it('values are clamped (policy bounds win), noised in fixed point and converted back', () => {
    const data = recs(1000, 'r', (i) => ({ v: i % 2 === 0 ? 50 : 1e9 }));
    const q = { version: 1, aggregates: [{ name: 's', op: 'sum', field: 'v', clamp: [0, 100] }, { name: 'm', op: 'mean', field: 'v', clamp: [0, 100] }] };
    const out = run(q, data, { dp: { epsilon: 10, delta: 1e-6 }, randomBytes: seededBytes('sum') });
    const a = out.groups[0]!.aggregates as { s: number; m: number };
    // eps per measurement 10/4 = 2.5: sum noise scale 100/2.5 = 40
    expect(Math.abs(a.s - 75_000)).toBeLessThan(400);
    expect(Math.abs(a.m - 75)).toBeLessThan(1);
    expect(Number.isInteger(a.s / 2 ** -13)).toBe(true);
    const policy = run(q, data, { dp: { epsilon: 10, delta: 1e-6 }, clamps: new Map([['v', [0, 10] as const]]), randomBytes: seededBytes('sum') });
    const p = policy.groups[0]!.aggregates as { s: number; m: number };
    expect(Math.abs(p.s - 10_000)).toBeLessThan(40);
    expect(p.m).toBeLessThanOrEqual(10);
  });

  it('the noise of a sum has the variance its sensitivity implies', () => {
    const q = validateQuery({ version: 1, aggregates: [{ name: 's', op: 'sum', field: 'v', clamp: [-1, 1] }] });
    const src = seededBytes('sumvar');
    const xs: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const e = new AnalyticsEngine(q, { minGroupSize: 1, dp: { epsilon: 2, delta: 1e-6 }, randomBytes: src });
      for (let j = 0; j < 100; j++) e.add({ v: 0.5 });
      xs.push(e.finish().groups[0]!.aggregates.s as number);
    }
    const defined = xs;
    const mean = defined.reduce((a, b) => a + b, 0) / defined.length;
    const variance = defined.reduce((a, b) => a + (b - mean) ** 2, 0) / (defined.length - 1);
    // sensitivity 2^20 units of 2^-20, eps per measurement 1: scale 1 in value units
    const v = discreteLaplaceVariance(2 ** 20) * 2 ** -40;
    expect(Math.abs(mean - 50)).toBeLessThan(4 * Math.sqrt(v / defined.length));
    expect(Math.abs(variance / v - 1)).toBeLessThan(0.15);
  });

  it('a mean is null when the noisy count of values is below 1, and stays within the bounds', () => {
    const data = recs(100, 'r');
    const q = { version: 1, aggregates: [{ name: 'n', op: 'count' }, { name: 'm', op: 'mean', field: 'missing', clamp: [0, 100] }] };
    let nulls = 0;
    const src = seededBytes('mean-null');
    for (let i = 0; i < 100; i++) {
      const m = run(q, data, { dp: { epsilon: 3, delta: 1e-6 }, randomBytes: src }).groups[0]!.aggregates.m as number | null;
      if (m === null) nulls++;
      else expect(m >= 0 && m <= 100).toBe(true);
    }
    expect(nulls).toBeGreaterThan(60);
  });

  it('histogram cells and counts are non-negative integers; sentiment splits withheld', () => {
    const data = recs(300, 'r', (i) => ({ text: i % 3 === 0 ? 'awful' : 'great' }));
    const out = run({ version: 1, aggregates: [{ name: 'h', op: 'histogram', field: 'age', bins: [0, 10, 30, 50, 100] }, { name: 's', op: 'sentiment', field: 'text' }] }, data, { dp: { epsilon: 5, delta: 1e-6 }, randomBytes: seededBytes('h') });
    const a = out.groups[0]!.aggregates as { h: { counts: number[]; below: number; above: number }; s: { mean: number; positive: null } };
    for (const c of [...a.h.counts, a.h.below, a.h.above]) expect(Number.isInteger(c) && c >= 0).toBe(true);
    expect(Math.abs(a.h.counts[1]! - 75)).toBeLessThan(15);
    expect(a.s.positive).toBeNull();
    expect(Math.abs(a.s.mean - (100 * -4 + 200 * 3) / 300)).toBeLessThan(0.5);
  });
});

describe('refusals before any record', () => {
  it('ops outside DP, missing clamps, an epsilon share too small to represent', () => {
    expectCode(() => new AnalyticsEngine(validateQuery({ version: 1, aggregates: [{ name: 'm', op: 'max', field: 'x' }] }), { minGroupSize: 10, dp: DP }), 'ERR_QUERY_REFUSED', 'dp_op');
    expectCode(() => new AnalyticsEngine(validateQuery({ version: 1, aggregates: [{ name: 's', op: 'sum', field: 'x' }] }), { minGroupSize: 10, dp: DP }), 'ERR_QUERY_REFUSED', 'clamp');
    // a policy clamp is enough
    expect(() => new AnalyticsEngine(validateQuery({ version: 1, aggregates: [{ name: 's', op: 'sum', field: 'x' }] }), { minGroupSize: 10, dp: DP, clamps: new Map([['x', [0, 1] as const]]) })).not.toThrow();
    expectCode(() => new AnalyticsEngine(validateQuery({ version: 1, aggregates: [{ name: 'n', op: 'count' }] }), { minGroupSize: 10, dp: { epsilon: 1e-10, delta: 1e-6 } }), 'ERR_QUERY_REFUSED', 'epsilon');
    expect(() => new AnalyticsEngine(validateQuery({ version: 1, aggregates: [{ name: 'n', op: 'count' }] }), { minGroupSize: 0, dp: null })).toThrow(RangeError);
  });

  it('the engine ignores query.privacy: the caller resolves it', () => {
    const q = { version: 1, aggregates: [{ name: 'n', op: 'count' }], privacy: { minGroupSize: 1000, dp: { epsilon: 10 } } };
    const out = run(q, recs(50, 'r'), { dp: null, minGroupSize: 10 });
    expect(out.groups[0]!.count).toBe(50);
    expect(out.privacy.dp).toBeNull();
  });
});
