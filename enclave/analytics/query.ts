/**
 * The query language, version 1 (README "Query language"): a JSON object validated strictly. Every
 * problem is `ERR_QUERY_INVALID` whose `reason` is the JSON path of the offending value, e.g.
 * `$.aggregates[2].bins`.
 */
import { ToolkitError } from '../../attestation/errors.js';
import { isValidFieldPath } from '../protocol/field.js';

export type Scalar = string | number | boolean | null;

export type Filter =
  | { op: 'eq' | 'ne'; field: string; value: Scalar }
  | { op: 'in'; field: string; values: Scalar[] }
  | { op: 'lt' | 'lte' | 'gt' | 'gte'; field: string; value: number | string }
  | { op: 'and' | 'or'; args: Filter[] }
  | { op: 'not'; arg: Filter };

export type Aggregate =
  | { name: string; op: 'count' }
  | { name: string; op: 'sum' | 'mean'; field: string; clamp?: [number, number] }
  | { name: string; op: 'min' | 'max' | 'stddev' | 'distinctCount' | 'sentiment'; field: string }
  | { name: string; op: 'quantiles'; field: string; q: number[] }
  | { name: string; op: 'histogram'; field: string; bins: number[] }
  | { name: string; op: 'topTerms'; field: string; k: number };

export type AggregateOp = Aggregate['op'];

export interface Query {
  version: 1;
  filter?: Filter;
  groupBy: string[];
  aggregates: Aggregate[];
  privacy: { minGroupSize?: number; dp?: { epsilon: number } };
}

export const MAX_AGGREGATES = 32;
/**
 * At most this many aggregates may read one field: each aggregate keeps its own per-group state, so
 * repeating one (e.g. 32 quantile sketches of the same field) multiplies memory without adding any
 * information (docs/privacy.md, "Bounded resources").
 */
export const MAX_AGGREGATES_PER_FIELD = 4;
export const MAX_GROUP_BY = 4;
export const MAX_FILTER_DEPTH = 8;
export const MAX_EPSILON = 10;
/** Aggregates that differential privacy covers here; others are refused in a DP query. */
export const DP_OPS: readonly AggregateOp[] = ['count', 'sum', 'mean', 'histogram', 'sentiment'];

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const AGG_OPS: readonly AggregateOp[] = ['count', 'sum', 'mean', 'min', 'max', 'stddev', 'quantiles', 'histogram', 'distinctCount', 'topTerms', 'sentiment'];

function bad(path: string, message: string): ToolkitError {
  return new ToolkitError('ERR_QUERY_INVALID', `${path}: ${message}`, { reason: path });
}

function isObj(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function keys(o: Record<string, unknown>, required: readonly string[], optional: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!required.includes(k) && !optional.includes(k)) throw bad(`${path}.${k}`, 'unknown key');
  for (const k of required) if (!(k in o)) throw bad(`${path}.${k}`, 'missing');
}

const isFiniteNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function scalar(v: unknown, path: string): Scalar {
  if (v === null || typeof v === 'boolean' || isFiniteNum(v)) return v;
  if (typeof v === 'string' && v.length <= 1024) return v;
  throw bad(path, 'expected a string (up to 1024 characters), finite number, boolean or null');
}

function field(v: unknown, path: string): string {
  if (!isValidFieldPath(v)) throw bad(path, 'expected a field path (dot-separated names)');
  return v;
}

