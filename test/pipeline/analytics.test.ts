import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { AnalyticsEngine, validateQuery, QuantileSketch, DistinctCounter, FrequentTerms, sentimentScore, tokenize, MAX_AGGREGATES_PER_FIELD, type EngineOptions } from '../../enclave/analytics/index.js';
import { expectCode, onlyProjectErrors } from './helpers.js';

const q = (extra: object) => validateQuery({ version: 1, aggregates: [{ name: 'n', op: 'count' }], ...extra });

/** Deterministic bytes (SHA-256 in counter mode) so that noise in tests is reproducible. */
function seededBytes(seed: string): (n: number) => Uint8Array {
  let ctr = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) out.set(createHash('sha256').update(`${seed}/${ctr++}`).digest().subarray(0, Math.min(32, n - off)), off);
    return out;
  };
}

function run(query: object, records: Record<string, unknown>[], opts: Partial<EngineOptions> = {}) {
  const e = new AnalyticsEngine(validateQuery(query), { minGroupSize: 10, dp: null, ...opts });
  for (const r of records) e.add(r);
  return e.finish();
}

describe('query validation', () => {
  const negatives: [unknown, string][] = [
    [null, '$'], [[], '$'], [{ aggregates: [{ name: 'n', op: 'count' }] }, '$.version'],
    [{ version: 2, aggregates: [{ name: 'n', op: 'count' }] }, '$.version'],
    [{ version: 1, aggregates: [{ name: 'n', op: 'count' }], limit: 5 }, '$.limit'],
    [{ version: 1, aggregates: [] }, '$.aggregates'],
    [{ version: 1, aggregates: [{ name: 'n', op: 'median', field: 'x' }] }, '$.aggregates[0].op'],
    [{ version: 1, aggregates: [{ name: '1n', op: 'count' }] }, '$.aggregates[0].name'],
    [{ version: 1, aggregates: [{ name: 'n', op: 'count' }, { name: 'n', op: 'count' }] }, '$.aggregates[1].name'],
    [{ version: 1, aggregates: [{ name: 'n', op: 'count', field: 'x' }] }, '$.aggregates[0].field'],
    [{ version: 1, aggregates: [{ name: 's', op: 'sum' }] }, '$.aggregates[0].field'],
    [{ version: 1, aggregates: [{ name: 's', op: 'sum', field: 'a..b' }] }, '$.aggregates[0].field'],
    [{ version: 1, aggregates: [{ name: 's', op: 'sum', field: '__proto__' }] }, '$.aggregates[0].field'],
    [{ version: 1, aggregates: [{ name: 's', op: 'sum', field: 'x', clamp: [5, 1] }] }, '$.aggregates[0].clamp'],
    [{ version: 1, aggregates: [{ name: 'q', op: 'quantiles', field: 'x', q: [1.5] }] }, '$.aggregates[0].q[0]'],
    [{ version: 1, aggregates: [{ name: 'q', op: 'quantiles', field: 'x', q: [] }] }, '$.aggregates[0].q'],
    [{ version: 1, aggregates: [{ name: 'h', op: 'histogram', field: 'x', bins: [0, 10, 5] }] }, '$.aggregates[0].bins[2]'],
    [{ version: 1, aggregates: [{ name: 'h', op: 'histogram', field: 'x', bins: [0] }] }, '$.aggregates[0].bins'],
    [{ version: 1, aggregates: [{ name: 't', op: 'topTerms', field: 'x', k: 0 }] }, '$.aggregates[0].k'],
    [{ version: 1, aggregates: [{ name: 't', op: 'topTerms', field: 'x', k: 2.5 }] }, '$.aggregates[0].k'],
    [{ version: 1, groupBy: 'region', aggregates: [{ name: 'n', op: 'count' }] }, '$.groupBy'],
    [{ version: 1, groupBy: ['a', 'a'], aggregates: [{ name: 'n', op: 'count' }] }, '$.groupBy'],
    [{ version: 1, groupBy: ['a', 'b', 'c', 'd', 'e'], aggregates: [{ name: 'n', op: 'count' }] }, '$.groupBy'],
    [{ version: 1, filter: { op: 'like', field: 'a', value: 'x' }, aggregates: [{ name: 'n', op: 'count' }] }, '$.filter.op'],
    [{ version: 1, filter: { op: 'eq', field: 'a', value: {} }, aggregates: [{ name: 'n', op: 'count' }] }, '$.filter.value'],
    [{ version: 1, filter: { op: 'lt', field: 'a', value: true }, aggregates: [{ name: 'n', op: 'count' }] }, '$.filter.value'],
    [{ version: 1, filter: { op: 'in', field: 'a', values: [] }, aggregates: [{ name: 'n', op: 'count' }] }, '$.filter.values'],
    [{ version: 1, filter: { op: 'and', args: [{ op: 'eq', field: 'a', value: 1, x: 1 }] }, aggregates: [{ name: 'n', op: 'count' }] }, '$.filter.args[0].x'],
    [{ version: 1, filter: { op: 'not', arg: { op: 'not' } }, aggregates: [{ name: 'n', op: 'count' }] }, '$.filter.arg.arg'],
    [{ version: 1, privacy: { minGroupSize: 0 }, aggregates: [{ name: 'n', op: 'count' }] }, '$.privacy.minGroupSize'],
    [{ version: 1, privacy: { dp: { epsilon: 0 } }, aggregates: [{ name: 'n', op: 'count' }] }, '$.privacy.dp.epsilon'],
    [{ version: 1, privacy: { dp: { epsilon: 11 } }, aggregates: [{ name: 'n', op: 'count' }] }, '$.privacy.dp.epsilon'],
    [{ version: 1, privacy: { k: 1 }, aggregates: [{ name: 'n', op: 'count' }] }, '$.privacy.k'],
    [{ version: 1, aggregates: Array.from({ length: MAX_AGGREGATES_PER_FIELD + 1 }, (_, i) => ({ name: `q${i}`, op: 'quantiles', field: 'x', q: [0.5] })) }, `$.aggregates[${MAX_AGGREGATES_PER_FIELD}].field`],
  ];
  for (const [query, path] of negatives) it(`refuses ${JSON.stringify(query)}`, () => { expectCode(() => validateQuery(query), 'ERR_QUERY_INVALID', path); });
  it('under DP, a non-DP operation is refused by the policy check (ERR_QUERY_REFUSED dp_op), not by the query grammar', () => {
    expect(validateQuery({ version: 1, privacy: { dp: { epsilon: 1 } }, aggregates: [{ name: 'm', op: 'max', field: 'x' }] }).aggregates[0]!.op).toBe('max');
  });
  it('a DP sum without a clamp is a valid query: whether bounds exist is the release policy\'s verdict (reason clamp)', () => {
    expect(validateQuery({ version: 1, privacy: { dp: { epsilon: 1 } }, aggregates: [{ name: 's', op: 'sum', field: 'x' }] }).aggregates[0]).toEqual({ name: 's', op: 'sum', field: 'x' });
  });

  it('deep filter nesting is refused', () => {
    let f: object = { op: 'eq', field: 'a', value: 1 };
    for (let i = 0; i < 10; i++) f = { op: 'not', arg: f };
    expectCode(() => validateQuery({ version: 1, filter: f, aggregates: [{ name: 'n', op: 'count' }] }), 'ERR_QUERY_INVALID');
  });

  it('property: any JSON is a valid query or ERR_QUERY_INVALID', () => {
    const agg = fc.record({ name: fc.constantFrom('n', 'x', '1', ''), op: fc.constantFrom('count', 'sum', 'quantiles', 'histogram', 'topTerms', 'x'), field: fc.constantFrom('a', 'a.b', '', 7), q: fc.jsonValue(), bins: fc.jsonValue(), k: fc.jsonValue(), clamp: fc.jsonValue() }, { requiredKeys: ['name', 'op'] });
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.record({ version: fc.constantFrom(1, 2), aggregates: fc.array(agg, { maxLength: 3 }), groupBy: fc.jsonValue(), filter: fc.jsonValue(), privacy: fc.jsonValue() }, { requiredKeys: ['version', 'aggregates'] })), (v) => {
        onlyProjectErrors(() => validateQuery(v), ['ERR_QUERY_INVALID']);
      }),
      { numRuns: 300 },
    );
  });
});

