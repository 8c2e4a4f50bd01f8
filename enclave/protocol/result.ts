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
  mechanism: 'discrete-laplace';
  epsilon: number;
  delta: number;
  /** The partition-selection threshold on noisy counts (0 when every grouped field has a public domain). */
  threshold: number;
  /** The dataset's total budget and what is spent after this job's reservation. */
  budget: { limit: number; spent: number };
}

/** Where this document sits in the worker's audit chain (privacy.md 6). */
export interface AuditLink {
  /** Random per worker process: a restarted worker starts a new chain. */
  instance: Uint8Array;
  /** Documents this worker instance attested before this one. */
  seq: number;
  /** The chain head before this document (48 zero bytes for seq 0). */
  prev: Uint8Array;
}

/** The dataset's privacy ledger after this job was admitted. */
export interface LedgerLink {
  generation: number;
  spent: number;
}

export interface ResultDocument {
  version: 2;
  jobId: string;
  datasetId: string;
  /** The sealed dataset digest (equal to the digest of what the worker received). */
  datasetDigest: Uint8Array;
  /** SHA-384 of the sealed manifest body: names exactly the dataset the owner sealed. */
  sealDigest: Uint8Array;
  /** The owner's KMS key ARNs that released the data keys. */
  keyArns: string[];
  query: Record<string, unknown>;
  queryDigest: Uint8Array;
  counts: {
    records: number;
    /** Records that passed the filter; null under differential privacy or below the minimum group size. */
    matched: number | null;
    groups: number;
    /** Null under differential privacy (the exact number of groups is not released). */
    suppressedGroups: number | null;
  };
  groups: ResultGroup[];
  privacy: { minGroupSize: number; dp: DpParameters | null };
  ledger: LedgerLink;
  audit: AuditLink;
  platform: Platform;
  workerVersion: string;
}

/** An attested refusal: a job that released nothing, and why (a fixed reason once records flowed). */
export interface RefusalDocument {
  version: 2;
  refused: true;
  jobId: string;
  datasetId: string;
  /** Null when the refusal came before the seal was checked. */
  sealDigest: Uint8Array | null;
  queryDigest: Uint8Array;
  code: string;
  reason: string;
  /**
   * What to do about it, for refusals before any record was read (they depend only on the query, the
   * policy, the manifest and KMS); the fixed JOB_REFUSED text once records flowed.
   */
  message: string;
  /** Null when the job was refused before it was admitted to the ledger. */
  ledger: LedgerLink | null;
  audit: AuditLink;
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
const isNonNeg = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

function checkAudit(a: unknown, path: string): void {
  if (!isMap(a)) throw bad(path, 'expected a map');
  exactKeys(a, ['instance', 'seq', 'prev'], path);
  if (!isBytes(a.instance, 16)) throw bad(`${path}.instance`, 'expected 16 bytes');
  if (!isUint(a.seq)) throw bad(`${path}.seq`, 'expected an unsigned integer');
  if (!isBytes(a.prev, 48)) throw bad(`${path}.prev`, 'expected 48 bytes');
}

function checkLedger(l: unknown, path: string): void {
  if (!isMap(l)) throw bad(path, 'expected a map');
  exactKeys(l, ['generation', 'spent'], path);
  if (!isUint(l.generation) || l.generation < 1) throw bad(`${path}.generation`, 'expected a positive integer');
  if (!isNonNeg(l.spent)) throw bad(`${path}.spent`, 'expected a number >= 0');
}

function checkCommon(v: Record<string, unknown>): void {
  if (v.version !== 2) throw bad('.version', 'expected 2');
  if (typeof v.jobId !== 'string' || v.jobId.length === 0 || v.jobId.length > 128) throw bad('.jobId', 'expected a job id');
  if (typeof v.datasetId !== 'string' || v.datasetId.length === 0 || v.datasetId.length > 128) throw bad('.datasetId', 'expected a dataset id');
  if (!isBytes(v.queryDigest, 48)) throw bad('.queryDigest', 'expected 48 bytes');
  checkAudit(v.audit, '.audit');
  if (typeof v.platform !== 'string' || !(PLATFORMS as readonly string[]).includes(v.platform)) throw bad('.platform', 'expected nitro, sev-snp or simulator');
  if (typeof v.workerVersion !== 'string' || v.workerVersion.length === 0 || v.workerVersion.length > 128) throw bad('.workerVersion', 'expected a version string');
}

/** Schema check of a result document (decoded or about to be encoded). */
export function validateResult(v: unknown): ResultDocument {
  if (!isMap(v)) throw bad('', 'expected a map');
  exactKeys(v, ['version', 'jobId', 'datasetId', 'datasetDigest', 'sealDigest', 'keyArns', 'query', 'queryDigest', 'counts', 'groups', 'privacy', 'ledger', 'audit', 'platform', 'workerVersion'], '');
  checkCommon(v);
  if (!isBytes(v.datasetDigest, 48)) throw bad('.datasetDigest', 'expected 48 bytes');
  if (!isBytes(v.sealDigest, 48)) throw bad('.sealDigest', 'expected 48 bytes');
  if (!Array.isArray(v.keyArns) || v.keyArns.length === 0 || v.keyArns.some((k: unknown) => typeof k !== 'string' || k.length === 0 || k.length > 2048))
    throw bad('.keyArns', 'expected a non-empty list of key ARNs');
  if (!isMap(v.query)) throw bad('.query', 'expected a map');
  const c = v.counts;
  if (!isMap(c)) throw bad('.counts', 'expected a map');
  exactKeys(c, ['records', 'matched', 'groups', 'suppressedGroups'], '.counts');
  for (const k of ['records', 'groups']) if (!isUint(c[k])) throw bad(`.counts.${k}`, 'expected an unsigned integer');
  if (c.matched !== null && !isUint(c.matched)) throw bad('.counts.matched', 'expected an unsigned integer or null');
  if (c.suppressedGroups !== null && !isUint(c.suppressedGroups)) throw bad('.counts.suppressedGroups', 'expected an unsigned integer or null');
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
    exactKeys(dp, ['mechanism', 'epsilon', 'delta', 'threshold', 'budget'], '.privacy.dp');
    if (dp.mechanism !== 'discrete-laplace') throw bad('.privacy.dp.mechanism', "expected 'discrete-laplace'");
    if (typeof dp.epsilon !== 'number' || !(dp.epsilon > 0)) throw bad('.privacy.dp.epsilon', 'expected a positive number');
    if (typeof dp.delta !== 'number' || !(dp.delta > 0)) throw bad('.privacy.dp.delta', 'expected a positive number');
    if (!isNonNeg(dp.threshold)) throw bad('.privacy.dp.threshold', 'expected a number >= 0');
    const b = dp.budget;
    if (!isMap(b)) throw bad('.privacy.dp.budget', 'expected a map');
    exactKeys(b, ['limit', 'spent'], '.privacy.dp.budget');
    if (!isNonNeg(b.limit) || !isNonNeg(b.spent)) throw bad('.privacy.dp.budget', 'expected numbers >= 0');
  }
  checkLedger(v.ledger, '.ledger');
  return v as unknown as ResultDocument;
}

