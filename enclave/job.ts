/**
 * One analytics job inside the enclave: records in (batches, encrypted fields), one canonical result
 * out, over exactly the records the owner sealed.
 *
 * A job is all-or-nothing, and its failures say nothing about the data (privacy.md 4): the first
 * failing batch poisons it silently (keys wiped, later batches read and dropped), and `finish` then
 * throws one constant refusal, `ERR_JOB_REFUSED` with a fixed message, whatever went wrong: a record
 * past the sealed count, a field that does not decrypt, a dataset digest that differs from the seal.
 * So a host learns nothing from where or why a job failed, and nothing from a job that is not exactly
 * the owner's records in the owner's order.
 *
 * Ownership: the `keys` map's byte arrays are handed to the job, which zeroes them on finish/abort.
 */
import { ToolkitError } from '../attestation/errors.js';
import { equalBytes } from '../attestation/bytes.js';
import { DatasetDigest, sha384 } from './protocol/digest.js';
import { IV_LENGTH, PackedFieldWriter, TAG_LENGTH, aadPart, aadPrefix, getPath, recordIdOf, setPath } from './protocol/field.js';
import { validateManifest, type KeyManifest } from './protocol/manifest.js';
import type { EncodedRecords } from './protocol/frame.js';
import { encodeResult, queryDigest, type AuditLink, type LedgerLink, type Platform, type ResultDocument } from './protocol/result.js';
import type { ResolvedRelease } from './protocol/release-policy.js';
import { AnalyticsEngine } from './analytics/engine.js';
import type { Query } from './analytics/query.js';
import { decryptPackedChecked, fieldDecryptError, nodeFieldDecryptor, type FieldDecryptor } from './field-decrypt.js';

export interface JobOptions {
  jobId: string;
  datasetId: string;
  /** The query as received (named in the result) and its verdict under the owner's policy. */
  query: Record<string, unknown>;
  release: ResolvedRelease;
  /** The sealed manifest, its seal already checked under every data key. */
  manifest: unknown;
  /** SHA-384 of the sealed manifest body (seal.ts). */
  sealDigest: Uint8Array;
  /** Data keys (32 bytes) by key reference, already unwrapped. Zeroed by the job when it ends. */
  keys: Map<string, Uint8Array>;
  decryptor?: FieldDecryptor;
  platform: Platform;
  workerVersion: string;
  /** Random bytes for differential-privacy noise (default: node:crypto). */
  randomBytes?: (n: number) => Uint8Array;
  maxGroups?: number;
}

/** The constant refusal of a job once records flow: code and text never depend on the data. */
export const JOB_REFUSED_MESSAGE = 'the job was refused; nothing was released';
export function jobRefused(): ToolkitError {
  return new ToolkitError('ERR_JOB_REFUSED', JOB_REFUSED_MESSAGE, { reason: 'refused' });
}

/** What the worker adds to the result when it attests it. */
export interface ResultLinks {
  ledger: LedgerLink;
  audit: AuditLink;
  /** The dataset's total DP budget and what is spent, after this job's reservation (DP jobs). */
  budget: { limit: number; spent: number } | null;
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

/** A finished computation that passed every check, waiting for the worker's links (audit, ledger). */
export interface JobCompletion {
  build(links: ResultLinks): JobOutput;
}

export type JobState = 'open' | 'failed' | 'finished' | 'aborted';

export interface Job {
  readonly state: JobState;
  readonly count: number;
  /**
   * `encoded`, when given, holds each record's canonical encoding as received (frame.ts
   * `encodedRecordsOf`): the digest hashes those bytes instead of encoding the records again.
   */
  /** Never throws for what the records hold: a failure poisons the job (see the top of this file). */
  addBatch(records: readonly unknown[], encoded?: EncodedRecords): void;
  /** The checked computation, or the constant `ERR_JOB_REFUSED`. */
  finish(expect?: JobExpectation): JobCompletion;
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
 * Non-integer numbers of a result to 15 significant digits: a double carries 15 to 17, and the last
 * ones of a sum or mean are binary noise of the summation (89335.65000000001), not information.
 */
export function roundForRelease(v: unknown): unknown {
  if (typeof v === 'number') return Number.isInteger(v) || !Number.isFinite(v) ? v : Number(v.toPrecision(15));
  if (Array.isArray(v)) return v.map(roundForRelease);
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = roundForRelease(x);
    return o;
  }
  return v;
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
  readonly #sealedDigest: Uint8Array;
  #nextOrder = 0;
  readonly #aadPrefix: Uint8Array;
  /** Kept for tests and debugging inside the enclave; never sent anywhere. */
  #failure: unknown;