const people = (n: number, region: string, extra: (i: number) => object = () => ({})) =>
  Array.from({ length: n }, (_, i) => ({ id: `${region}-${i}`, region, age: 20 + (i % 40), spend: String(i * 2), text: 'great service', ...extra(i) }));

describe('engine and privacy guards', () => {
  it('suppresses and counts small groups; exact aggregates for the rest', () => {
    const recs = [...people(12, 'big'), ...people(9, 'small'), ...people(1, 'tiny')];
    const out = run({ version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }, { name: 's', op: 'sum', field: 'spend' }, { name: 'a', op: 'mean', field: 'age' }, { name: 'lo', op: 'min', field: 'age' }, { name: 'sd', op: 'stddev', field: 'age' }] }, recs);
    expect(out.counts).toEqual({ records: 22, matched: 22, groups: 1, suppressedGroups: 2 });
    expect(out.groups).toHaveLength(1);
    const g = out.groups[0]!;
    expect(g.key).toEqual(['big']);
    expect(g.aggregates).toMatchObject({ n: 12, s: 132, a: 25.5, lo: 20 });
    expect(g.aggregates.sd as number).toBeCloseTo(3.6056, 3);
    expect(JSON.stringify(out)).not.toContain('small');
    // the engine applies the minimum group size the caller resolved (release policy), not the query's
    expect(run({ version: 1, groupBy: ['region'], privacy: { minGroupSize: 2 }, aggregates: [{ name: 'n', op: 'count' }] }, recs).counts.groups).toBe(1);
    expect(run({ version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }] }, recs, { minGroupSize: 2 }).counts.groups).toBe(2);
  });

  it('an aggregate over a field few records carry is null, as are small histogram cells', () => {
    const recs = people(20, 'r', (i) => (i < 3 ? { rare: i } : {}));
    const out = run({ version: 1, aggregates: [{ name: 'r', op: 'sum', field: 'rare' }, { name: 'h', op: 'histogram', field: 'age', bins: [0, 25, 30, 100] }] }, recs);
    const a = out.groups[0]!.aggregates;
    expect(a.r).toBeNull();
    expect(a.h).toEqual({ edges: [0, 25, 30, 100], counts: [null, null, 10], below: 0, above: 0 });
  });

  it('filters: eq/ne/in/ranges/and/or/not, with CSV-style numeric strings', () => {
    const recs = people(40, 'r');
    // minGroupSize 1 so that small matched counts are released; a count of 0 is still withheld (null).
    const count = (filter: object) =>
      run({ version: 1, filter, aggregates: [{ name: 'n', op: 'count' }] }, recs, { minGroupSize: 1 }).counts.matched;
    expect(count({ op: 'gte', field: 'spend', value: 40 })).toBe(20);
    expect(count({ op: 'eq', field: 'spend', value: 4 })).toBe(1);
    expect(count({ op: 'in', field: 'age', values: [20, 21, 'x'] })).toBe(2);
    expect(count({ op: 'and', args: [{ op: 'gt', field: 'age', value: 30 }, { op: 'lt', field: 'age', value: 40 }] })).toBe(9);
    expect(count({ op: 'or', args: [{ op: 'eq', field: 'age', value: 20 }, { op: 'eq', field: 'age', value: 59 }] })).toBe(2);
    expect(count({ op: 'not', arg: { op: 'eq', field: 'region', value: 'r' } })).toBeNull();
    expect(count({ op: 'ne', field: 'missing', value: 1 })).toBeNull();
    expect(count({ op: 'gte', field: 'region', value: 'q' })).toBe(40);
  });

  it('withholds a matched count below minGroupSize: 0 or 1 would say whether one record passes a filter', () => {
    const recs = people(40, 'r');
    const q = (filter: object) => run({ version: 1, filter, aggregates: [{ name: 'n', op: 'count' }] }, recs).counts;
    expect(q({ op: 'eq', field: 'spend', value: 4 })).toMatchObject({ matched: null, groups: 0, suppressedGroups: 1 });
    expect(q({ op: 'eq', field: 'spend', value: -1 })).toMatchObject({ matched: null, groups: 0, suppressedGroups: 0 });
    expect(q({ op: 'lt', field: 'spend', value: 18 }).matched).toBeNull(); // 9 records
    expect(q({ op: 'lt', field: 'spend', value: 20 }).matched).toBe(10);
  });

  it('top terms only when enough records contain them; sentiment; distinct counts', () => {
    const recs = people(30, 'r', (i) => ({ text: i < 12 ? 'The parcel arrived broken, awful' : i < 20 ? 'lovely kettle' : 'not good at all, zebra' }));
    const a = run({ version: 1, aggregates: [{ name: 't', op: 'topTerms', field: 'text', k: 10 }, { name: 's', op: 'sentiment', field: 'text' }, { name: 'd', op: 'distinctCount', field: 'text' }] }, recs).groups[0]!.aggregates;
    // 'lovely' and 'kettle' are in 8 records only, under the minimum group size of 10
    expect(a.t).toEqual([{ term: 'arrived', count: 12 }, { term: 'awful', count: 12 }, { term: 'broken', count: 12 }, { term: 'parcel', count: 12 }, { term: 'good', count: 10 }, { term: 'zebra', count: 10 }]);
    expect(a.s).toEqual({ mean: (12 * -5 + 8 * 3 + 10 * -3) / 30, positive: 8, negative: 22, neutral: 0 });
    expect(a.d).toBe(3);
  });

  it('fails the job instead of growing without bound', () => {
    const e = new AnalyticsEngine(q({ groupBy: ['id'] }), { minGroupSize: 10, dp: null, maxGroups: 10 });
    expectCode(() => { for (let i = 0; i < 11; i++) e.add({ id: i }); }, 'ERR_JOB_FAILED', 'too_many_groups');
  });

  it('declared public domains bound the groups in exact mode too: other values belong to no group', () => {
    const recs = [...Array.from({ length: 12 }, (_, i) => ({ id: `a${i}`, region: 'north' })), ...Array.from({ length: 12 }, (_, i) => ({ id: `b${i}`, region: `rogue-${i}` }))];
    const query = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }] };
    const out = run(query, recs, { publicDomains: new Map([['region', ['north', 'south']]]), maxGroups: 2 });
    expect(out.groups.map((g) => [g.key, g.count])).toEqual([[['north'], 12]]);
    // Without the domain the same data forms 13 groups and overflows a bound of 2.
    expectCode(() => run(query, recs, { maxGroups: 2 }), 'ERR_JOB_FAILED', 'too_many_groups');
  });

  it('policy clamps win over the query clamp, in exact mode too', () => {
    const recs = people(20, 'r', (i) => ({ v: i < 10 ? 1000 : 1 }));
    const query = { version: 1, aggregates: [{ name: 's', op: 'sum', field: 'v', clamp: [0, 500] }] };
    expect(run(query, recs).groups[0]!.aggregates.s).toBe(10 * 500 + 10);
    expect(run(query, recs, { clamps: new Map([['v', [0, 100] as const]]) }).groups[0]!.aggregates.s).toBe(10 * 100 + 10);
  });

  it('DP: noise from the injected byte source, partition selection on the noisy count, exact counts hidden', () => {
    const recs = [...people(500, 'a'), ...people(11, 'b'), ...people(1, 'c')];
    const query = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }, { name: 'm', op: 'mean', field: 'age', clamp: [0, 100] }, { name: 'h', op: 'histogram', field: 'age', bins: [0, 50, 100] }] };
    let drawn = 0;
    const src = seededBytes('analytics-dp');
    const out = run(query, recs, { dp: { epsilon: 4, delta: 1e-6 }, randomBytes: (n) => { drawn += n; return src(n); } });
    expect(drawn).toBeGreaterThan(0);
    expect(out.counts).toEqual({ records: 512, matched: null, groups: 1, suppressedGroups: null });
    // eps per measurement = 4 / (1 + 2 + 1) = 1: scale 1, threshold = 10 + ceil(ln(1 / 2e-6)) = 24
    expect(out.privacy.dp).toEqual({ mechanism: 'discrete-laplace', epsilon: 4, delta: 1e-6, threshold: 24 });
    expect(out.groups.map((g) => g.key)).toEqual([['a']]);
    const g = out.groups[0]!;
    expect(Number.isInteger(g.count)).toBe(true);
    expect(Math.abs(g.count - 500)).toBeLessThan(15);
    expect(Math.abs((g.aggregates.m as number) - 39.5)).toBeLessThan(1);
    const h = g.aggregates.h as { counts: number[]; below: number; above: number };
    for (const c of [...h.counts, h.below, h.above]) expect(Number.isInteger(c) && c >= 0).toBe(true);
    // the same seed gives the same result; another seed, other noise
    expect(run(query, recs, { dp: { epsilon: 4, delta: 1e-6 }, randomBytes: seededBytes('analytics-dp') })).toEqual(out);
    expect(run(query, recs, { dp: { epsilon: 4, delta: 1e-6 }, randomBytes: seededBytes('other') })).not.toEqual(out);
  });
});

