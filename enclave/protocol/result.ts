/**
 * The result document, version 1: the only thing that leaves the enclave. Encoded as canonical CBOR
 * (see cbor.ts), so its SHA-384 is well defined and is what the attestation's user_data carries.
 * Decoding refuses any non-canonical encoding and any document outside the schema.
 */
import { ToolkitError } from '../../attestation/errors.js';
import { toHex } from '../../attestation/bytes.js';
import { decodeCanonical, encodeCanonical } from './cbor.js';
import { sha384 } from './digest.js';

export type Platform = 'nitro' | 'sev-snp' | 'simulator';
export const PLATFORMS: readonly Platform[] = ['nitro', 'sev-snp', 'simulator'];

export type GroupKeyValue = string | number | boolean | null;
/** An aggregate's value: numbers, null, or small maps/arrays of them (see README "Result format"). */
export type AggregateValue = unknown;

export interface ResultGroup {
  key: GroupKeyValue[];
  /** Records in the group (noisy under differential privacy). */
  count: number;
  aggregates: Record<string, AggregateValue>;
}

export interface DpParameters {
  mechanism: 'laplace';
  epsilon: number;
  /** Epsilon of this dataset spent after this query, and the dataset's limit; null without a budget. */
  budget: { limit: number; spent: number } | null;
}

export interface ResultDocument {
  version: 1;
  jobId: string;
  datasetId: string;
  datasetDigest: Uint8Array;
  query: Record<string, unknown>;
  queryDigest: Uint8Array;
  counts: {
    records: number;
    /** Records that passed the filter; null under differential privacy (it would be an exact count). */
    matched: number | null;
    groups: number;
    suppressedGroups: number;
  };
  groups: ResultGroup[];
  privacy: { minGroupSize: number; dp: DpParameters | null };
  platform: Platform;
  workerVersion: string;
}

function bad(path: string, message: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_RESULT_INVALID', `result${path}: ${message}`, cause === undefined ? { reason: path || '$' } : { reason: path || '$', cause });
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}
function exactKeys(o: Record<string, unknown>, keys: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw bad(`${path}.${k}`, 'unknown key');
  for (const k of keys) if (!(k in o)) throw bad(`${path}.${k}`, 'missing');
}
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isBytes = (v: unknown, n: number): v is Uint8Array => v instanceof Uint8Array && v.length === n;

/** Schema check of a result document (decoded or about to be encoded). */
export function validateResult(v: unknown): ResultDocument {
  if (!isMap(v)) throw bad('', 'expected a map');
  exactKeys(v, ['version', 'jobId', 'datasetId', 'datasetDigest', 'query', 'queryDigest', 'counts', 'groups', 'privacy', 'platform', 'workerVersion'], '');
  if (v.version !== 1) throw bad('.version', 'expected 1');
  if (typeof v.jobId !== 'string' || v.jobId.length === 0 || v.jobId.length > 128) throw bad('.jobId', 'expected a job id');
  if (typeof v.datasetId !== 'string' || v.datasetId.length === 0 || v.datasetId.length > 128) throw bad('.datasetId', 'expected a dataset id');
  if (!isBytes(v.datasetDigest, 48)) throw bad('.datasetDigest', 'expected 48 bytes');
  if (!isMap(v.query)) throw bad('.query', 'expected a map');
  if (!isBytes(v.queryDigest, 48)) throw bad('.queryDigest', 'expected 48 bytes');
  const c = v.counts;
  if (!isMap(c)) throw bad('.counts', 'expected a map');
  exactKeys(c, ['records', 'matched', 'groups', 'suppressedGroups'], '.counts');
  for (const k of ['records', 'groups', 'suppressedGroups']) if (!isUint(c[k])) throw bad(`.counts.${k}`, 'expected an unsigned integer');
  if (c.matched !== null && !isUint(c.matched)) throw bad('.counts.matched', 'expected an unsigned integer or null');
  if (!Array.isArray(v.groups)) throw bad('.groups', 'expected an array');
  v.groups.forEach((g: unknown, i: number) => {
    const p = `.groups[${i}]`;
    if (!isMap(g)) throw bad(p, 'expected a map');
    exactKeys(g, ['key', 'count', 'aggregates'], p);
    if (!Array.isArray(g.key) || g.key.some((x: unknown) => x !== null && !['string', 'number', 'boolean'].includes(typeof x)))
      throw bad(`${p}.key`, 'expected an array of scalars');
    if (typeof g.count !== 'number') throw bad(`${p}.count`, 'expected a number');
    if (!isMap(g.aggregates)) throw bad(`${p}.aggregates`, 'expected a map');
  });
  if (c.groups !== v.groups.length) throw bad('.counts.groups', 'does not match the number of groups');
  const pr = v.privacy;
  if (!isMap(pr)) throw bad('.privacy', 'expected a map');
  exactKeys(pr, ['minGroupSize', 'dp'], '.privacy');
  if (!isUint(pr.minGroupSize)) throw bad('.privacy.minGroupSize', 'expected an unsigned integer');
  if (pr.dp !== null) {
    const dp = pr.dp;
    if (!isMap(dp)) throw bad('.privacy.dp', 'expected a map or null');
    exactKeys(dp, ['mechanism', 'epsilon', 'budget'], '.privacy.dp');
    if (dp.mechanism !== 'laplace') throw bad('.privacy.dp.mechanism', "expected 'laplace'");
    if (typeof dp.epsilon !== 'number' || !(dp.epsilon > 0)) throw bad('.privacy.dp.epsilon', 'expected a positive number');
    if (dp.budget !== null) {
      const b = dp.budget;
      if (!isMap(b)) throw bad('.privacy.dp.budget', 'expected a map or null');
      exactKeys(b, ['limit', 'spent'], '.privacy.dp.budget');
      if (typeof b.limit !== 'number' || typeof b.spent !== 'number') throw bad('.privacy.dp.budget', 'expected numbers');
    }
  }
  if (typeof v.platform !== 'string' || !(PLATFORMS as readonly string[]).includes(v.platform)) throw bad('.platform', 'expected nitro, sev-snp or simulator');
  if (typeof v.workerVersion !== 'string' || v.workerVersion.length === 0 || v.workerVersion.length > 128) throw bad('.workerVersion', 'expected a version string');
  return v as unknown as ResultDocument;
}

/** Canonical CBOR of a result document. */
export function encodeResult(doc: ResultDocument): Uint8Array {
  validateResult(doc);
  try {
    return encodeCanonical(doc);
  } catch (e) {
    throw bad('', 'holds a value outside the canonical model', e);
  }
}

/** Decode untrusted result bytes: canonical form and schema, or `ERR_RESULT_INVALID`. */
export function decodeResult(bytes: Uint8Array): ResultDocument {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" expected Uint8Array');
  if (bytes.length === 0 || bytes.length > 8 * 1024 * 1024) throw bad('', 'expected 1 byte to 8 MiB');
  return validateResult(decodeCanonical(bytes, 'ERR_RESULT_INVALID', 'result'));
}

/** SHA-384 over the canonical CBOR of a query: how results and audit entries name a query. */
export function queryDigest(query: unknown): Uint8Array {
  return sha384(encodeCanonical(query));
}

/** A JSON view of a result (byte strings as hex) for files and terminals. */
export function resultToJson(doc: ResultDocument): unknown {
  const conv = (v: unknown): unknown => {
    if (v instanceof Uint8Array) return toHex(v);
    if (Array.isArray(v)) return v.map(conv);
    if (v !== null && typeof v === 'object') {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) o[k] = conv(x);
      return o;
    }
    return v;
  };
  return conv(doc);
}
