/**
 * One analytics job inside the enclave: records in (batches, encrypted fields), one canonical result
 * out. A job is all-or-nothing: the first failing batch poisons it, every later call rethrows that
 * failure, and no partial result can be produced. Data keys are wiped when the job ends either way.
 *
 * Ownership: the `keys` map's byte arrays are handed to the job, which zeroes them on finish/abort.
 */
import { ToolkitError } from '../attestation/errors.js';
import { equalBytes } from '../attestation/bytes.js';
import { DatasetDigest, sha384 } from './protocol/digest.js';
import { IV_LENGTH, PackedFieldWriter, TAG_LENGTH, aadPart, aadPrefix, getPath, recordIdOf, setPath } from './protocol/field.js';
import { validateManifest, type KeyManifest } from './protocol/manifest.js';
import type { EncodedRecords } from './protocol/frame.js';
import { encodeResult, queryDigest, type Platform, type ResultDocument } from './protocol/result.js';
import { AnalyticsEngine } from './analytics/engine.js';
import { validateQuery, type Query } from './analytics/query.js';
import type { PrivacyBudget, RandomSource } from './analytics/privacy.js';
import { decryptPackedChecked, fieldDecryptError, nodeFieldDecryptor, type FieldDecryptor } from './field-decrypt.js';

export interface JobOptions {
  jobId: string;
  datasetId: string;
  /** The untrusted query as received; validated here (`ERR_QUERY_INVALID`). */
  query: unknown;
  /** The key manifest as received; validated here (`ERR_MANIFEST_INVALID`). */
  manifest: unknown;
  /** Data keys (32 bytes) by key reference, already unwrapped. Zeroed by the job when it ends. */
  keys: Map<string, Uint8Array>;
  decryptor?: FieldDecryptor;
  platform: Platform;
  workerVersion: string;
  /** Uniform [0,1) source for differential-privacy noise (default: node:crypto). */
  random?: RandomSource;
  /** The dataset's epsilon budget; a DP query is refused up front if it does not fit, charged at finish. */
  budget?: PrivacyBudget;
  /** Operator floor for the minimum group size (default 10). */
  minGroupSizeFloor?: number;
  maxGroups?: number;
}

export interface JobExpectation {
  /** What the host says it sent (job_end): checked before any result exists. */
  count: number;
  datasetDigest: Uint8Array;
}

export interface JobOutput {
  result: ResultDocument;
  resultBytes: Uint8Array;
  /** SHA-384 of resultBytes: the attestation's user_data. */
  resultDigest: Uint8Array;
}

export type JobState = 'open' | 'failed' | 'finished' | 'aborted';

export interface Job {
  readonly state: JobState;
  readonly count: number;
  /**
   * `encoded`, when given, holds each record's canonical encoding as received (frame.ts
   * `encodedRecordsOf`): the digest hashes those bytes instead of encoding the records again.
   */
  addBatch(records: readonly unknown[], encoded?: EncodedRecords): void;
  finish(expect?: JobExpectation): JobOutput;
  abort(): void;
}

interface FieldSpec {
  path: string;
  segs: string[];
  /** This path's length-prefixed part of the additional data. */
  aadPart: Uint8Array;
}

/** The fields of one batch under one key: packed-table rows, and which record and field each row is. */
interface KeySlot {
  count: number;
  /** When the batch first named this key (decryption order). */
  order: number;
  table: Uint32Array;
  recs: Uint32Array;
  fields: Uint16Array;
}

