/**
 * The streaming aggregation engine. Records go in one at a time and are dropped; per group it keeps
 * a fixed set of accumulators whose size is bounded whatever the records hold. Only aggregates come
 * out.
 *
 * ## Memory (docs/privacy.md section 7)
 *
 * `accumulatorBytes(query)` bounds what one group holds: its accumulators (each with a stated bound,
 * sketch.ts: quantile sketches of 2 x 512 buckets, distinct counters of at most 1024 hashes then
 * 1 KiB of registers, top-term tables of 512 terms of at most 64 characters, histograms of at most
 * 1002 cells), its key (string values of at most MAX_GROUP_KEY_CHARS, kept as flat copies so that
 * they never pin the record text they were sliced from) and its share of the group table. The bound
 * was measured (test/attacks/09-memory.test.ts): about twice what V8 really uses. At most
 * MAX_AGGREGATES_PER_FIELD aggregates may read one field (query.ts). The job's budget
 * (GROUP_MEMORY_BUDGET_BYTES by default) is checked:
 * - by the caller before any record, with the dataset's bound on the number of groups
 *   (`groupMemoryBudgetCheck`: `ERR_QUERY_REFUSED` / `memory`);
 * - by the constructor when the groups are known in advance (no groupBy; public domains);
 * - as groups appear, as a last line: past `maxGroups` (`ERR_JOB_FAILED` / `too_many_groups`) or past
 *   budget / accumulatorBytes groups (`ERR_JOB_FAILED` / `memory`), and a data-derived key value
 *   longer than MAX_GROUP_KEY_CHARS fails the job (`ERR_JOB_FAILED` / `group_key_too_long`). These
 *   failures depend on the data; the caller's check before any record is what keeps them from
 *   happening.
 *
 * The privacy parameters are resolved by the caller (the release policy) and passed in
 * `EngineOptions`: the engine does not read `query.privacy`.
 *
 * ## Exact mode (`dp: null`)
 *
 * - groups with fewer than `minGroupSize` records are suppressed and counted (`suppressedGroups`);
 * - within a released group, an aggregate over a field that fewer than `minGroupSize` records carry
 *   is null, and so is a histogram cell with fewer than `minGroupSize` records (but more than 0);
 * - top terms are reported only when at least `minGroupSize` records contain them;
 * - `matched` is null when fewer than `minGroupSize` records pass the filter.
 * Exact mode does not resist differencing; the release policy decides who may use it.
 *
 * ## Differential privacy (`dp: { epsilon, delta }`)
 *
 * Mechanism: discrete Laplace noise (privacy.ts: exact integer sampler over a CSPRNG byte source)
 * on integers only: counts, histogram cells, and sums in fixed point. Each record belongs to exactly
 * one group, so groups compose in parallel; within a group the query's epsilon is split evenly over
 * its noisy measurements (1 for the group count, +1 per sum or histogram, +2 per mean or sentiment:
 * a noisy sum and a noisy count), each share rounded down to a multiple of 2^-32 (`splitEpsilon`),
 * so the total spent is at most the stated epsilon. Only count, sum, mean, histogram and sentiment are
 * allowed (`DP_OPS`); anything else is refused (`ERR_QUERY_REFUSED` / `dp_op`).
 *
 * - Counts: integer noise of sensitivity 1, clamped at 0.
 * - Sums and means: each value is clamped to [lo, hi] (the release policy's bounds for the field win
 *   over the query's `clamp`; one of them is required, else `ERR_QUERY_REFUSED` / `clamp`), then
 *   converted to fixed point with unit u = 2^(e - 20), where 2^e is the smallest power of two >= M =
 *   max(|lo|, |hi|): a resolution between 2^-20 and 2^-19 of M, far below the noise (whose scale is at
 *   least M / epsilon). A record moves the fixed-point sum by at most D = ceil(M / u) <= 2^20 units;
 *   the sum gets noise of sensitivity D and is converted back (an exact multiple of u). A mean is
 *   noisy sum / noisy count of the records carrying the field, null when that count is below 1,
 *   clamped to [lo, hi]. The integer sum stays exact for any number of records (it folds into a
 *   BigInt before leaving the safe-integer range).
 * - Sentiment: per-record scores are integers in [-5, 5]: noisy sum (sensitivity 5) / noisy count,
 *   clamped to [-5, 5]; the positive/negative/neutral split is not released (null).
 * - Histograms: one record moves one cell (bins, below, above) by 1, so the histogram is one
 *   measurement of sensitivity 1; every cell gets integer noise and is clamped at 0.
 * - Which groups appear (partition selection):
 *   - Data-derived keys: a group found in the data is released only if its noisy count is at least
 *     `threshold = max(minGroupSize, 2) + ceil(b * ln(1 / (2 * delta)))`, b = 1/eps_count the count's
 *     noise scale (eps_count the rational share). A group that exists because of one record has count
 *     1 and passes with probability P[Z >= threshold - 1] = a^(threshold-1) / (1 + a) (a = e^-1/b),
 *     which is below delta: that is what delta covers, and the whole release is (epsilon, delta)-DP.
 *     (The `max(.., 2)` keeps this true for the discrete distribution when minGroupSize is 1, and
 *     leaves a margin of at least half a count for the float `ln`.) Requires 0 < delta < 0.5.
 *   - Public domains: when every groupBy field has a declared public domain (`publicDomains`, values
 *     compared with === to the record's value), the candidate groups are exactly the cross product of
 *     the domains, data or not (an empty combination's count is noised from 0), and no data-dependent
 *     threshold applies (`threshold` is reported as 0). A record whose key is outside the domain is
 *     counted in `records` and goes to no group: it is not in any count or aggregate. A combination
 *     whose noisy count is below minGroupSize is left out of the result; that is post-processing of a
 *     DP value and costs no privacy. A query without groupBy is this case with one (empty) key.
 *   Partial domains (some groupBy fields without one) are ignored: the keys are data-derived.
 * - `counts.matched` and `counts.suppressedGroups` are null (they are exact counts); `counts.groups`
 *   is the number released, `counts.records` the number of records read (the sealed count).
 *
 * What the guarantee is: (epsilon, delta)-DP per query for datasets that differ by adding or removing
 * one record. The number of records is public here (sealed, and released as `counts.records`); for two
 * datasets of the same size that differ in one record's contents (a removal plus an addition) the
 * same mechanism gives (2 epsilon, 2 e^epsilon delta) by group privacy. Delta covers exactly one
 * event: the release of a key that only the differing record supports.
 *
 * Known limits: the stated epsilon is an upper bound (rational rounding, see privacy.ts); the
 * guarantee is per query — composition across queries is the budget's job (privacy.ts, job.ts);
 * exact mode gives no formal guarantee; group keys released under DP are values that at least about
 * `threshold` records share (noisy), so a policy should still choose dimension fields with care.
 */
