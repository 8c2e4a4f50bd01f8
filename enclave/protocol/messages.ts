/**
 * Messages of the host <-> enclave protocol, version 1, and their strict validators. Every frame
 * carries one CBOR map `{t, id, ...}`: `t` the type, `id` the sender's message counter (0, 1, 2, ...
 * per direction, checked with `SequenceChecker`). Validation checks every key, type and length and
 * throws `ERR_PROTOCOL` with `reason` = the offending path; unknown keys are refused.
 */
import { ToolkitError } from '../../attestation/errors.js';
import { validateManifest, type KeyManifest } from './manifest.js';
import { isValidDatasetId } from './manifest.js';

export const PROTOCOL_VERSION = 1;
export const DEFAULT_MAX_FRAME = 16 * 1024 * 1024;
/** No peer may negotiate frames smaller than this: a result with evidence must fit. */
export const MIN_MAX_FRAME = 64 * 1024;
export const MAX_BATCH_RECORDS = 100_000;
export const DIGEST_LENGTH = 48;

export interface HelloMessage { t: 'hello'; id: number; version: number; nonce: Uint8Array; maxFrame?: number }
export interface AttestationMessage { t: 'attestation'; id: number; evidence: Uint8Array; publicKey?: Uint8Array }
export interface JobStartMessage {
  t: 'job_start'; id: number; jobId: string; datasetId: string; query: Record<string, unknown>; manifest: KeyManifest; nonce: Uint8Array;
  /** The dataset's sealed privacy ledger as the worker last returned it (seal.ts); absent the first time. */
  ledger?: Uint8Array;
}
export interface RecordsMessage { t: 'records'; id: number; jobId: string; seq: number; records: Record<string, unknown>[] }
export interface JobEndMessage { t: 'job_end'; id: number; jobId: string; count: number; datasetDigest: Uint8Array }
export interface ResultMessage { t: 'result'; id: number; jobId: string; result: Uint8Array; evidence: Uint8Array; publicKey?: Uint8Array; ledger?: Uint8Array }
/** An attested refusal (result.ts RefusalDocument): the job released nothing. */
export interface RefusalMessage { t: 'refusal'; id: number; jobId: string; refusal: Uint8Array; evidence: Uint8Array; publicKey?: Uint8Array; ledger?: Uint8Array }
export interface ErrorMessage { t: 'error'; id: number; jobId?: string; code: string; message: string }
/**
 * Host -> worker: short-lived AWS credentials of the parent instance's role, with which the worker
 * signs its KMS requests (SigV4). Allowed after hello: before a job_start and during a job (a
 * refresh replaces them). The worker keeps them in memory for this session only, never logs,
 * returns or stores them. `expiration` is ISO 8601 (UTC), as STS and the instance metadata service
 * give it.
 */
export interface CredentialsMessage {
  t: 'credentials'; id: number; accessKeyId: string; secretAccessKey: string; sessionToken?: string; expiration?: string;
}
/** Host -> worker, after hello and between jobs: ask for the worker's status (`enclavekit status`). */
export interface StatusRequestMessage { t: 'status_request'; id: number }
/**
 * Worker -> host: what an operator's health check needs beside the hello attestation. Not attested
 * (the attestation after hello already proves the image); numbers only, nothing of any job.
 */
export interface StatusMessage {
  t: 'status'; id: number;
  workerVersion: string;
  platform: string;
  /** Milliseconds since the worker process started. */
  uptimeMs: number;
  /** Documents (results and refusals) this worker process has attested. */
  jobs: number;
  /** Whether this session holds credentials, and until when (never the credentials themselves). */
  credentials: boolean;
  credentialsExpiration?: string;
}

export type Message =
  | HelloMessage | AttestationMessage | JobStartMessage | RecordsMessage | JobEndMessage | ResultMessage | RefusalMessage | ErrorMessage
  | CredentialsMessage | StatusRequestMessage | StatusMessage;
export type MessageType = Message['t'];
/** What a sender passes in: the counter is assigned by the frame writer. */
export type Outgoing<M extends Message = Message> = M extends Message ? Omit<M, 'id'> & { id?: number } : never;