  constructor(opts: JobOptions, wipe: () => void) {
    this.#opts = opts;
    this.#wipe = wipe;
    this.#query = opts.release.query;
    this.#manifest = validateManifest(opts.manifest);
    if (this.#manifest.datasetId !== opts.datasetId)
      throw new ToolkitError('ERR_MANIFEST_INVALID', 'the manifest is for another dataset', { reason: 'dataset' });
    for (const [ref, k] of opts.keys) {
      if (!(k instanceof Uint8Array) || k.length !== 32)
        throw new ToolkitError('ERR_FIELD_DECRYPT', `data key "${ref}" is not 32 bytes`, { reason: 'key_length' });
    }
    if (!(opts.sealDigest instanceof Uint8Array) || opts.sealDigest.length !== 48) throw new TypeError('"sealDigest" expected 48 bytes');
    this.#sealedDigest = new Uint8Array(Buffer.from(this.#manifest.digest, 'hex'));
    this.#idSegs = this.#manifest.idField.split('.');
    this.#fields = this.#manifest.fields.map((path) => ({ path, segs: path.split('.'), aadPart: aadPart(path) }));
    this.#aadPrefix = aadPrefix(opts.datasetId);
    this.#digest = new DatasetDigest(opts.datasetId);
    const r = opts.release;
    this.#engine = new AnalyticsEngine(this.#query, {
      minGroupSize: r.minGroupSize,
      dp: r.dp,
      clamps: r.clamps,
      publicDomains: r.publicDomains,
      ...(opts.randomBytes ? { randomBytes: opts.randomBytes } : {}),
      ...(opts.maxGroups !== undefined ? { maxGroups: opts.maxGroups } : {}),
    });
    this.#decryptor = opts.decryptor ?? nodeFieldDecryptor;
  }

  get count(): number {
    return this.#digest.count;
  }

  /** For tests inside the enclave process: why a poisoned job failed. Never leaves the worker. */
  get failureForTests(): unknown {
    return this.#failure;
  }

  #poison(e: unknown): void {
    this.state = 'failed';
    this.#failure = e;
    this.#wipe();
  }

  addBatch(records: readonly unknown[], encoded?: EncodedRecords): void {
    if (!Array.isArray(records)) throw new TypeError('"records" expected an array');
    if (this.state === 'failed') return; // read and dropped: the refusal comes at finish, whatever happened
    if (this.state !== 'open') throw new ToolkitError('ERR_JOB_FAILED', `the job is ${this.state}`, { reason: this.state });
    try {
      // Records past the sealed count are not the owner's: nothing of them is decrypted.
      if (this.count + records.length > this.#manifest.records) throw new ToolkitError('ERR_DATASET_INVALID', 'more records than sealed', { reason: 'count' });
      this.#addBatch(records, encoded);
    } catch (e) {
      this.#poison(e);
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
      // A record sent twice (or any record not in the owner's sequence) changes the digest, and the
      // job is refused at finish; no per-id memory is needed (privacy.md 1).
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

  finish(expect?: JobExpectation): JobCompletion {
    if (this.state === 'failed') {
      this.#wipe();
      throw jobRefused();
    }
    if (this.state !== 'open') throw new ToolkitError('ERR_JOB_FAILED', `the job is ${this.state}`, { reason: this.state });
    try {
      const count = this.count;
      const digest = this.#digest.digest();
      // Exactly the owner's records, in the owner's order, clear fields and ids included.
      let ok = count === this.#manifest.records && equalBytes(digest, this.#sealedDigest);
      if (expect) ok = ok && expect.count === count && expect.datasetDigest instanceof Uint8Array && equalBytes(expect.datasetDigest, digest);
      if (!ok) throw new ToolkitError('ERR_DATASET_INVALID', 'records differ from the seal', { reason: 'seal_mismatch' });
      const out = this.#engine.finish();
      this.state = 'finished';
      this.#wipe();
      const o = this.#opts;
      const m = this.#manifest;
      return {
        build: (links: ResultLinks): JobOutput => {
          // A noised result must say so: its DP parameters need the budget the job was admitted under.
          if (out.privacy.dp && !links.budget) throw new TypeError('a differentially private result needs links.budget');
          const result: ResultDocument = {
            version: 2,
            jobId: o.jobId,
            datasetId: o.datasetId,
            datasetDigest: digest,
            sealDigest: o.sealDigest,
            keyArns: [...new Set(Object.values(m.keys).map((k) => k.keyId))].sort(),
            query: o.query,
            queryDigest: queryDigest(o.query),
            counts: out.counts,
            groups: out.groups.map((g) => ({ ...g, aggregates: roundForRelease(g.aggregates) as Record<string, unknown> })),
            privacy: {
              minGroupSize: out.privacy.minGroupSize,
              dp: out.privacy.dp && links.budget ? { ...out.privacy.dp, budget: links.budget } : null,
            },
            ledger: links.ledger,
            audit: links.audit,
            platform: o.platform,
            workerVersion: o.workerVersion,
          };
          const resultBytes = encodeResult(result);
          return { result, resultBytes, resultDigest: sha384(resultBytes) };
        },
      };
    } catch (e) {
      this.#poison(e);
      throw jobRefused();
    }
  }

  abort(): void {
    if (this.state === 'open') this.state = 'aborted';
    this.#wipe();
  }
}
