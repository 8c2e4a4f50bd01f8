/**
 * The data owner's release policy, version 1 (README "Release policy"; JSON Schema in
 * schemas/release-policy.schema.json): what may be asked of a dataset, modelled on AWS Clean Rooms
 * analysis rules. It is written at encryption time and carried inside the seal, so a host can neither
 * drop nor edit it. The worker checks every query against it before it fetches a key or reads a
 * record; `enclavekit query check` gives the same verdict offline.
 *
 * A query is refused, never quietly changed: a minimum group size below the owner's, an epsilon
 * outside the owner's range, clamping bounds wider than the owner's, or a field or operation the
 * policy does not list are all `ERR_QUERY_REFUSED` with a reason that names the rule.
 */
import { ToolkitError } from '../../attestation/errors.js';
import { isValidFieldPath } from './field.js';
import { DP_OPS, validateQuery, type Aggregate, type AggregateOp, type Filter, type Query } from '../analytics/query.js';
export { DP_OPS };
import type { FieldType } from './manifest.js';

export type DimensionRule = { domain?: (string | number | boolean)[] };
export type AggregateRule = { ops: AggregateOp[]; bounds?: [number, number] };
export type FilterOp = 'eq' | 'ne' | 'in' | 'lt' | 'lte' | 'gt' | 'gte';

export interface DpRule {
  /** Queries without differential privacy are refused. */
  required: boolean;
  epsilonMin: number;
  epsilonMax: number;
  /** Total epsilon the dataset may spend over its life (the worker's ledger). */
  budget: number;
  /** For partition selection: the probability bound of releasing a group key that one record made. */
  delta: number;
}

export interface ReleasePolicy {
  version: 1;
  minGroupSize: number;
  /** `"*"`: any field of the schema. */
  dimensions: '*' | Record<string, DimensionRule>;
  /** `"*"`: any field, any operation the mode allows (under DP the DP operations only). */
  aggregates: '*' | Record<string, AggregateRule>;
  filters: '*' | Record<string, FilterOp[]>;
  dp: DpRule;
  /** min, max and quantiles release single values: only when the owner says so, and never under DP. */
  exactExtrema: boolean;
  /** ISO 8601; queries after it are refused. */
  expires?: string;
}

/** What applies when the owner sealed no policy: DP required, no exact extrema, a small budget. */
export const DEFAULT_RELEASE_POLICY: Readonly<ReleasePolicy> = Object.freeze({
  version: 1,
  minGroupSize: 10,
  dimensions: '*',
  aggregates: '*',
  filters: '*',
  dp: Object.freeze({ required: true, epsilonMin: 0.01, epsilonMax: 1, budget: 3, delta: 1e-6 }),
  exactExtrema: false,
}) as Readonly<ReleasePolicy>;

const EXTREMA_OPS: readonly AggregateOp[] = ['min', 'max', 'quantiles'];
/** Operations that read numbers, and those that read text: the sealed schema type must match. */
const NUMERIC_OPS: readonly AggregateOp[] = ['sum', 'mean', 'min', 'max', 'stddev', 'quantiles', 'histogram'];
const TEXT_OPS: readonly AggregateOp[] = ['topTerms', 'sentiment'];
const ALL_OPS: readonly AggregateOp[] = ['count', 'sum', 'mean', 'min', 'max', 'stddev', 'quantiles', 'histogram', 'distinctCount', 'topTerms', 'sentiment'];
const FILTER_OPS: readonly FilterOp[] = ['eq', 'ne', 'in', 'lt', 'lte', 'gt', 'gte'];
export const MAX_POLICY_EPSILON = 10;
export const MAX_POLICY_BUDGET = 1000;

function bad(path: string, message: string): ToolkitError {
  return new ToolkitError('ERR_POLICY_INVALID', `release policy ${path}: ${message}`, { reason: path });
}