export const MESSAGE_TYPES: readonly MessageType[] = [
  'hello', 'attestation', 'job_start', 'records', 'job_end', 'result', 'refusal', 'error', 'credentials', 'status_request', 'status',
];

const JOB_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const CODE_RE = /^[A-Z][A-Z0-9_]{0,63}$/;
/** AWS's AccessKeyId: 16 to 128 word characters (STS Credentials data type). */
const ACCESS_KEY_ID_RE = /^\w{16,128}$/;
/** Secrets and session tokens: printable ASCII without spaces (base64 and its relatives). */
const TOKEN_RE = /^[\x21-\x7e]+$/;
/** ISO 8601 in UTC or with an offset, as STS and IMDS write `Expiration`. */
const ISO_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;
export const MAX_SESSION_TOKEN = 16 * 1024;

export function protocolError(reason: string, message: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_PROTOCOL', message, cause === undefined ? { reason } : { reason, cause });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

type Check = (v: unknown, path: string) => void;

const uint: Check = (v, p) => { if (!isUint(v)) throw protocolError(p, `${p}: expected an unsigned integer`); };
const jobId: Check = (v, p) => { if (typeof v !== 'string' || !JOB_ID_RE.test(v)) throw protocolError(p, `${p}: expected a job id`); };
const datasetId: Check = (v, p) => { if (!isValidDatasetId(v)) throw protocolError(p, `${p}: expected a dataset id`); };
const bytes = (min: number, max: number): Check => (v, p) => {
  if (!(v instanceof Uint8Array) || v.length < min || v.length > max)
    throw protocolError(p, `${p}: expected ${min === max ? min : `${min} to ${max}`} bytes`);
};
const text = (min: number, max: number, re?: RegExp): Check => (v, p) => {
  if (typeof v !== 'string' || v.length < min || v.length > max || (re && !re.test(v)))
    throw protocolError(p, `${p}: expected a string of ${min} to ${max} characters${re ? ' in the allowed alphabet' : ''}`);
};
const isoTime: Check = (v, p) => {
  if (typeof v !== 'string' || v.length > 40 || !ISO_TIME_RE.test(v) || !Number.isFinite(Date.parse(v)))
    throw protocolError(p, `${p}: expected an ISO 8601 time`);
};
const bool: Check = (v, p) => { if (typeof v !== 'boolean') throw protocolError(p, `${p}: expected a boolean`); };
const plainObject: Check = (v, p) => { if (!isPlainObject(v)) throw protocolError(p, `${p}: expected a map`); };
const recordList: Check = (v, p) => {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_BATCH_RECORDS)
    throw protocolError(p, `${p}: expected 1 to ${MAX_BATCH_RECORDS} records`);
  for (let i = 0; i < v.length; i++) if (!isPlainObject(v[i])) throw protocolError(`${p}[${i}]`, `${p}[${i}]: expected a map`);
};

/** The checks `validateMessage` applies to a records message, minus the records themselves (encoded by the caller). */
export function checkRecordsHeader(id: number, job: string, seq: number, count: number): void {
  uint(id, 'id');
  jobId(job, 'jobId');
  uint(seq, 'seq');
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_BATCH_RECORDS) throw protocolError('records', `records: expected 1 to ${MAX_BATCH_RECORDS} records`);
}

interface Shape { required: Record<string, Check>; optional?: Record<string, Check> }