function filter(v: unknown, path: string, depth: number): Filter {
  if (depth > MAX_FILTER_DEPTH) throw bad(path, `filters nest deeper than ${MAX_FILTER_DEPTH}`);
  if (!isObj(v)) throw bad(path, 'expected a filter object');
  switch (v.op) {
    case 'eq':
    case 'ne':
      keys(v, ['op', 'field', 'value'], [], path);
      return { op: v.op, field: field(v.field, `${path}.field`), value: scalar(v.value, `${path}.value`) };
    case 'in': {
      keys(v, ['op', 'field', 'values'], [], path);
      if (!Array.isArray(v.values) || v.values.length === 0 || v.values.length > 1000) throw bad(`${path}.values`, 'expected 1 to 1000 values');
      return { op: 'in', field: field(v.field, `${path}.field`), values: v.values.map((x, i) => scalar(x, `${path}.values[${i}]`)) };
    }
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte': {
      keys(v, ['op', 'field', 'value'], [], path);
      const val = v.value;
      if (!isFiniteNum(val) && !(typeof val === 'string' && val.length <= 1024)) throw bad(`${path}.value`, 'expected a finite number or a string');
      return { op: v.op, field: field(v.field, `${path}.field`), value: val };
    }
    case 'and':
    case 'or': {
      keys(v, ['op', 'args'], [], path);
      if (!Array.isArray(v.args) || v.args.length === 0 || v.args.length > 32) throw bad(`${path}.args`, 'expected 1 to 32 filters');
      return { op: v.op, args: v.args.map((a, i) => filter(a, `${path}.args[${i}]`, depth + 1)) };
    }
    case 'not':
      keys(v, ['op', 'arg'], [], path);
      return { op: 'not', arg: filter(v.arg, `${path}.arg`, depth + 1) };
    default:
      throw bad(`${path}.op`, 'expected eq, ne, in, lt, lte, gt, gte, and, or or not');
  }
}

function aggregate(v: unknown, path: string): Aggregate {
  if (!isObj(v)) throw bad(path, 'expected an aggregate object');
  const op = v.op;
  if (typeof op !== 'string' || !(AGG_OPS as readonly string[]).includes(op)) throw bad(`${path}.op`, `expected one of ${AGG_OPS.join(', ')}`);
  if (typeof v.name !== 'string' || !NAME_RE.test(v.name)) throw bad(`${path}.name`, 'expected a name [A-Za-z_][A-Za-z0-9_]{0,63}');
  const name = v.name;
  switch (op as AggregateOp) {
    case 'count':
      keys(v, ['name', 'op'], [], path);
      return { name, op: 'count' };
    case 'sum':
    case 'mean': {
      keys(v, ['name', 'op', 'field'], ['clamp'], path);
      const a: Aggregate = { name, op: op as 'sum' | 'mean', field: field(v.field, `${path}.field`) };
      if (v.clamp !== undefined) {
        const c = v.clamp;
        if (!Array.isArray(c) || c.length !== 2 || !isFiniteNum(c[0]) || !isFiniteNum(c[1]) || !(c[0] < c[1]))
          throw bad(`${path}.clamp`, 'expected [low, high] with low < high');
        a.clamp = [c[0], c[1]];
      }
      return a;
    }
    case 'min':
    case 'max':
    case 'stddev':
    case 'distinctCount':
    case 'sentiment':
      keys(v, ['name', 'op', 'field'], [], path);
      return { name, op: op as 'min', field: field(v.field, `${path}.field`) };
    case 'quantiles': {
      keys(v, ['name', 'op', 'field', 'q'], [], path);
      const q = v.q;
      if (!Array.isArray(q) || q.length === 0 || q.length > 20) throw bad(`${path}.q`, 'expected 1 to 20 quantiles');
      q.forEach((x, i) => { if (!isFiniteNum(x) || x < 0 || x > 1) throw bad(`${path}.q[${i}]`, 'expected a number in [0, 1]'); });
      if (new Set(q).size !== q.length) throw bad(`${path}.q`, 'duplicate quantile');
      return { name, op: 'quantiles', field: field(v.field, `${path}.field`), q: q as number[] };
    }
    case 'histogram': {
      keys(v, ['name', 'op', 'field', 'bins'], [], path);
      const b = v.bins;
      if (!Array.isArray(b) || b.length < 2 || b.length > 1001) throw bad(`${path}.bins`, 'expected 2 to 1001 bin edges');
      b.forEach((x, i) => {
        if (!isFiniteNum(x)) throw bad(`${path}.bins[${i}]`, 'expected a finite number');
        if (i > 0 && !(x > (b[i - 1] as number))) throw bad(`${path}.bins[${i}]`, 'edges must increase strictly');
      });
      return { name, op: 'histogram', field: field(v.field, `${path}.field`), bins: b as number[] };
    }
    case 'topTerms': {
      keys(v, ['name', 'op', 'field', 'k'], [], path);
      if (typeof v.k !== 'number' || !Number.isInteger(v.k) || v.k < 1 || v.k > 100) throw bad(`${path}.k`, 'expected an integer from 1 to 100');
      return { name, op: 'topTerms', field: field(v.field, `${path}.field`), k: v.k };
    }
  }
}

