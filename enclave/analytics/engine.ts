/**
 * The streaming aggregation engine. Records go in one at a time and are dropped; per group it keeps
 * a fixed set of accumulators whose size does not grow with the number of records (see sketch.ts),
 * so memory is O(groups). Only aggregates come out, after the privacy guards:
 *
 * - groups with fewer than `minGroupSize` records are suppressed and counted;
 * - within a released group, an aggregate over a field that fewer than `minGroupSize` records carry
 *   is null, and so is a histogram cell with fewer than `minGroupSize` records (but more than 0);
 * - top terms are reported only when at least `minGroupSize` records contain them;
 * - under differential privacy, counts, sums, means, histogram cells and sentiment means get Laplace
 *   noise; the query's epsilon is split evenly over the noisy measurements of a group (groups are
 *   disjoint, so they compose in parallel), and group suppression uses the noisy count.
 */
import { ToolkitError } from '../../attestation/errors.js';
import type { GroupKeyValue, ResultGroup } from '../protocol/result.js';
import { laplace, cryptoRandom, type RandomSource } from './privacy.js';
import type { Aggregate, Filter, Query } from './query.js';
import { DistinctCounter, FrequentTerms, QuantileSketch } from './sketch.js';
import { STOPWORDS, sentimentScore, tokenize } from './lexicon.js';

export const DEFAULT_MIN_GROUP_SIZE = 10;
export const DEFAULT_MAX_GROUPS = 10_000;

export interface EngineOptions {
  /** The operator's floor: a query may raise minGroupSize, never lower it below this. Default 10. */
  minGroupSizeFloor?: number;
  /** Fail the job when more groups than this appear (memory bound). Default 10 000. */
  maxGroups?: number;
  /** Uniform [0,1) source for DP noise. Default: node:crypto. */
  random?: RandomSource;
}