import { ToolkitError } from '../../attestation/errors.js';
import type { GroupKeyValue, ResultGroup } from '../protocol/result.js';
import { DiscreteLaplace, rationalToNumber, splitEpsilon, type RandomBytes } from './privacy.js';
import { DP_OPS, type Aggregate, type Filter, type Query } from './query.js';
import { DistinctCounter, FrequentTerms, OBJECT_BYTES, QuantileSketch, flatCopy } from './sketch.js';
import { STOPWORDS, sentimentScore, tokenize } from './lexicon.js';

/** A default the caller may use when a release policy does not name a minimum group size. */
export const DEFAULT_MIN_GROUP_SIZE = 10;
export const DEFAULT_MAX_GROUPS = 10_000;
/** Default accumulator memory budget of one job: 256 MiB. */
export const GROUP_MEMORY_BUDGET_BYTES = 256 * 1024 * 1024;
/** A data-derived group key value longer than this (in UTF-16 units) fails the job (`group_key_too_long`). */
export const MAX_GROUP_KEY_CHARS = 1024;
/** Fixed-point resolution for DP sums: a unit is between 2^-20 and 2^-19 of max(|lo|, |hi|). */
export const FIXED_POINT_BITS = 20;

export interface EngineOptions {
  /** Resolved by the caller (release policy); an integer >= 1. */
  minGroupSize: number;
  /** Differential privacy parameters, or null for exact mode. */
  dp: { epsilon: number; delta: number } | null;
  /** Clamping bounds by field path from the release policy; override the query's clamp. */
  clamps?: ReadonlyMap<string, readonly [number, number]>;
  /** Declared public domains by dimension field path (values as they appear in records). */
  publicDomains?: ReadonlyMap<string, readonly (string | number | boolean)[]>;
  /** Random bytes for DP noise. Default: node:crypto randomBytes. */
  randomBytes?: RandomBytes;
  /** Fail the job when more groups than this appear. Default 10 000. */
  maxGroups?: number;
  /**
   * Accumulator memory budget (default GROUP_MEMORY_BUDGET_BYTES): checked at construction when the
   * set of groups is known (no groupBy, public domains: `ERR_QUERY_REFUSED` / `memory`), else enforced
   * as groups appear (`ERR_JOB_FAILED` / `memory`); the caller should refuse beforehand with
   * `groupMemoryBudgetCheck` and the dataset's bound on the number of groups.
   */
  memoryBudgetBytes?: number;
}