describe('sketches', () => {
  it('quantiles within 1% relative error on a skewed distribution', () => {
    const sk = new QuantileSketch();
    const xs: number[] = [];
    for (let i = 1; i <= 20000; i++) { const x = (i * 7919) % 20000 + 1; xs.push(x ** 1.5); sk.add(x ** 1.5); }
    xs.sort((a, b) => a - b);
    for (const q of [0, 0.1, 0.5, 0.9, 0.99, 1]) {
      const exact = xs[Math.floor(q * (xs.length - 1))]!;
      expect(Math.abs(sk.quantile(q)! - exact) / exact).toBeLessThan(0.011);
    }
    const neg = new QuantileSketch(8);
    for (let i = -50; i <= 50; i++) neg.add(i);
    expect(Math.abs(neg.quantile(0)! + 50)).toBeLessThan(0.5);
    expect(Math.abs(neg.quantile(1)! - 50)).toBeLessThan(0.5);
    expect(neg.quantile(0.5)).toBe(0);
  });

  it('quantile sketch: a fixed window per sign, any insertion order, 1% within the window, exact extremes', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 1, max: 1e4, noNaN: true }), { minLength: 1, maxLength: 300 }), fc.boolean(), (vals, neg) => {
        const sk = new QuantileSketch();
        const xs = vals.map((v) => (neg ? -v : v));
        for (const x of xs) sk.add(x);
        const sorted = [...xs].sort((a, b) => a - b);
        for (const q of [0, 0.05, 0.3, 0.5, 0.77, 0.95, 1]) {
          const exact = sorted[Math.floor(q * (sorted.length - 1))]!;
          expect(Math.abs(sk.quantile(q)! - exact) / Math.abs(exact)).toBeLessThan(0.0101);
        }
      }),
      { numRuns: 200 },
    );
    // 30 orders of magnitude, largest first then smallest: values near zero collapse, the top stays exact to 1%
    const wide = new QuantileSketch();
    const xs: number[] = [];
    for (let i = 0; i < 3000; i++) xs.push(10 ** (30 - (i % 3000) / 100));
    for (const x of xs) wide.add(x);
    xs.sort((a, b) => a - b);
    for (const q of [0.9, 0.95, 0.99]) {
      const exact = xs[Math.floor(q * (xs.length - 1))]!;
      expect(Math.abs(wide.quantile(q)! - exact) / exact).toBeLessThan(0.0101);
    }
    expect(wide.quantile(0)).toBe(xs[0]);
    expect(wide.quantile(1)).toBe(xs[xs.length - 1]);
    expect(QuantileSketch.maxBytes()).toBeLessThan(10_000);
  });

  it('distinct counts exact when small, within a few percent when large', () => {
    const d = new DistinctCounter();
    for (let i = 0; i < 1000; i++) d.add(`v${i % 500}`);
    expect(d.estimate()).toBe(500);
    const big = new DistinctCounter();
    for (let i = 0; i < 50000; i++) big.add(`user-${i}`);
    expect(Math.abs(big.estimate() - 50000) / 50000).toBeLessThan(0.1);
    // value spaces are kept apart: the string "1" and the number 1 are two values
    const kinds = new DistinctCounter();
    kinds.add('1', 1);
    kinds.add('1', 2);
    kinds.add('1', 2);
    expect(kinds.estimate()).toBe(2);
    // exact up to the limit, however long the values (only hashes are kept)
    const long = new DistinctCounter();
    for (let i = 0; i < DistinctCounter.EXACT_LIMIT; i++) long.add(`${i}`.padEnd(10_000, 'x'));
    expect(long.estimate()).toBe(DistinctCounter.EXACT_LIMIT);
  });

  it('frequent terms undercount, never overcount', () => {
    const ft = new FrequentTerms(4);
    const truth = new Map<string, number>();
    for (let i = 0; i < 1000; i++) { const t = i % 3 === 0 ? 'hot' : `cold${i}`; ft.add(t); truth.set(t, (truth.get(t) ?? 0) + 1); }
    for (const { term, count } of ft.top(10, 1)) expect(count).toBeLessThanOrEqual(truth.get(term)!);
    expect(ft.top(1, 1)[0]!.term).toBe('hot');
    // tokens longer than MAX_TERM_CHARS are not words: ignored, so a counter's size is bounded
    const lt = new FrequentTerms();
    lt.add('y'.repeat(FrequentTerms.MAX_TERM_CHARS + 1));
    lt.add('y'.repeat(FrequentTerms.MAX_TERM_CHARS));
    expect(lt.top(5, 1).map((t) => t.term.length)).toEqual([FrequentTerms.MAX_TERM_CHARS]);
  });

  it('tokenizer and sentiment', () => {
    expect(tokenize("Didn't like it: BROKEN, isn't great")).toEqual(["didn't", 'like', 'it', 'broken', "isn't", 'great']);
    expect(sentimentScore(tokenize('not good'))).toBe(-3);
    expect(sentimentScore(tokenize('awful terrible horrible'))).toBe(-5);
  });
});