export interface EngineOutput {
  counts: { records: number; matched: number | null; groups: number; suppressedGroups: number };
  groups: ResultGroup[];
  privacy: { minGroupSize: number; dp: { mechanism: 'laplace'; epsilon: number } | null };
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

interface Ctx {
  minGroupSize: number;
  /** Epsilon per noisy measurement, or 0 without DP. */
  eps: number;
  random: RandomSource;
  /** The group's released count (noisy under DP). */
  groupCount: number;
}

interface Acc {
  add(r: Record<string, unknown>): void;
  out(ctx: Ctx): unknown;
}

const noisy = (ctx: Ctx, v: number, sensitivity: number): number => v + laplace(ctx.random, sensitivity / ctx.eps);
const clampTo = (x: number, lo: number, hi: number): number => (x < lo ? lo : x > hi ? hi : x);

function makeAcc(a: Aggregate): () => Acc {
  switch (a.op) {
    case 'count':
      return () => ({ add() {}, out: (ctx) => ctx.groupCount });
    case 'sum':
    case 'mean': {
      const g = getter(a.field);
      const [lo, hi] = a.clamp ?? [-Infinity, Infinity];
      const mean = a.op === 'mean';
      return () => {
        let sum = 0;
        let n = 0;
        return {
          add(r) { const x = toNumber(g(r)); if (x === undefined) return; sum += clampTo(x, lo, hi); n++; },
          out(ctx) {
            if (ctx.eps > 0) {
              const sens = Math.max(Math.abs(lo), Math.abs(hi));
              const s = noisy(ctx, sum, sens);
              if (!mean) return s;
              const nn = noisy(ctx, n, 1);
              return nn < 1 ? null : clampTo(s / nn, lo, hi);
            }
            if (n < ctx.minGroupSize) return null;
            return mean ? sum / n : sum;
          },
        };
      };
    }
    case 'min':
    case 'max': {
      const g = getter(a.field);
      const isMin = a.op === 'min';
      return () => {
        let m = isMin ? Infinity : -Infinity;
        let n = 0;
        return {
          add(r) { const x = toNumber(g(r)); if (x === undefined) return; n++; if (isMin ? x < m : x > m) m = x; },
          out: (ctx) => (n < ctx.minGroupSize ? null : m),
        };
      };
    }
    case 'stddev': {
      const g = getter(a.field);
      return () => {
        let n = 0, mean = 0, m2 = 0;
        return {
          add(r) {
            const x = toNumber(g(r));
            if (x === undefined) return;
            n++;
            const d = x - mean;
            mean += d / n;
            m2 += d * (x - mean);
          },
          out: (ctx) => (n < ctx.minGroupSize || n < 2 ? null : Math.sqrt(m2 / (n - 1))),
        };
      };
    }
    case 'quantiles': {
      const g = getter(a.field);
      const qs = a.q;
      return () => {
        const sk = new QuantileSketch();
        return {
          add(r) { const x = toNumber(g(r)); if (x !== undefined) sk.add(x); },
          out: (ctx) => (sk.count < ctx.minGroupSize ? null : qs.map((q) => ({ q, value: sk.quantile(q) }))),
        };
      };
    }
    case 'histogram': {
      const g = getter(a.field);
      const bins = a.bins;
      return () => {
        const counts = new Array<number>(bins.length - 1).fill(0);
        let below = 0, above = 0;
        return {
          add(r) {
            const x = toNumber(g(r));
            if (x === undefined) return;
            if (x < bins[0]!) { below++; return; }
            if (x >= bins[bins.length - 1]!) { above++; return; }
            let lo = 0, hi = bins.length - 1; // bins[lo] <= x < bins[hi]
            while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (x < bins[mid]!) hi = mid; else lo = mid; }
            counts[lo]!++;
          },
          out(ctx) {
            const cell = (c: number): number | null =>
              ctx.eps > 0 ? Math.max(0, Math.round(noisy(ctx, c, 1))) : c > 0 && c < ctx.minGroupSize ? null : c;
            return { edges: bins, counts: counts.map(cell), below: cell(below), above: cell(above) };
          },
        };
      };
    }
    case 'distinctCount': {
      const g = getter(a.field);
      return () => {
        const dc = new DistinctCounter();
        let n = 0;
        return {
          add(r) {
            const x = g(r);
            if (x === undefined || x === null || typeof x === 'object') return;
            n++;
            dc.add(typeof x === 'string' ? 's' + x : typeof x === 'number' ? 'n' + x : 'b' + String(x));
          },
          out: (ctx) => (n < ctx.minGroupSize ? null : dc.estimate()),
        };
      };
    }
    case 'topTerms': {
      const g = getter(a.field);
      const k = a.k;
      return () => {
        const ft = new FrequentTerms();
        return {
          add(r) {
            const x = g(r);
            if (typeof x !== 'string') return;
            // document frequency: a term counts once per record
            const seen = new Set<string>();
            for (const t of tokenize(x, 2000)) {
              if (t.length < 3 || STOPWORDS.has(t) || seen.has(t)) continue;
              seen.add(t);
              ft.add(t);
            }
          },
          out: (ctx) => ft.top(k, ctx.minGroupSize),
        };
      };
    }
    case 'sentiment': {
      const g = getter(a.field);
      return () => {
        let n = 0, sum = 0, pos = 0, neg = 0, neutral = 0;
        return {
          add(r) {
            const x = g(r);
            if (typeof x !== 'string') return;
            const s = sentimentScore(tokenize(x, 2000));
            n++;
            sum += s;
            if (s > 0) pos++;
            else if (s < 0) neg++;
            else neutral++;
          },
          out(ctx) {
            if (ctx.eps > 0) {
              const nn = noisy(ctx, n, 1);
              const s = noisy(ctx, sum, 5);
              return { mean: nn < 1 ? null : clampTo(s / nn, -5, 5), positive: null, negative: null, neutral: null };
            }
            if (n < ctx.minGroupSize) return null;
            return { mean: sum / n, positive: pos, negative: neg, neutral };
          },
        };
      };
    }
  }
}

/** Noisy measurements per group under DP: the group count, plus one or two per aggregate. */
function measurementsPerGroup(q: Query): number {
  let k = 1;
  for (const a of q.aggregates) {
    if (a.op === 'sum' || a.op === 'histogram') k += 1;
    else if (a.op === 'mean' || a.op === 'sentiment') k += 2;
  }
  return k;
}

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