export interface EngineDpOutput {
  mechanism: 'discrete-laplace';
  epsilon: number;
  delta: number;
  /** The partition-selection threshold on noisy counts; 0 for public-domain grouping. */
  threshold: number;
}

export interface EngineOutput {
  counts: { records: number; matched: number | null; groups: number; suppressedGroups: number | null };
  groups: ResultGroup[];
  privacy: { minGroupSize: number; dp: EngineDpOutput | null };
}

type Getter = (r: Record<string, unknown>) => unknown;

function getter(path: string): Getter {
  const segs = path.split('.');
  const has = Object.prototype.hasOwnProperty;
  if (segs.length === 1) {
    const s = segs[0]!;
    return (r) => (has.call(r, s) ? r[s] : undefined);
  }
  return (r) => {
    let cur: unknown = r;
    for (const s of segs) {
      if (cur === null || typeof cur !== 'object' || !has.call(cur, s)) return undefined;
      cur = (cur as Record<string, unknown>)[s];
    }
    return cur;
  };
}

const NUMERIC_RE = /^\s*-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

/** Numbers, and decimal strings (CSV carries every value as text); anything else is missing. */
export function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && v.length <= 64 && NUMERIC_RE.test(v)) {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

function eqScalar(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof b === 'number') return toNumber(a) === b;
  return false;
}

type Pred = (r: Record<string, unknown>) => boolean;

function compileFilter(f: Filter): Pred {
  switch (f.op) {
    case 'eq': {
      const g = getter(f.field);
      const v = f.value;
      return (r) => { const x = g(r); return x !== undefined && eqScalar(x, v); };
    }
    case 'ne': {
      const g = getter(f.field);
      const v = f.value;
      return (r) => { const x = g(r); return x !== undefined && !eqScalar(x, v); };
    }
    case 'in': {
      const g = getter(f.field);
      const vs = f.values;
      return (r) => { const x = g(r); return x !== undefined && vs.some((v) => eqScalar(x, v)); };
    }
    case 'lt': case 'lte': case 'gt': case 'gte': {
      const g = getter(f.field);
      const v = f.value;
      const cmp = f.op === 'lt' ? (d: number) => d < 0 : f.op === 'lte' ? (d: number) => d <= 0 : f.op === 'gt' ? (d: number) => d > 0 : (d: number) => d >= 0;
      if (typeof v === 'number') return (r) => { const x = toNumber(g(r)); return x !== undefined && cmp(x - v); };
      return (r) => { const x = g(r); return typeof x === 'string' && cmp(x < v ? -1 : x > v ? 1 : 0); };
    }
    case 'and': { const ps = f.args.map(compileFilter); return (r) => ps.every((p) => p(r)); }
    case 'or': { const ps = f.args.map(compileFilter); return (r) => ps.some((p) => p(r)); }
    case 'not': { const p = compileFilter(f.arg); return (r) => !p(r); }
  }
}

// ---------------------------------------------------------------------------------------------
// Fixed point for DP sums

/** Fixed-point representation of values clamped to [lo, hi]: value ~ q * unit, |q| <= sensitivity. */
export interface FixedPoint {
  unit: number;
  sensitivity: bigint;
}

/** The fixed point used for DP sums over [lo, hi] (see the module comment). */
export function fixedPoint(lo: number, hi: number): FixedPoint {
  const m = Math.max(Math.abs(lo), Math.abs(hi));
  if (!(Number.isFinite(m) && m > 0)) throw new RangeError('fixedPoint: bounds must be finite, not both 0');
  // smallest e with 2^e >= m (Math.log2 may be off by one near powers of two; fix it exactly)
  let e = Math.ceil(Math.log2(m));
  while (2 ** e < m) e++;
  while (e > -1000 && 2 ** (e - 1) >= m) e--;
  e = Math.max(e, -1000); // keeps the unit a normal double
  const unit = 2 ** (e - FIXED_POINT_BITS);
  return { unit, sensitivity: BigInt(Math.max(1, Math.ceil(m / unit))) };
}

const clampTo = (x: number, lo: number, hi: number): number => (x < lo ? lo : x > hi ? hi : x);
const SAFE_FOLD = 2 ** 52;

/** An exact integer sum: a Number while it is safe, folded into a BigInt before it is not. */
class IntSum {
  small = 0;
  big = 0n;
  add(q: number): void {
    this.small += q;
    if (this.small > SAFE_FOLD || this.small < -SAFE_FOLD) {
      this.big += BigInt(this.small);
      this.small = 0;
    }
  }
  value(): bigint {
    return this.big + BigInt(this.small);
  }
}

// ---------------------------------------------------------------------------------------------
// Accumulators

interface DpCtx {
  noise: DiscreteLaplace;
  /** Epsilon per noisy measurement. */
  eps: { num: bigint; den: bigint };
}