const SHAPES: Record<MessageType, Shape> = {
  hello: { required: { version: uint, nonce: bytes(16, 64) }, optional: { maxFrame: uint } },
  // publicKey: the worker's Recipient key, which SEV-SNP evidence binds only as a digest in REPORT_DATA.
  attestation: { required: { evidence: bytes(1, 1024 * 1024) }, optional: { publicKey: bytes(1, 1024) } },
  job_start: { required: { jobId, datasetId, query: plainObject, manifest: plainObject, nonce: bytes(16, 64) }, optional: { ledger: bytes(29, 4096) } },
  records: { required: { jobId, seq: uint, records: recordList } },
  job_end: { required: { jobId, count: uint, datasetDigest: bytes(DIGEST_LENGTH, DIGEST_LENGTH) } },
  result: { required: { jobId, result: bytes(1, 8 * 1024 * 1024), evidence: bytes(1, 1024 * 1024) }, optional: { publicKey: bytes(1, 1024), ledger: bytes(29, 4096) } },
  refusal: { required: { jobId, refusal: bytes(1, 64 * 1024), evidence: bytes(1, 1024 * 1024) }, optional: { publicKey: bytes(1, 1024), ledger: bytes(29, 4096) } },
  error: { required: { code: text(1, 64, CODE_RE), message: text(0, 1024) }, optional: { jobId } },
  // Bounded by AWS's own limits; a check names the key, never the value.
  credentials: {
    required: { accessKeyId: text(16, 128, ACCESS_KEY_ID_RE), secretAccessKey: text(16, 256, TOKEN_RE) },
    optional: { sessionToken: text(16, MAX_SESSION_TOKEN, TOKEN_RE), expiration: isoTime },
  },
  status_request: { required: {} },
  status: {
    required: { workerVersion: text(1, 64), platform: text(1, 16, /^[a-z-]+$/), uptimeMs: uint, jobs: uint, credentials: bool },
    optional: { credentialsExpiration: isoTime },
  },
};

/** Validate a decoded CBOR value as one message. Returns it typed; throws `ERR_PROTOCOL`. */
export function validateMessage(v: unknown): Message {
  if (!isPlainObject(v)) throw protocolError('$', 'message: expected a map');
  const t = v.t;
  if (typeof t !== 'string' || !Object.prototype.hasOwnProperty.call(SHAPES, t))
    throw protocolError('t', 'message: unknown type');
  const shape = SHAPES[t as MessageType];
  uint(v.id, 'id');
  for (const k of Object.keys(v)) {
    if (k === 't' || k === 'id') continue;
    if (!(k in shape.required) && !(shape.optional && k in shape.optional))
      throw protocolError(k, `${t}: unknown key`);
  }
  for (const [k, check] of Object.entries(shape.required)) {
    if (!(k in v)) throw protocolError(k, `${t}: missing ${k}`);
    check(v[k], k);
  }
  if (shape.optional) for (const [k, check] of Object.entries(shape.optional)) if (k in v) check(v[k], k);
  if (t === 'hello' && v.maxFrame !== undefined && (v.maxFrame as number) < MIN_MAX_FRAME)
    throw protocolError('maxFrame', `hello: maxFrame below ${MIN_MAX_FRAME}`);
  if (t === 'job_start') {
    let manifest: KeyManifest;
    try {
      manifest = validateManifest(v.manifest);
    } catch (e) {
      throw protocolError('manifest', `job_start: ${(e as Error).message}`, e);
    }
    if (manifest.datasetId !== v.datasetId) throw protocolError('manifest', 'job_start: manifest is for another dataset');
    v.manifest = manifest;
  }
  return v as unknown as Message;
}

/** The frame size both sides accept: the smaller of the two offers, never below `MIN_MAX_FRAME`. */
export function negotiateMaxFrame(mine: number, theirs: number | undefined): number {
  const n = theirs === undefined ? Math.min(mine, DEFAULT_MAX_FRAME) : Math.min(mine, theirs);
  return Math.max(n, MIN_MAX_FRAME);
}

/**
 * Detects reordering, replays and gaps in a counter that must go 0, 1, 2, ... (message ids per
 * direction, `seq` of record batches per job).
 */
export class SequenceChecker {
  #next: number;
  readonly #label: string;
  constructor(label: string, start = 0) {
    this.#label = label;
    this.#next = start;
  }
  get next(): number {
    return this.#next;
  }
  check(n: number): void {
    if (n !== this.#next) {
      throw protocolError(n < this.#next ? 'replayed' : 'out_of_order', `${this.#label}: expected ${this.#next}, got ${n}`);
    }
    this.#next++;
  }
}