/** Validate an untrusted query. */
export function validateQuery(v: unknown): Query {
  if (!isObj(v)) throw bad('$', 'expected a query object');
  keys(v, ['version', 'aggregates'], ['filter', 'groupBy', 'privacy'], '$');
  if (v.version !== 1) throw bad('$.version', 'expected 1');
  const q: Query = { version: 1, groupBy: [], aggregates: [], privacy: {} };
  if (v.filter !== undefined) q.filter = filter(v.filter, '$.filter', 1);
  if (v.groupBy !== undefined) {
    if (!Array.isArray(v.groupBy) || v.groupBy.length > MAX_GROUP_BY) throw bad('$.groupBy', `expected 0 to ${MAX_GROUP_BY} field paths`);
    q.groupBy = v.groupBy.map((g, i) => field(g, `$.groupBy[${i}]`));
    if (new Set(q.groupBy).size !== q.groupBy.length) throw bad('$.groupBy', 'duplicate field');
  }
  if (!Array.isArray(v.aggregates) || v.aggregates.length === 0 || v.aggregates.length > MAX_AGGREGATES)
    throw bad('$.aggregates', `expected 1 to ${MAX_AGGREGATES} aggregates`);
  const names = new Set<string>();
  const perField = new Map<string, number>();
  v.aggregates.forEach((a, i) => {
    const agg = aggregate(a, `$.aggregates[${i}]`);
    if (names.has(agg.name)) throw bad(`$.aggregates[${i}].name`, 'duplicate name');
    names.add(agg.name);
    if ('field' in agg) {
      const n = (perField.get(agg.field) ?? 0) + 1;
      if (n > MAX_AGGREGATES_PER_FIELD) throw bad(`$.aggregates[${i}].field`, `more than ${MAX_AGGREGATES_PER_FIELD} aggregates read field "${agg.field}"`);
      perField.set(agg.field, n);
    }
    q.aggregates.push(agg);
  });
  if (v.privacy !== undefined) {
    const p = v.privacy;
    if (!isObj(p)) throw bad('$.privacy', 'expected an object');
    keys(p, [], ['minGroupSize', 'dp'], '$.privacy');
    if (p.minGroupSize !== undefined) {
      if (typeof p.minGroupSize !== 'number' || !Number.isInteger(p.minGroupSize) || p.minGroupSize < 1 || p.minGroupSize > 1_000_000)
        throw bad('$.privacy.minGroupSize', 'expected an integer from 1 to 1000000');
      q.privacy.minGroupSize = p.minGroupSize;
    }
    if (p.dp !== undefined) {
      const dp = p.dp;
      if (!isObj(dp)) throw bad('$.privacy.dp', 'expected an object');
      keys(dp, ['epsilon'], [], '$.privacy.dp');
      if (!isFiniteNum(dp.epsilon) || !(dp.epsilon > 0) || dp.epsilon > MAX_EPSILON) throw bad('$.privacy.dp.epsilon', `expected a number in (0, ${MAX_EPSILON}]`);
      q.privacy.dp = { epsilon: dp.epsilon };
      // Which operations DP covers and whether clamping bounds exist (the query's or the owner's) are
      // the release policy check's verdicts (release-policy.ts: reasons `dp_op`, `clamp`); the engine
      // refuses them again (engine.ts).
    }
  }
  return q;
}