interface Ctx {
  minGroupSize: number;
  dp: DpCtx | null;
  /** The group's released count (noisy under DP). */
  groupCount: number;
}

interface Acc {
  add(r: Record<string, unknown>): void;
  out(ctx: Ctx): unknown;
}

const noisyInt = (dp: DpCtx, v: bigint, sensitivity: bigint): bigint => dp.noise.noisy(v, sensitivity, dp.eps);
const nonNeg = (v: bigint): number => (v < 0n ? 0 : Number(v));

class CountAcc implements Acc {
  add(): void {}
  out(ctx: Ctx): number {
    return ctx.groupCount;
  }
}

interface NumSpec {
  get: Getter;
  lo: number;
  hi: number;
  mean: boolean;
  /** Present under DP. */
  fp: FixedPoint | undefined;
}

class SumMeanAcc implements Acc {
  #sum = 0;
  readonly #q: IntSum | undefined;
  #n = 0;
  constructor(readonly spec: NumSpec) {
    if (spec.fp) this.#q = new IntSum();
  }
  add(r: Record<string, unknown>): void {
    const x = toNumber(this.spec.get(r));
    if (x === undefined) return;
    const c = clampTo(x, this.spec.lo, this.spec.hi);
    if (this.#q) this.#q.add(Math.round(c / this.spec.fp!.unit));
    else this.#sum += c;
    this.#n++;
  }
  out(ctx: Ctx): number | null {
    const { lo, hi, mean, fp } = this.spec;
    if (ctx.dp) {
      const s = Number(noisyInt(ctx.dp, this.#q!.value(), fp!.sensitivity)) * fp!.unit;
      if (!mean) return s;
      const n = Number(noisyInt(ctx.dp, BigInt(this.#n), 1n));
      return n < 1 ? null : clampTo(s / n, lo, hi);
    }
    if (this.#n < ctx.minGroupSize) return null;
    return mean ? this.#sum / this.#n : this.#sum;
  }
}

class MinMaxAcc implements Acc {
  #m: number;
  #n = 0;
  constructor(readonly get: Getter, readonly isMin: boolean) {
    this.#m = isMin ? Infinity : -Infinity;
  }
  add(r: Record<string, unknown>): void {
    const x = toNumber(this.get(r));
    if (x === undefined) return;
    this.#n++;
    if (this.isMin ? x < this.#m : x > this.#m) this.#m = x;
  }
  out(ctx: Ctx): number | null {
    return this.#n < ctx.minGroupSize ? null : this.#m;
  }
}

class StddevAcc implements Acc {
  #n = 0;
  #mean = 0;
  #m2 = 0;
  constructor(readonly get: Getter) {}
  add(r: Record<string, unknown>): void {
    const x = toNumber(this.get(r));
    if (x === undefined) return;
    this.#n++;
    const d = x - this.#mean;
    this.#mean += d / this.#n;
    this.#m2 += d * (x - this.#mean);
  }
  out(ctx: Ctx): number | null {
    return this.#n < ctx.minGroupSize || this.#n < 2 ? null : Math.sqrt(this.#m2 / (this.#n - 1));
  }
}

class QuantilesAcc implements Acc {
  readonly #sk = new QuantileSketch();
  constructor(readonly get: Getter, readonly qs: readonly number[]) {}
  add(r: Record<string, unknown>): void {
    const x = toNumber(this.get(r));
    if (x !== undefined) this.#sk.add(x);
  }
  out(ctx: Ctx): { q: number; value: number | null }[] | null {
    return this.#sk.count < ctx.minGroupSize ? null : this.qs.map((q) => ({ q, value: this.#sk.quantile(q) }));
  }
}

class HistogramAcc implements Acc {
  /** cells 0..k-1, then below, then above */
  readonly #c: Float64Array;
  constructor(readonly get: Getter, readonly bins: readonly number[]) {
    this.#c = new Float64Array(bins.length + 1);
  }
  add(r: Record<string, unknown>): void {
    const x = toNumber(this.get(r));
    if (x === undefined) return;
    const bins = this.bins;
    const k = bins.length - 1;
    if (x < bins[0]!) { this.#c[k]!++; return; }
    if (x >= bins[k]!) { this.#c[k + 1]!++; return; }
    let lo = 0, hi = k; // bins[lo] <= x < bins[hi]
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (x < bins[mid]!) hi = mid; else lo = mid; }
    this.#c[lo]!++;
  }
  out(ctx: Ctx): { edges: readonly number[]; counts: (number | null)[]; below: number | null; above: number | null } {
    const dp = ctx.dp;
    const cell = (c: number): number | null =>
      dp ? nonNeg(noisyInt(dp, BigInt(c), 1n)) : c > 0 && c < ctx.minGroupSize ? null : c;
    const k = this.bins.length - 1;
    const counts: (number | null)[] = [];
    for (let i = 0; i < k; i++) counts.push(cell(this.#c[i]!));
    return { edges: this.bins, counts, below: cell(this.#c[k]!), above: cell(this.#c[k + 1]!) };
  }
}

class DistinctAcc implements Acc {
  readonly #dc = new DistinctCounter();
  #n = 0;
  constructor(readonly get: Getter) {}
  add(r: Record<string, unknown>): void {
    const x = this.get(r);
    if (x === undefined || x === null || typeof x === 'object') return;
    this.#n++;
    if (typeof x === 'string') this.#dc.add(x, 1);
    else this.#dc.add(String(x), typeof x === 'number' ? 2 : 3);
  }
  out(ctx: Ctx): number | null {
    return this.#n < ctx.minGroupSize ? null : this.#dc.estimate();
  }
}

class TopTermsAcc implements Acc {
  readonly #ft = new FrequentTerms();
  constructor(readonly get: Getter, readonly k: number) {}
  add(r: Record<string, unknown>): void {
    const x = this.get(r);
    if (typeof x !== 'string') return;
    // document frequency: a term counts once per record
    const seen = new Set<string>();
    for (const t of tokenize(x, 2000)) {
      if (t.length < 3 || STOPWORDS.has(t) || seen.has(t)) continue;
      seen.add(t);
      this.#ft.add(t);
    }
  }
  out(ctx: Ctx): { term: string; count: number }[] {
    return this.#ft.top(this.k, ctx.minGroupSize);
  }
}

class SentimentAcc implements Acc {
  #n = 0;
  #sum = 0;
  #pos = 0;
  #neg = 0;
  #neutral = 0;
  constructor(readonly get: Getter) {}
  add(r: Record<string, unknown>): void {
    const x = this.get(r);
    if (typeof x !== 'string') return;
    const s = clampTo(Math.round(sentimentScore(tokenize(x, 2000))), -5, 5);
    this.#n++;
    this.#sum += s;
    if (s > 0) this.#pos++;
    else if (s < 0) this.#neg++;
    else this.#neutral++;
  }
  out(ctx: Ctx): unknown {
    if (ctx.dp) {
      const n = Number(noisyInt(ctx.dp, BigInt(this.#n), 1n));
      const s = Number(noisyInt(ctx.dp, BigInt(this.#sum), 5n));
      return { mean: n < 1 ? null : clampTo(s / n, -5, 5), positive: null, negative: null, neutral: null };
    }
    if (this.#n < ctx.minGroupSize) return null;
    return { mean: this.#sum / this.#n, positive: this.#pos, negative: this.#neg, neutral: this.#neutral };
  }
}

function refused(reason: string, message: string): ToolkitError {
  return new ToolkitError('ERR_QUERY_REFUSED', message, { reason });
}

function makeAcc(a: Aggregate, i: number, dp: boolean, clamps: ReadonlyMap<string, readonly [number, number]> | undefined): () => Acc {
  if (dp && !DP_OPS.includes(a.op)) throw refused('dp_op', `aggregate ${i} (${a.op}) is not available under differential privacy (allowed: ${DP_OPS.join(', ')})`);
  switch (a.op) {
    case 'count':
      return () => new CountAcc();
    case 'sum':
    case 'mean': {
      const bounds = clamps?.get(a.field) ?? a.clamp;
      if (dp && !bounds) throw refused('clamp', `aggregate ${i} (${a.op} of ${a.field}) needs clamping bounds under differential privacy`);
      const [lo, hi] = bounds ?? [-Infinity, Infinity];
      const spec: NumSpec = { get: getter(a.field), lo, hi, mean: a.op === 'mean', fp: dp ? fixedPoint(lo, hi) : undefined };
      return () => new SumMeanAcc(spec);
    }
    case 'min':
    case 'max': {
      const g = getter(a.field);
      return () => new MinMaxAcc(g, a.op === 'min');
    }
    case 'stddev': {
      const g = getter(a.field);
      return () => new StddevAcc(g);
    }
    case 'quantiles': {
      const g = getter(a.field);
      return () => new QuantilesAcc(g, a.q);
    }
    case 'histogram': {
      const g = getter(a.field);
      return () => new HistogramAcc(g, a.bins);
    }
    case 'distinctCount': {
      const g = getter(a.field);
      return () => new DistinctAcc(g);
    }
    case 'topTerms': {
      const g = getter(a.field);
      return () => new TopTermsAcc(g, a.k);
    }
    case 'sentiment': {
      const g = getter(a.field);
      return () => new SentimentAcc(g);
    }
  }
}

/** Noisy measurements per group under DP: the group count, plus one or two per aggregate. */
export function measurementsPerGroup(q: Query): number {
  let k = 1;
  for (const a of q.aggregates) {
    if (a.op === 'sum' || a.op === 'histogram') k += 1;
    else if (a.op === 'mean' || a.op === 'sentiment') k += 2;
  }
  return k;
}

// ---------------------------------------------------------------------------------------------
// Memory bounds

/** Upper bound of the memory one aggregate's accumulator holds in one group. */
export function aggregateBytes(a: Aggregate): number {
  switch (a.op) {
    case 'count':
    case 'sum':
    case 'mean':
    case 'min':
    case 'max':
    case 'stddev':
    case 'sentiment':
      return OBJECT_BYTES; // a few numbers (and, for DP sums, a BigInt folded in past 2^52)
    case 'quantiles':
      return OBJECT_BYTES + QuantileSketch.maxBytes();
    case 'histogram':
      return OBJECT_BYTES + 256 + 8 * (a.bins.length + 1);
    case 'distinctCount':
      return OBJECT_BYTES + DistinctCounter.maxBytes();
    case 'topTerms':
      return OBJECT_BYTES + FrequentTerms.maxBytes();
  }
}

/** Upper bound of one group key's memory: the key values (flat copies) and the map key built from them. */
function keyBytes(groupByFields: number): number {
  const str = 32 + 2 * (MAX_GROUP_KEY_CHARS + 32);
  return 64 + 8 * groupByFields + groupByFields * 2 * str;
}

/**
 * Upper bound, in bytes, of everything one group holds: its accumulators (each bounded, see
 * sketch.ts), its key (values of at most MAX_GROUP_KEY_CHARS) and its share of the group table.
 */
export function accumulatorBytes(query: Query): number {
  let n = OBJECT_BYTES + 2 * 64 + 8 * query.aggregates.length + keyBytes(query.groupBy.length);
  for (const a of query.aggregates) n += aggregateBytes(a);
  return n;
}

/**
 * Refuse (`ERR_QUERY_REFUSED` / `memory`) a query whose accumulators for `maxGroups` groups could
 * exceed `budgetBytes`. Call it before any record is read, with maxGroups = the most groups the
 * dataset can form (its record count, or the product of the public domain sizes). Returns the bound.
 */
export function groupMemoryBudgetCheck(query: Query, maxGroups: number, budgetBytes: number = GROUP_MEMORY_BUDGET_BYTES): { bytesPerGroup: number; totalBytes: number } {
  if (!(Number.isSafeInteger(maxGroups) && maxGroups >= 0)) throw new RangeError('"maxGroups" expected a non-negative integer');
  const bytesPerGroup = accumulatorBytes(query);
  const totalBytes = bytesPerGroup * maxGroups;
  if (totalBytes > budgetBytes) {
    throw new ToolkitError(
      'ERR_QUERY_REFUSED',
      `the query needs up to ${bytesPerGroup} bytes per group; ${maxGroups} groups would exceed the job's memory budget of ${budgetBytes} bytes`,
      { reason: 'memory' },
    );
  }
  return { bytesPerGroup, totalBytes };
}

// ---------------------------------------------------------------------------------------------
// Groups

interface Group {
  key: GroupKeyValue[];
  count: number;
  accs: Acc[];
}

function keyValue(v: unknown): GroupKeyValue {
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  return null;
}

/** A map key for a group key: strings length-prefixed, other values as JSON (no ambiguity). */
function encodeKey(key: readonly GroupKeyValue[]): string {
  if (key.length === 0) return '';
  if (key.length === 1) {
    const v = key[0];
    return typeof v === 'string' ? 's' + v : JSON.stringify(v);
  }
  let s = '';
  for (const v of key) s += typeof v === 'string' ? `s${v.length}:${v}` : `${JSON.stringify(v)};`;
  return s;
}

interface Domain {
  /** Map key -> group key, in cross-product order. */
  combos: Map<string, GroupKeyValue[]>;
}

function buildDomain(groupBy: readonly string[], domains: ReadonlyMap<string, readonly (string | number | boolean)[]>, maxGroups: number): Domain {
  const perField: GroupKeyValue[][] = groupBy.map((f) => {
    const seen = new Set<string>();
    const vals: GroupKeyValue[] = [];
    for (const raw of domains.get(f)!) {
      const v = keyValue(raw);
      if (v === null) throw new RangeError(`public domain of "${f}": values must be strings, finite numbers or booleans`);
      const k = encodeKey([v]);
      if (!seen.has(k)) { seen.add(k); vals.push(v); }
    }
    return vals;
  });
  let size = 1;
  for (const vals of perField) {
    size *= vals.length;
    if (size > maxGroups) throw refused('too_many_groups', `the public domains of ${groupBy.join(', ')} form more than ${maxGroups} groups`);
  }
  const combos = new Map<string, GroupKeyValue[]>();
  const rec = (i: number, acc: GroupKeyValue[]): void => {
    if (i === perField.length) { combos.set(encodeKey(acc), acc); return; }
    for (const v of perField[i]!) rec(i + 1, [...acc, v]);
  };
  rec(0, []);
  return { combos };
}

export class AnalyticsEngine {
  readonly #query: Query;
  readonly #pred: Pred | undefined;
  readonly #keyGetters: Getter[];
  readonly #factories: (() => Acc)[];
  readonly #groups = new Map<string, Group>();
  readonly #maxGroups: number;
  readonly #minGroupSize: number;
  readonly #dp: { epsilon: number; delta: number } | null;
  readonly #dpCtx: DpCtx | null;
  /** Public-domain grouping (when every grouped field has a declared domain): the candidate keys. */
  readonly #domain: Domain | undefined;
  readonly #threshold: number;
  /** The most groups the memory budget allows. */
  readonly #memoryGroupLimit: number;
  #records = 0;
  #matched = 0;
  #finished = false;

  constructor(query: Query, opts: EngineOptions) {
    const mgs = opts.minGroupSize;
    if (!(Number.isSafeInteger(mgs) && mgs >= 1)) throw new RangeError('"minGroupSize" expected an integer >= 1');
    const maxGroups = opts.maxGroups ?? DEFAULT_MAX_GROUPS;
    if (!(Number.isSafeInteger(maxGroups) && maxGroups >= 1)) throw new RangeError('"maxGroups" expected an integer >= 1');
    for (const [f, b] of opts.clamps ?? []) {
      if (!(Array.isArray(b) && b.length === 2 && Number.isFinite(b[0]) && Number.isFinite(b[1]) && b[0] < b[1])) throw new RangeError(`clamp of "${f}" expected [low, high] with low < high`);
    }
    this.#query = query;
    this.#minGroupSize = mgs;
    this.#maxGroups = maxGroups;
    this.#pred = query.filter ? compileFilter(query.filter) : undefined;
    this.#keyGetters = query.groupBy.map(getter);
    const dp = opts.dp;
    this.#factories = query.aggregates.map((a, i) => makeAcc(a, i, dp !== null, opts.clamps));
    let effectiveMaxGroups = query.groupBy.length === 0 ? 1 : maxGroups;
    // Declared public domains bound the groups in both modes (records with other values belong to no
    // group), so the group bound the worker checks before any record holds in exact mode too.
    const domains = opts.publicDomains;
    if (query.groupBy.length > 0 && domains && query.groupBy.every((f) => domains.has(f))) {
      this.#domain = buildDomain(query.groupBy, domains, maxGroups);
      effectiveMaxGroups = this.#domain.combos.size;
    }
    if (dp) {
      if (!(Number.isFinite(dp.epsilon) && dp.epsilon > 0)) throw new RangeError('"dp.epsilon" expected a finite number > 0');
      if (!(Number.isFinite(dp.delta) && dp.delta >= 0 && dp.delta < 1)) throw new RangeError('"dp.delta" expected a number in [0, 1)');
      this.#dp = { epsilon: dp.epsilon, delta: dp.delta };
      const eps = splitEpsilon(dp.epsilon, measurementsPerGroup(query));
      this.#dpCtx = { noise: new DiscreteLaplace(opts.randomBytes), eps };
      if (query.groupBy.length === 0 || this.#domain) this.#threshold = 0;
      else {
        if (!(dp.delta > 0 && dp.delta < 0.5))
          throw refused('delta', 'grouping by keys found in the data needs differential privacy with 0 < delta < 0.5 (or declared public domains)');
        const b = 1 / rationalToNumber(eps);
        this.#threshold = Math.max(mgs, 2) + Math.ceil(b * Math.log(1 / (2 * dp.delta)));
      }
    } else {
      this.#dp = null;
      this.#dpCtx = null;
      this.#threshold = 0;
    }
    // Known group sets (no groupBy, public domains) are checked now; data-derived groups are checked
    // by the caller against the dataset's bound before any record (groupMemoryBudgetCheck), and
    // again here, group by group, as a last line (ERR_JOB_FAILED / memory).
    const budget = opts.memoryBudgetBytes ?? GROUP_MEMORY_BUDGET_BYTES;
    if (query.groupBy.length === 0 || this.#domain) groupMemoryBudgetCheck(query, effectiveMaxGroups, budget);
    this.#memoryGroupLimit = Math.floor(budget / accumulatorBytes(query));
  }

  get minGroupSize(): number {
    return this.#minGroupSize;
  }

  /** The partition-selection threshold on noisy counts (0 without DP or with public domains). */
  get threshold(): number {
    return this.#threshold;
  }

  add(r: Record<string, unknown>): void {
    if (this.#finished) throw new Error('AnalyticsEngine: already finished');
    this.#records++;
    if (this.#pred && !this.#pred(r)) return;
    this.#matched++;
    const kg = this.#keyGetters;
    let key: GroupKeyValue[];
    if (kg.length === 0) key = [];
    else if (kg.length === 1) key = [keyValue(kg[0]!(r))];
    else key = kg.map((g) => keyValue(g(r)));
    const ks = encodeKey(key);
    let grp = this.#groups.get(ks);
    if (grp === undefined) {
      if (this.#domain) {
        const dk = this.#domain.combos.get(ks);
        if (dk === undefined) return; // outside the public domain: no group
        key = dk;
      } else {
        if (this.#groups.size >= this.#maxGroups)
          throw new ToolkitError('ERR_JOB_FAILED', `the query produces more than ${this.#maxGroups} groups`, { reason: 'too_many_groups' });
        if (this.#groups.size >= this.#memoryGroupLimit)
          throw new ToolkitError('ERR_JOB_FAILED', `the query's groups exceed the job's memory budget (${this.#memoryGroupLimit} groups)`, { reason: 'memory' });
        for (let i = 0; i < key.length; i++) {
          const v = key[i];
          if (typeof v !== 'string') continue;
          if (v.length > MAX_GROUP_KEY_CHARS)
            throw new ToolkitError('ERR_JOB_FAILED', `a group key value is longer than ${MAX_GROUP_KEY_CHARS} characters`, { reason: 'group_key_too_long' });
          key[i] = flatCopy(v);
        }
      }
      grp = { key, count: 0, accs: this.#factories.map((f) => f()) };
      this.#groups.set(kg.length === 0 ? ks : flatCopy(encodeKey(key)), grp);
    }
    grp.count++;
    const accs = grp.accs;
    for (let i = 0; i < accs.length; i++) accs[i]!.add(r);
  }

  #aggregates(g: Group, ctx: Ctx): Record<string, unknown> {
    const aggregates: Record<string, unknown> = {};
    this.#query.aggregates.forEach((a, i) => { aggregates[a.name] = g.accs[i]!.out(ctx); });
    return aggregates;
  }

  finish(): EngineOutput {
    if (this.#finished) throw new Error('AnalyticsEngine: already finished');
    this.#finished = true;
    const out: ResultGroup[] = [];
    const mgs = this.#minGroupSize;
    const dpCtx = this.#dpCtx;
    const dp = this.#dp;
    let suppressed = 0;
    if (dpCtx && dp) {
      const noisyCount = (c: number): number => nonNeg(noisyInt(dpCtx, BigInt(c), 1n));
      if (this.#domain || this.#query.groupBy.length === 0) {
        // every candidate key is public: release each whose noisy count reaches minGroupSize
        const candidates: [string, GroupKeyValue[]][] = this.#domain ? [...this.#domain.combos] : [['', []]];
        for (const [ks, key] of candidates) {
          const g = this.#groups.get(ks) ?? { key, count: 0, accs: this.#factories.map((f) => f()) };
          const count = noisyCount(g.count);
          if (count < mgs) continue;
          out.push({ key: g.key, count, aggregates: this.#aggregates(g, { minGroupSize: mgs, dp: dpCtx, groupCount: count }) });
        }
      } else {
        const entries = [...this.#groups].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        for (const [, g] of entries) {
          const count = noisyCount(g.count);
          if (count < this.#threshold) continue;
          out.push({ key: g.key, count, aggregates: this.#aggregates(g, { minGroupSize: mgs, dp: dpCtx, groupCount: count }) });
        }
      }
    } else {
      const entries = [...this.#groups].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      for (const [, g] of entries) {
        if (g.count < mgs) {
          suppressed++;
          continue;
        }
        out.push({ key: g.key, count: g.count, aggregates: this.#aggregates(g, { minGroupSize: mgs, dp: null, groupCount: g.count }) });
      }
    }
    this.#groups.clear();
    return {
      // A matched count below minGroupSize would say whether a handful of records pass a filter
      // (e.g. 0 or 1: does this person's encrypted value satisfy it?), so it is withheld like a group.
      counts: {
        records: this.#records,
        matched: dp || this.#matched < mgs ? null : this.#matched,
        groups: out.length,
        suppressedGroups: dp ? null : suppressed,
      },
      groups: out,
      privacy: { minGroupSize: mgs, dp: dp ? { mechanism: 'discrete-laplace', epsilon: dp.epsilon, delta: dp.delta, threshold: this.#threshold } : null },
    };
  }
}