function growSlot(s: KeySlot): void {
  const n = s.recs.length * 2;
  const t = new Uint32Array(n * 8);
  t.set(s.table);
  const r = new Uint32Array(n);
  r.set(s.recs);
  const f = new Uint16Array(n);
  f.set(s.fields);
  s.table = t;
  s.recs = r;
  s.fields = f;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 text of `b[start:end]`, refusing invalid UTF-8; ASCII (most plaintexts) without a view. */
function decodeUtf8(b: Buffer, start: number, end: number): string {
  let i = start;
  while (i < end && b[i]! < 0x80) i++;
  if (i === end) return b.toString('latin1', start, end);
  return utf8.decode(b.subarray(start, end));
}

/**
 * The record ids of one job, as 64-bit keyed fingerprints in an open-addressing table (linear
 * probing, doubled at load 0.5): 16 to 32 bytes per record instead of a Set that keeps every id
 * string alive (the worker's peak RSS at 1M records fell by ~25-30 MB; its budget is 256 MB).
 *
 * Equal ids always give equal fingerprints, so a repeated record is refused deterministically; a
 * fingerprint collision can only refuse a job falsely, never let a duplicate through. For n distinct
 * ids that happens with probability about n^2 / 2^65 (1M records: ~3e-8). The hash is keyed per job
 * with random bytes so that no fixed set of ids collides in every job. It is a fast mixing hash, not
 * a cryptographic PRF: someone who crafts ids against it could at worst cause a false refusal, which
 * the host can cause anyway (by sending a record twice); it never weakens the duplicate check.
 */
export class RecordIdSet {
  #hi: Uint32Array;
  #lo: Uint32Array;
  #mask: number;
  #size = 0;
  readonly #k1: number;
  readonly #k2: number;

  /** `seed`: two 32-bit key words; random per set unless a test pins them. */
  constructor(seed?: readonly [number, number], capacity = 1024) {
    let k: readonly [number, number];
    if (seed) k = seed;
    else {
      const r = crypto.getRandomValues(new Uint32Array(2));
      k = [r[0]!, r[1]!];
    }
    this.#k1 = k[0] >>> 0;
    this.#k2 = k[1] >>> 0;
    let cap = 16;
    while (cap < capacity) cap *= 2;
    this.#hi = new Uint32Array(cap);
    this.#lo = new Uint32Array(cap);
    this.#mask = cap - 1;
  }

  get size(): number {
    return this.#size;
  }

  /** Add `id`; false when an id with the same fingerprint was already there. */
  add(id: string): boolean {
    // Two independently keyed 32-bit lanes over the UTF-16 code units (distinct strings have distinct
    // code-unit sequences; UTF-8 would merge lone surrogates), each step a bijection of the lane.
    let a = this.#k1;
    let b = this.#k2;
    for (let i = 0; i < id.length; i++) {
      const c = id.charCodeAt(i);
      a = Math.imul(a ^ c, 0x9e3779b1);
      a = (a << 15) | (a >>> 17);
      b = Math.imul(b ^ c, 0x85ebca77);
      b = (b << 13) | (b >>> 19);
    }
    a = fmix32(a ^ id.length ^ this.#k2);
    b = fmix32(b ^ id.length ^ this.#k1);
    a = (a + b) | 0;
    b = fmix32((b ^ a) + 0x27d4eb2f);
    let hi = a >>> 0;
    const lo = b >>> 0;
    // (0, 0) marks an empty slot; folding it into (0, 1) adds one more possible (false-refusal) collision.
    if (hi === 0 && lo === 0) hi = 1;
    const hs = this.#hi;
    const ls = this.#lo;
    const mask = this.#mask;
    let j = (lo ^ (hi >>> 7)) & mask;
    for (;;) {
      const h = hs[j]!;
      const l = ls[j]!;
      if (h === 0 && l === 0) break;
      if (h === hi && l === lo) return false;
      j = (j + 1) & mask;
    }
    hs[j] = hi;
    ls[j] = lo;
    this.#size++;
    if (this.#size * 2 > hs.length) this.#grow();
    return true;
  }

  #grow(): void {
    const oh = this.#hi;
    const ol = this.#lo;
    const cap = oh.length * 2;
    const hs = new Uint32Array(cap);
    const ls = new Uint32Array(cap);
    const mask = cap - 1;
    for (let i = 0; i < oh.length; i++) {
      const hi = oh[i]!;
      const lo = ol[i]!;
      if (hi === 0 && lo === 0) continue;
      let j = (lo ^ (hi >>> 7)) & mask;
      while (hs[j] !== 0 || ls[j] !== 0) j = (j + 1) & mask;
      hs[j] = hi;
      ls[j] = lo;
    }
    this.#hi = hs;
    this.#lo = ls;
    this.#mask = mask;
  }
}

/** A 32-bit finaliser: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

export function createJob(opts: JobOptions): Job {
  const keys = opts.keys;
  const wipeKeys = (): void => {
    for (const k of keys.values()) k.fill(0);
    keys.clear();
  };
  try {
    return new JobImpl(opts, wipeKeys);
  } catch (e) {
    wipeKeys();
    throw e;
  }
}

class JobImpl implements Job {
  state: JobState = 'open';
  readonly #opts: JobOptions;
  readonly #wipe: () => void;
  readonly #query: Query;
  readonly #manifest: KeyManifest;
  readonly #idSegs: string[];
  readonly #fields: FieldSpec[];
  readonly #digest: DatasetDigest;
  readonly #engine: AnalyticsEngine;
  readonly #decryptor: FieldDecryptor;
  readonly #packed = new PackedFieldWriter();
  readonly #slots = new Map<string, KeySlot>();
  /** Fingerprints of the record ids seen in this job (see #addBatch). */
  readonly #seenIds = new RecordIdSet();
  #nextOrder = 0;
  readonly #aadPrefix: Uint8Array;
  #failure: ToolkitError | undefined;

  constructor(opts: JobOptions, wipe: () => void) {
    this.#opts = opts;
    this.#wipe = wipe;
    this.#query = validateQuery(opts.query);
    this.#manifest = validateManifest(opts.manifest);
    if (this.#manifest.datasetId !== opts.datasetId)
      throw new ToolkitError('ERR_MANIFEST_INVALID', 'the manifest is for another dataset', { reason: 'dataset' });
    for (const [ref, k] of opts.keys) {
      if (!(k instanceof Uint8Array) || k.length !== 32)
        throw new ToolkitError('ERR_FIELD_DECRYPT', `data key "${ref}" is not 32 bytes`, { reason: 'key_length' });
    }
    const dp = this.#query.privacy.dp;
    if (dp && opts.budget && opts.budget.remaining(opts.datasetId) + 1e-9 < dp.epsilon) {
      throw new ToolkitError('ERR_PRIVACY_BUDGET', `dataset "${opts.datasetId}": epsilon ${dp.epsilon} exceeds the remaining budget ${opts.budget.remaining(opts.datasetId)}`, { reason: 'exhausted' });
    }
    this.#idSegs = this.#manifest.idField.split('.');
    this.#fields = this.#manifest.fields.map((path) => ({ path, segs: path.split('.'), aadPart: aadPart(path) }));
    this.#aadPrefix = aadPrefix(opts.datasetId);
    this.#digest = new DatasetDigest(opts.datasetId);
    const engineOpts: ConstructorParameters<typeof AnalyticsEngine>[1] = {};
    if (opts.random) engineOpts.random = opts.random;
    if (opts.minGroupSizeFloor !== undefined) engineOpts.minGroupSizeFloor = opts.minGroupSizeFloor;
    if (opts.maxGroups !== undefined) engineOpts.maxGroups = opts.maxGroups;
    this.#engine = new AnalyticsEngine(this.#query, engineOpts);
    this.#decryptor = opts.decryptor ?? nodeFieldDecryptor;
  }

  get count(): number {
    return this.#digest.count;
  }

  #ensureOpen(): void {
    if (this.state === 'failed') throw new ToolkitError('ERR_JOB_FAILED', 'the job has failed', { reason: 'poisoned', cause: this.#failure });
    if (this.state !== 'open') throw new ToolkitError('ERR_JOB_FAILED', `the job is ${this.state}`, { reason: this.state });
  }

  #fail(e: unknown): never {
    const err = e instanceof ToolkitError ? e : new ToolkitError('ERR_JOB_FAILED', 'internal error', { reason: 'internal', cause: e });
    this.state = 'failed';
    this.#failure = err;
    this.#wipe();
    throw err;
  }

  addBatch(records: readonly unknown[], encoded?: EncodedRecords): void {
    this.#ensureOpen();
    try {
      this.#addBatch(records, encoded);
    } catch (e) {
      this.#fail(e);
    }
  }

  #addBatch(records: readonly unknown[], encoded: EncodedRecords | undefined): void {
    if (!Array.isArray(records)) throw new TypeError('"records" expected an array');
    const enc = encoded !== undefined && encoded.offsets.length === records.length + 1 ? encoded : undefined;
    // Every field of the batch is parsed into one buffer (IV, ciphertext||tag, additional data) and
    // indexed per key, so the decryptor runs once per key over packed fields: no per-field objects.
    const w = this.#packed;
    w.reset();
    const slots = this.#slots;
    for (const slot of slots.values()) slot.count = 0;
    const fields = this.#fields;
    const recordIds = new Array<string>(records.length);
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      if (!isPlainObject(r)) throw new ToolkitError('ERR_DATASET_INVALID', `record ${this.count} is not an object`, { reason: 'record' });
      // Hash the record as it arrived (fields still encrypted), the same bytes the host hashed.
      if (enc) this.#digest.addEncoded(enc.bytes, enc.offsets[i]!, enc.offsets[i + 1]!);
      else this.#digest.add(r);
      const recordId = recordIdOf(getPath(r, this.#idSegs));
      if (recordId === undefined)
        throw new ToolkitError('ERR_DATASET_INVALID', `record ${this.count - 1} has no usable id field "${this.#manifest.idField}"`, { reason: 'record_id' });
      // One record per id per job: the host could otherwise send one genuine record k times, lift it
      // past minGroupSize and have its decrypted fields released as a group key (or its exact values).
      if (!this.#seenIds.add(recordId))
        throw new ToolkitError('ERR_DATASET_INVALID', `record ${this.count - 1} repeats the id of an earlier record`, { reason: 'duplicate_record_id' });
      recordIds[i] = recordId;
      for (let fi = 0; fi < fields.length; fi++) {
        const f = fields[fi]!;
        const v = getPath(r, f.segs);
        if (v === undefined || v === null) continue;
        try {
          w.parse(v);
        } catch (e) {
          const t = e as ToolkitError;
          throw new ToolkitError('ERR_FIELD_FORMAT', `field "${f.path}" of record "${recordId}": ${t.message}`, t.reason === undefined ? {} : { reason: t.reason });
        }
        const keyRef = w.keyRef;
        let slot = slots.get(keyRef);
        if (slot === undefined) {
          if (!this.#opts.keys.has(keyRef)) {
            throw new ToolkitError('ERR_FIELD_DECRYPT', `field "${f.path}" of record "${recordId}" names key "${keyRef}", which this job does not have`, { reason: 'no_key' });
          }
          // Bounded: only key references the job holds get a slot.
          slot = { count: 0, order: 0, table: new Uint32Array(8 * 1024), recs: new Uint32Array(1024), fields: new Uint16Array(1024) };
          slots.set(keyRef, slot);
        }
        if (slot.count === 0) slot.order = this.#nextOrder++;
        const ivOff = w.ivOff;
        const bodyOff = w.bodyOff;
        const ctLen = w.bodyLen - TAG_LENGTH;
        const aadOff = w.aad(this.#aadPrefix, recordId, f.aadPart, keyRef);
        const k = slot.count;
        if (k === slot.recs.length) growSlot(slot);
        const t = slot.table;
        const b = k * 8;
        t[b] = ivOff;
        t[b + 1] = IV_LENGTH;
        t[b + 2] = bodyOff;
        t[b + 3] = ctLen;
        t[b + 4] = bodyOff + ctLen;
        t[b + 5] = TAG_LENGTH;
        t[b + 6] = aadOff;
        t[b + 7] = w.pos - aadOff;
        slot.recs[k] = i;
        slot.fields[k] = fi;
        slot.count = k + 1;
      }
    }
    // Keys in the order the batch first named them, as before.
    const active = [...slots].filter(([, s]) => s.count > 0).sort((a, b) => a[1].order - b[1].order);
    this.#nextOrder = 0;
    const input = new Uint8Array(w.buf.buffer, w.buf.byteOffset, w.pos);
    for (const [ref, slot] of active) {
      const key = this.#opts.keys.get(ref)!;
      let total = 0;
      for (let k = 0; k < slot.count; k++) total += slot.table[k * 8 + 3]!;
      const res = decryptPackedChecked(this.#decryptor, key, { input, table: slot.table.subarray(0, slot.count * 8), count: slot.count, totalLength: total });
      try {
        const pt = Buffer.from(res.plaintext.buffer, res.plaintext.byteOffset, res.plaintext.byteLength);
        const off = res.offsets;
        for (let k = 0; k < slot.count; k++) {
          const ri = slot.recs[k]!;
          const f = fields[slot.fields[k]!]!;
          if (res.ok[k] !== 1) throw fieldDecryptError(recordIds[ri]!, f.path);
          let value: unknown;
          try {
            value = JSON.parse(decodeUtf8(pt, off[k]!, off[k + 1]!));
          } catch {
            throw new ToolkitError('ERR_FIELD_DECRYPT', `field "${f.path}" of record "${recordIds[ri]!}" does not hold a JSON value`, { reason: 'plaintext' });
          }
          setPath(records[ri] as Record<string, unknown>, f.segs, value);
        }
      } finally {
        // Plaintext bytes are ours to wipe; the parsed JS strings are not (see README, Security).
        res.plaintext.fill(0);
      }
    }
    for (let i = 0; i < records.length; i++) this.#engine.add(records[i] as Record<string, unknown>);
  }

  finish(expect?: JobExpectation): JobOutput {
    this.#ensureOpen();
    try {
      const count = this.count;
      const digest = this.#digest.digest();
      if (expect) {
        if (expect.count !== count)
          throw new ToolkitError('ERR_JOB_FAILED', `the host announced ${expect.count} records, the job received ${count}`, { reason: 'count_mismatch' });
        if (!(expect.datasetDigest instanceof Uint8Array) || !equalBytes(expect.datasetDigest, digest))
          throw new ToolkitError('ERR_JOB_FAILED', 'the host\'s dataset digest differs from the records received', { reason: 'digest_mismatch' });
      }
      const out = this.#engine.finish();
      const dp = this.#query.privacy.dp;
      const budget = dp && this.#opts.budget ? this.#opts.budget.charge(this.#opts.datasetId, dp.epsilon) : null;
      const result: ResultDocument = {
        version: 1,
        jobId: this.#opts.jobId,
        datasetId: this.#opts.datasetId,
        datasetDigest: digest,
        query: this.#opts.query as Record<string, unknown>,
        queryDigest: queryDigest(this.#opts.query),
        counts: out.counts,
        groups: out.groups,
        privacy: { minGroupSize: out.privacy.minGroupSize, dp: out.privacy.dp ? { ...out.privacy.dp, budget } : null },
        platform: this.#opts.platform,
        workerVersion: this.#opts.workerVersion,
      };
      const resultBytes = encodeResult(result);
      this.state = 'finished';
      this.#wipe();
      return { result, resultBytes, resultDigest: sha384(resultBytes) };
    } catch (e) {
      return this.#fail(e);
    }
  }

  abort(): void {
    if (this.state === 'open') this.state = 'aborted';
    this.#wipe();
  }
}