function isObj(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function keys(o: Record<string, unknown>, required: readonly string[], optional: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!required.includes(k) && !optional.includes(k)) throw bad(`${path}.${k}`, 'unknown key');
  for (const k of required) if (!(k in o)) throw bad(`${path}.${k}`, 'missing');
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function fieldMap<T>(v: unknown, path: string, each: (x: unknown, p: string) => T): '*' | Record<string, T> {
  if (v === '*') return '*';
  if (!isObj(v)) throw bad(path, 'expected "*" or an object keyed by field path');
  const out: Record<string, T> = {};
  const ks = Object.keys(v);
  if (ks.length > 1024) throw bad(path, 'more than 1024 fields');
  for (const k of ks) {
    if (!isValidFieldPath(k)) throw bad(path, `"${String(k).slice(0, 80)}" is not a field path`);
    out[k] = each(v[k], `${path}.${k}`);
  }
  return out;
}

/** Strict validation of an untrusted policy (`ERR_POLICY_INVALID`, reason = the JSON path). */
export function validateReleasePolicy(v: unknown): ReleasePolicy {
  if (!isObj(v)) throw bad('$', 'expected an object');
  keys(v, ['version', 'minGroupSize', 'dimensions', 'aggregates', 'filters', 'dp', 'exactExtrema'], ['expires'], '$');
  if (v.version !== 1) throw bad('$.version', 'expected 1');
  if (typeof v.minGroupSize !== 'number' || !Number.isInteger(v.minGroupSize) || v.minGroupSize < 1 || v.minGroupSize > 1_000_000)
    throw bad('$.minGroupSize', 'expected an integer from 1 to 1000000');
  const dimensions = fieldMap<DimensionRule>(v.dimensions, '$.dimensions', (x, p) => {
    if (!isObj(x)) throw bad(p, 'expected an object');
    keys(x, [], ['domain'], p);
    if (x.domain === undefined) return {};
    if (!Array.isArray(x.domain) || x.domain.length === 0 || x.domain.length > 10_000) throw bad(`${p}.domain`, 'expected 1 to 10000 values');
    const seen = new Set<string>();
    const domain = x.domain.map((d, i) => {
      if (!(typeof d === 'string' && d.length <= 1024) && !finite(d) && typeof d !== 'boolean') throw bad(`${p}.domain[${i}]`, 'expected a string, finite number or boolean');
      const k = `${typeof d}:${String(d)}`;
      if (seen.has(k)) throw bad(`${p}.domain[${i}]`, 'duplicate value');
      seen.add(k);
      return d as string | number | boolean;
    });
    return { domain };
  });
  const aggregates = fieldMap<AggregateRule>(v.aggregates, '$.aggregates', (x, p) => {
    if (!isObj(x)) throw bad(p, 'expected an object');
    keys(x, ['ops'], ['bounds'], p);
    if (!Array.isArray(x.ops) || x.ops.length === 0) throw bad(`${p}.ops`, 'expected a non-empty list of operations');
    const ops = x.ops.map((o, i) => {
      if (typeof o !== 'string' || !(ALL_OPS as readonly string[]).includes(o) || o === 'count') throw bad(`${p}.ops[${i}]`, `expected one of ${ALL_OPS.filter((a) => a !== 'count').join(', ')}`);
      return o as AggregateOp;
    });
    const rule: AggregateRule = { ops: [...new Set(ops)] };
    if (x.bounds !== undefined) {
      const b = x.bounds;
      if (!Array.isArray(b) || b.length !== 2 || !finite(b[0]) || !finite(b[1]) || !(b[0] < b[1])) throw bad(`${p}.bounds`, 'expected [low, high] with low < high');
      rule.bounds = [b[0], b[1]];
    }
    return rule;
  });
  const filters = fieldMap<FilterOp[]>(v.filters, '$.filters', (x, p) => {
    if (!Array.isArray(x) || x.length === 0) throw bad(p, 'expected a non-empty list of operators');
    return [...new Set(x.map((o, i) => {
      if (typeof o !== 'string' || !(FILTER_OPS as readonly string[]).includes(o)) throw bad(`${p}[${i}]`, `expected one of ${FILTER_OPS.join(', ')}`);
      return o as FilterOp;
    }))];
  });
  const d = v.dp;
  if (!isObj(d)) throw bad('$.dp', 'expected an object');
  keys(d, ['required', 'epsilonMin', 'epsilonMax', 'budget', 'delta'], [], '$.dp');
  if (typeof d.required !== 'boolean') throw bad('$.dp.required', 'expected true or false');
  if (!finite(d.epsilonMin) || !(d.epsilonMin > 0) || d.epsilonMin > MAX_POLICY_EPSILON) throw bad('$.dp.epsilonMin', `expected a number in (0, ${MAX_POLICY_EPSILON}]`);
  if (!finite(d.epsilonMax) || d.epsilonMax < d.epsilonMin || d.epsilonMax > MAX_POLICY_EPSILON) throw bad('$.dp.epsilonMax', `expected a number in [epsilonMin, ${MAX_POLICY_EPSILON}]`);
  if (!finite(d.budget) || d.budget < d.epsilonMin || d.budget > MAX_POLICY_BUDGET) throw bad('$.dp.budget', `expected a number in [epsilonMin, ${MAX_POLICY_BUDGET}]`);
  if (!finite(d.delta) || !(d.delta > 0) || d.delta > 1e-3) throw bad('$.dp.delta', 'expected a number in (0, 0.001]');
  if (typeof v.exactExtrema !== 'boolean') throw bad('$.exactExtrema', 'expected true or false');
  const policy: ReleasePolicy = {
    version: 1,
    minGroupSize: v.minGroupSize,
    dimensions,
    aggregates,
    filters,
    dp: { required: d.required, epsilonMin: d.epsilonMin, epsilonMax: d.epsilonMax, budget: d.budget, delta: d.delta },
    exactExtrema: v.exactExtrema,
  };
  if (v.expires !== undefined) {
    if (typeof v.expires !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/.test(v.expires) || Number.isNaN(Date.parse(v.expires)))
      throw bad('$.expires', 'expected an ISO 8601 UTC time such as 2027-01-31T00:00:00Z');
    policy.expires = v.expires;
  }
  return policy;
}

/** The privacy parameters a permitted query runs with, all resolved from query and policy. */
export interface ResolvedRelease {
  query: Query;
  minGroupSize: number;
  dp: { epsilon: number; delta: number } | null;
  /** Budget that the owner allows in total (DP queries only). */
  budget: number | null;
  /** Clamping bounds per numeric field (the policy's, or the query's when they lie within them). */
  clamps: Map<string, [number, number]>;
  /** Declared public domains of the grouped fields that have one. */
  publicDomains: Map<string, (string | number | boolean)[]>;
}

function refused(reason: string, message: string): ToolkitError {
  return new ToolkitError('ERR_QUERY_REFUSED', message, { reason });
}

function filterFields(f: Filter, out: { field: string; op: FilterOp; value?: number | string }[]): void {
  switch (f.op) {
    case 'and':
    case 'or':
      for (const a of f.args) filterFields(a, out);
      return;
    case 'not':
      filterFields(f.arg, out);
      return;
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte':
      // An ordering compares numbers with numbers and text with text; the field must hold that type.
      out.push({ field: f.field, op: f.op, value: f.value });
      return;
    default:
      out.push({ field: f.field, op: f.op });
  }
}

function aggregateField(a: Aggregate): string | undefined {
  return a.op === 'count' ? undefined : a.field;
}

/**
 * The owner's verdict on a query: the resolved parameters, or `ERR_QUERY_REFUSED` with a reason
 * (`ERR_QUERY_INVALID` when the query is malformed). `schema` is the sealed schema: a field it does
 * not name is refused (a typo would otherwise come back as one null group).
 */
export function checkQueryAgainstPolicy(
  rawQuery: unknown,
  sealed: { policy: ReleasePolicy | null; schema: Readonly<Record<string, FieldType>> },
  now: Date,
): ResolvedRelease {
  const query = validateQuery(rawQuery);
  const policy = sealed.policy ?? (DEFAULT_RELEASE_POLICY as ReleasePolicy);
  const schema = sealed.schema;
  if (policy.expires !== undefined && now.getTime() > Date.parse(policy.expires))
    throw refused('expired', `the owner's release policy expired at ${policy.expires}`);
  const known = (f: string, where: string): void => {
    if (!Object.prototype.hasOwnProperty.call(schema, f)) throw refused('unknown_field', `${where} names "${f}", which is not a field of this dataset (fields: ${Object.keys(schema).slice(0, 20).join(', ')})`);
  };
  // A value of another type would be skipped without a word (and a count of skipped values would say
  // how many records hold one): an operation must match the field's sealed type.
  const typed = (f: string, want: 'number' | 'string', what: string): void => {
    if (schema[f] !== want)
      throw refused('type', `${what} needs a ${want} field; "${f}" is ${schema[f] === 'mixed' ? 'mixed (some records hold other types)' : `a ${schema[f]}`} in this dataset`);
  };
  const dpq = query.privacy.dp;
  if (policy.dp.required && !dpq) throw refused('dp_required', "the owner's release policy requires differential privacy ($.privacy.dp)");
  if (dpq && (dpq.epsilon < policy.dp.epsilonMin || dpq.epsilon > policy.dp.epsilonMax))
    throw refused('epsilon_range', `epsilon ${dpq.epsilon} is outside the owner's range [${policy.dp.epsilonMin}, ${policy.dp.epsilonMax}]`);
  const mgs = query.privacy.minGroupSize;
  if (mgs !== undefined && mgs < policy.minGroupSize)
    throw refused('min_group_size', `minGroupSize ${mgs} is below the owner's minimum of ${policy.minGroupSize}`);
  const publicDomains = new Map<string, (string | number | boolean)[]>();
  for (const g of query.groupBy) {
    known(g, 'groupBy');
    if (policy.dimensions !== '*') {
      const rule = policy.dimensions[g];
      if (!rule) throw refused('dimension', `grouping by "${g}" is not allowed by the owner's policy`);
      if (rule.domain) publicDomains.set(g, rule.domain);
    }
  }
  const clamps = new Map<string, [number, number]>();
  query.aggregates.forEach((a, i) => {
    const f = aggregateField(a);
    if (f === undefined) return;
    known(f, `$.aggregates[${i}]`);
    if (dpq && !DP_OPS.includes(a.op)) throw refused('dp_op', `${a.op} is not available under differential privacy (allowed: ${DP_OPS.join(', ')})`);
    if (EXTREMA_OPS.includes(a.op) && !policy.exactExtrema) throw refused('extrema', `${a.op} releases single values; the owner's policy does not allow exact extrema`);
    let bounds: [number, number] | undefined;
    if (policy.aggregates !== '*') {
      const rule = policy.aggregates[f];
      if (!rule || !rule.ops.includes(a.op)) throw refused('aggregate', `${a.op} over "${f}" is not allowed by the owner's policy`);
      bounds = rule.bounds;
    }
    if (NUMERIC_OPS.includes(a.op)) typed(f, 'number', a.op);
    if (TEXT_OPS.includes(a.op)) typed(f, 'string', a.op);
    if (a.op === 'sum' || a.op === 'mean') {
      const qc = a.clamp;
      let c: [number, number] | undefined = bounds ?? qc;
      if (bounds && qc) {
        if (qc[0] < bounds[0] || qc[1] > bounds[1]) throw refused('clamp', `clamp [${qc[0]}, ${qc[1]}] on "${f}" is wider than the owner's bounds [${bounds[0]}, ${bounds[1]}]`);
        c = qc;
      }
      if (dpq && !c) throw refused('clamp', `differential privacy needs clamping bounds for "${f}" ($.aggregates[${i}].clamp)`);
      if (c) {
        const prev = clamps.get(f);
        if (prev && (prev[0] !== c[0] || prev[1] !== c[1])) throw refused('clamp', `two different clamps for "${f}"`);
        clamps.set(f, c);
      }
    }
  });
  if (query.filter) {
    const used: { field: string; op: FilterOp; value?: number | string }[] = [];
    filterFields(query.filter, used);
    for (const u of used) {
      known(u.field, '$.filter');
      if (u.value !== undefined) typed(u.field, typeof u.value === 'number' ? 'number' : 'string', `filter ${u.op}`);
      if (policy.filters !== '*') {
        const ops = policy.filters[u.field];
        if (!ops || !ops.includes(u.op)) throw refused('filter', `filtering "${u.field}" with ${u.op} is not allowed by the owner's policy`);
      }
    }
  }
  return {
    query,
    minGroupSize: Math.max(policy.minGroupSize, mgs ?? policy.minGroupSize),
    dp: dpq ? { epsilon: dpq.epsilon, delta: policy.dp.delta } : null,
    budget: dpq ? policy.dp.budget : null,
    clamps,
    publicDomains,
  };
}