/** Schema check of a refusal document. */
export function validateRefusal(v: unknown): RefusalDocument {
  if (!isMap(v)) throw bad('', 'expected a map');
  exactKeys(v, ['version', 'refused', 'jobId', 'datasetId', 'sealDigest', 'queryDigest', 'code', 'reason', 'message', 'ledger', 'audit', 'platform', 'workerVersion'], '');
  checkCommon(v);
  if (v.refused !== true) throw bad('.refused', 'expected true');
  if (v.sealDigest !== null && !isBytes(v.sealDigest, 48)) throw bad('.sealDigest', 'expected 48 bytes or null');
  if (typeof v.code !== 'string' || !/^ERR_[A-Z0-9_]{1,60}$/.test(v.code)) throw bad('.code', 'expected an error code');
  if (typeof v.reason !== 'string' || v.reason.length > 64) throw bad('.reason', 'expected a short reason');
  if (typeof v.message !== 'string' || v.message.length > 1024) throw bad('.message', 'expected a message of at most 1024 characters');
  if (v.ledger !== null) checkLedger(v.ledger, '.ledger');
  return v as unknown as RefusalDocument;
}

/** Canonical CBOR of a refusal document. */
export function encodeRefusal(doc: RefusalDocument): Uint8Array {
  validateRefusal(doc);
  return encodeCanonical(doc);
}

/** Decode untrusted refusal bytes: canonical form and schema, or `ERR_RESULT_INVALID`. */
export function decodeRefusal(bytes: Uint8Array): RefusalDocument {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" expected Uint8Array');
  if (bytes.length === 0 || bytes.length > 64 * 1024) throw bad('', 'expected 1 byte to 64 KiB');
  return validateRefusal(decodeCanonical(bytes, 'ERR_RESULT_INVALID', 'refusal'));
}

/** Either kind of attested document, told apart by `refused`. */
export function decodeAttestedDocument(bytes: Uint8Array): { kind: 'result'; doc: ResultDocument } | { kind: 'refusal'; doc: RefusalDocument } {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" expected Uint8Array');
  if (bytes.length === 0 || bytes.length > 8 * 1024 * 1024) throw bad('', 'expected 1 byte to 8 MiB');
  const v = decodeCanonical(bytes, 'ERR_RESULT_INVALID', 'document');
  if (isMap(v) && v.refused === true) return { kind: 'refusal', doc: validateRefusal(v) };
  return { kind: 'result', doc: validateResult(v) };
}

export const AUDIT_CHAIN_GENESIS = new Uint8Array(48);

/** The worker's audit chain: head' = SHA-384("enclavekit-audit-v1" || head || SHA-384(document)). */
export function nextAuditHead(prev: Uint8Array, documentBytes: Uint8Array): Uint8Array {
  const label = new TextEncoder().encode('enclavekit-audit-v1');
  const d = sha384(documentBytes);
  const buf = new Uint8Array(label.length + prev.length + d.length);
  buf.set(label, 0);
  buf.set(prev, label.length);
  buf.set(d, label.length + prev.length);
  return sha384(buf);
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