export class AnalyticsEngine {
  readonly #query: Query;
  readonly #pred: Pred | undefined;
  readonly #keyGetters: Getter[];
  readonly #factories: (() => Acc)[];
  readonly #groups = new Map<string, Group>();
  readonly #maxGroups: number;
  readonly #minGroupSize: number;
  readonly #random: RandomSource;
  #records = 0;
  #matched = 0;
  #finished = false;

  constructor(query: Query, opts: EngineOptions = {}) {
    this.#query = query;
    this.#pred = query.filter ? compileFilter(query.filter) : undefined;
    this.#keyGetters = query.groupBy.map(getter);
    this.#factories = query.aggregates.map(makeAcc);
    this.#maxGroups = opts.maxGroups ?? DEFAULT_MAX_GROUPS;
    const floor = opts.minGroupSizeFloor ?? DEFAULT_MIN_GROUP_SIZE;
    this.#minGroupSize = Math.max(floor, query.privacy.minGroupSize ?? DEFAULT_MIN_GROUP_SIZE);
    this.#random = opts.random ?? cryptoRandom();
  }

  get minGroupSize(): number {
    return this.#minGroupSize;
  }

  add(r: Record<string, unknown>): void {
    if (this.#finished) throw new Error('AnalyticsEngine: already finished');
    this.#records++;
    if (this.#pred && !this.#pred(r)) return;
    this.#matched++;
    const kg = this.#keyGetters;
    let key: GroupKeyValue[];
    let ks: string;
    if (kg.length === 0) {
      key = [];
      ks = '';
    } else if (kg.length === 1) {
      const v = keyValue(kg[0]!(r));
      key = [v];
      ks = typeof v === 'string' ? 's' + v : JSON.stringify(v);
    } else {
      key = kg.map((g) => keyValue(g(r)));
      ks = JSON.stringify(key);
    }
    let grp = this.#groups.get(ks);
    if (grp === undefined) {
      if (this.#groups.size >= this.#maxGroups)
        throw new ToolkitError('ERR_JOB_FAILED', `the query produces more than ${this.#maxGroups} groups`, { reason: 'too_many_groups' });
      grp = { key, count: 0, accs: this.#factories.map((f) => f()) };
      this.#groups.set(ks, grp);
    }
    grp.count++;
    const accs = grp.accs;
    for (let i = 0; i < accs.length; i++) accs[i]!.add(r);
  }

  finish(): EngineOutput {
    if (this.#finished) throw new Error('AnalyticsEngine: already finished');
    this.#finished = true;
    const dp = this.#query.privacy.dp;
    const eps = dp ? dp.epsilon / measurementsPerGroup(this.#query) : 0;
    const out: ResultGroup[] = [];
    let suppressed = 0;
    const entries = [...this.#groups].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [, g] of entries) {
      const released = eps > 0 ? Math.max(0, Math.round(g.count + laplace(this.#random, 1 / eps))) : g.count;
      if (released < this.#minGroupSize) {
        suppressed++;
        continue;
      }
      const ctx: Ctx = { minGroupSize: this.#minGroupSize, eps, random: this.#random, groupCount: released };
      const aggregates: Record<string, unknown> = {};
      this.#query.aggregates.forEach((a, i) => { aggregates[a.name] = g.accs[i]!.out(ctx); });
      out.push({ key: g.key, count: released, aggregates });
    }
    this.#groups.clear();
    return {
      // A matched count below minGroupSize would say whether a handful of records pass a filter
      // (e.g. 0 or 1: does this person's encrypted value satisfy it?), so it is withheld like a group.
      counts: {
        records: this.#records,
        matched: dp || this.#matched < this.#minGroupSize ? null : this.#matched,
        groups: out.length,
        suppressedGroups: suppressed,
      },
      groups: out,
      privacy: { minGroupSize: this.#minGroupSize, dp: dp ? { mechanism: 'laplace', epsilon: dp.epsilon } : null },
    };
  }
}
