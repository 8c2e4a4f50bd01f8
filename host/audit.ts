/**
 * The audit log, version 2 (privacy.md 6): append-only JSON lines, one per job, each carrying the
 * worker's attested document for that job and the evidence that signs it.
 *
 * Two chains run through the log:
 *
 * - the host's: `entry.hash = hex(SHA-384(canonical CBOR of the entry without "hash"))`, `entry.prev`
 *   = the previous entry's hash (96 zeros first), `seq` counting from 0. It has no key: whoever holds
 *   the file can recompute it. It catches accidents and careless edits, not a hostile host.
 * - the worker's: every result and refusal document carries `audit: { instance, seq, prev }`, the
 *   position of that document in the chain of attested documents of one worker process
 *   (`nextAuditHead` in enclave/protocol/result.ts). The worker signs it, so the host cannot change a
 *   document, drop one from the middle or reorder them without the evidence or the next link failing.
 *
 * `verifyAuditLog` checks the host chain, that each entry says what its document says, the evidence
 * (when given the expected image), every worker instance's chain from seq 0 with no gap, the privacy
 * ledger generations (no rollback), and that documents the verifier holds from elsewhere (`later`,
 * e.g. result files) are in the log. It reports the first failure as `{ line, reason, detail }`.
 *
 * Each append is one write() followed by fsync. One writer per file.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { ToolkitError } from '../attestation/errors.js';
import { equalBytes, toHex } from '../attestation/bytes.js';
import {
  AUDIT_CHAIN_GENESIS,
  decodeAttestedDocument,
  encodeCanonical,
  nextAuditHead,
  sha384,
  type RefusalDocument,
  type ResultDocument,
} from '../enclave/protocol/index.js';
import type { RunOutcome } from './run.js';
import { verifyWorkerEvidence, type Expectations, type VerifiedEvidence } from './verify-result.js';

export const AUDIT_VERSION = 2;
export const AUDIT_GENESIS = '0'.repeat(96);

/** Bounds on one entry. A line holds at most one document and its evidence, base64. */
const MAX_DOCUMENT = 8 * 1024 * 1024;
const MAX_EVIDENCE = 1024 * 1024;
const MAX_PUBLIC_KEY = 1024;
const MAX_REASON = 1000;
const MAX_KEY_IDS = 64;
const b64Len = (n: number): number => 4 * Math.ceil(n / 3);
/** Longest line accepted: the document and evidence base64 plus 64 KiB for everything else. */
export const AUDIT_MAX_LINE = b64Len(MAX_DOCUMENT) + b64Len(MAX_EVIDENCE) + b64Len(MAX_PUBLIC_KEY) + 64 * 1024;

export type AuditOutcome = 'released' | 'refused' | 'failed';

/** What a caller records about one job (`auditRecordFromOutcome` builds it from a RunOutcome). */
export interface AuditRecord {
  jobId: string;
  /** ISO 8601; defaults to now. The entry's evidence is re-verified at this time. */
  time?: string;
  datasetId: string;
  /** hex SHA-384 of the sealed manifest body the job ran on, or null when unknown. */
  sealDigest: string | null;
  /** hex SHA-384 */
  datasetDigest: string;
  /** hex SHA-384 */
  queryDigest: string;
  keyIds: string[];
  platform: string;
  /** Measurement name -> hex value (PCR0..., MEASUREMENT), from the verified evidence. */
  measurements: Record<string, string>;
  /** released: a verified result; refused: a verified attested refusal; failed: no attested document. */
  outcome: AuditOutcome;
  /** Null when released; the refusal's code and reason, or the host's error code and message. */
  code: string | null;
  reason: string | null;
  /** The result or refusal document (canonical CBOR) as the worker signed it; null when failed. */
  document: Uint8Array | null;
  /** The evidence over `document` (user_data = SHA-384(document)); null when failed. */
  evidence: Uint8Array | null;
  /** The worker's public key (needed to re-verify SEV-SNP evidence), or null if unknown. */
  publicKey: Uint8Array | null;
  /** The job nonce the evidence carries, or null if the job never started. */
  nonce: Uint8Array | null;
}

/** One line of the log. Byte strings are base64 (document, evidence, publicKey) or hex (nonce). */
export interface AuditEntry {
  v: 2;
  seq: number;
  time: string;
  jobId: string;
  datasetId: string;
  sealDigest: string | null;
  datasetDigest: string;
  queryDigest: string;
  keyIds: string[];
  platform: string;
  measurements: Record<string, string>;
  outcome: AuditOutcome;
  code: string | null;
  reason: string | null;
  document: string | null;
  evidence: string | null;
  publicKey: string | null;
  nonce: string | null;
  prev: string;
  hash: string;
}

/**
 * Why a log does not verify (stable strings):
 * - `json`, `version` (not a v2 entry: v1 logs are refused), `not_object`, `unknown_key:K`,
 *   `missing:K` and the field checks `seq`, `time`, `type`, `digest`, `keyIds`, `measurements`,
 *   `outcome`, `code`, `reason`, `base64`, `nonce`, `hash_format`: the entry's own shape;
 * - `seq`, `prev`, `hash`: the host chain; `truncated` (last line without newline), `line_too_long`;
 * - `document_invalid`: the document does not decode; `document_mismatch`: the entry's fields do not
 *   say what its document (or its verified evidence) says;
 * - `evidence`: the evidence does not verify against the expectations at the entry's time, for this
 *   document, nonce and key;
 * - `dropped`: a gap in a worker instance's chain, or its first entry in the log is not its seq 0;
 *   `reordered`: a seq lower than the next one expected; `worker_chain`: the document's `prev` is not
 *   the head after the previous document of its instance (an edited document), or one instance with
 *   two keys;
 * - `rollback`: one ledger generation twice for a dataset, or a generation not above one already
 *   used by another worker instance;
 * - `cut_off`: a document given in `later` is not in the log and the log has nothing at its place;
 *   `later_mismatch`: the log holds a different document at that place.
 */
export type AuditBreakReason = string;

export interface AuditVerifyResult {
  ok: boolean;
  /** Entries that passed every check before the first broken one (all of them when ok). */
  entries: number;
  /** 'evidence': every document's evidence was re-verified; 'chain-only': it was not. */
  mode: 'evidence' | 'chain-only';
  checked: {
    /** Entries with an attested document (released or refused). */
    documents: number;
    /** Documents whose evidence verified (0 in chain-only mode). */
    evidence: number;
    /** Worker instances (one audit chain each). */
    chains: number;
    /** `later` documents found in the log. */
    later: number;
  };
  /** 1-based; `line` is one past the last line for checks about the end of the log. */
  firstBroken?: { line: number; reason: AuditBreakReason; detail: string };
}

export type AuditExpectations = Omit<Expectations, 'now'>;

export interface AuditVerifyOptions {
  /**
   * The images whose evidence to accept (one set per image; an entry verifies if any accepts it).
   * Without it, nothing about the evidence is checked (mode 'chain-only'): any host can forge such a
   * log, so a verdict that matters needs expectations.
   */
  expect?: AuditExpectations | readonly AuditExpectations[];
  /** Attested documents held elsewhere (e.g. from result files): each must be in the log. */
  later?: readonly { document: Uint8Array; label?: string }[];
}

function entryHash(e: Omit<AuditEntry, 'hash'>): string {
  return createHash('sha384').update(encodeCanonical(e)).digest('hex');
}

const HEX96 = /^[0-9a-f]{96}$/;
const HEX_EVEN = /^(?:[0-9a-f]{2})*$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const CODE = /^[A-Z][A-Z0-9_]{0,63}$/;
const MEASUREMENT_KEY = /^(?:PCR(?:[0-9]|[12][0-9]|3[01])|MEASUREMENT)$/;
const KEYS = [
  'v', 'seq', 'time', 'jobId', 'datasetId', 'sealDigest', 'datasetDigest', 'queryDigest', 'keyIds', 'platform', 'measurements',
  'outcome', 'code', 'reason', 'document', 'evidence', 'publicKey', 'nonce', 'prev', 'hash',
] as const;

const isStr = (v: unknown, max: number, min = 1): v is string => typeof v === 'string' && v.length >= min && v.length <= max;
const isHex96 = (v: unknown): v is string => typeof v === 'string' && HEX96.test(v);

/** Canonical base64 of at most `maxBytes` bytes (null allowed when `nullable`). */
function isB64(v: unknown, maxBytes: number): boolean {
  if (typeof v !== 'string' || v.length === 0 || v.length > b64Len(maxBytes) || v.length % 4 !== 0) return false;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v)) return false;
  return Buffer.from(v, 'base64').toString('base64') === v;
}

/** Schema of one entry; returns a reason or undefined. */
function schemaProblem(e: unknown): string | undefined {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) return 'not_object';
  const o = e as Record<string, unknown>;
  // A v1 entry (or any other version) is named as such before its keys are compared.
  if (o.v !== AUDIT_VERSION) return 'version';
  for (const k of Object.keys(o)) if (!(KEYS as readonly string[]).includes(k)) return `unknown_key:${k}`;
  for (const k of KEYS) if (!(k in o)) return `missing:${k}`;
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 0) return 'seq';
  if (typeof o.time !== 'string' || !ISO_TIME.test(o.time) || Number.isNaN(Date.parse(o.time))) return 'time';
  if (!isStr(o.jobId, 128) || !isStr(o.datasetId, 128) || !isStr(o.platform, 32)) return 'type';
  if (!isHex96(o.datasetDigest) || !isHex96(o.queryDigest) || (o.sealDigest !== null && !isHex96(o.sealDigest))) return 'digest';
  if (!Array.isArray(o.keyIds) || o.keyIds.length > MAX_KEY_IDS || o.keyIds.some((k) => !isStr(k, 2048))) return 'keyIds';
  const m = o.measurements;
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return 'measurements';
  for (const [k, x] of Object.entries(m)) if (!MEASUREMENT_KEY.test(k) || typeof x !== 'string' || x.length === 0 || x.length > 128 || !HEX_EVEN.test(x)) return 'measurements';
  if (o.outcome !== 'released' && o.outcome !== 'refused' && o.outcome !== 'failed') return 'outcome';
  if (o.code !== null && !(typeof o.code === 'string' && CODE.test(o.code))) return 'code';
  if (o.reason !== null && !isStr(o.reason, MAX_REASON, 0)) return 'reason';
  if (o.document !== null && !isB64(o.document, MAX_DOCUMENT)) return 'base64';
  if (o.evidence !== null && !isB64(o.evidence, MAX_EVIDENCE)) return 'base64';
  if (o.publicKey !== null && !isB64(o.publicKey, MAX_PUBLIC_KEY)) return 'base64';
  if (o.nonce !== null && !(typeof o.nonce === 'string' && o.nonce.length >= 2 && o.nonce.length <= 128 && HEX_EVEN.test(o.nonce))) return 'nonce';
  // What each outcome carries.
  const attested = o.outcome !== 'failed';
  if (attested !== (o.document !== null) || attested !== (o.evidence !== null)) return 'outcome';
  if (attested && o.nonce === null) return 'nonce';
  if (o.outcome === 'released' ? o.code !== null || o.reason !== null : o.code === null || o.reason === null) return 'outcome';
  if (!isHex96(o.prev) || !isHex96(o.hash)) return 'hash_format';
  return undefined;
}

const VERSION_DETAIL = 'not a version 2 entry: a log written before attested audit (v1) carries no evidence and is not verified; start a new log';

function schemaDetail(problem: string): string {
  return problem === 'version' ? VERSION_DETAIL : `malformed entry (${problem})`;
}

type Decoded = ReturnType<typeof decodeAttestedDocument>;

/**
 * Where an entry's own fields disagree with its attested document: a list of "field: entry X,
 * document Y" (empty when they agree).
 */
function documentMismatches(
  e: Pick<AuditEntry, 'jobId' | 'datasetId' | 'outcome' | 'sealDigest' | 'datasetDigest' | 'queryDigest' | 'keyIds' | 'platform' | 'code' | 'reason'>,
  d: Decoded,
): string[] {
  const out: string[] = [];
  const cmp = (field: string, entry: unknown, doc: unknown) => {
    if (entry !== doc) out.push(`${field}: entry ${JSON.stringify(entry)}, document ${JSON.stringify(doc)}`);
  };
  const doc: ResultDocument | RefusalDocument = d.doc;
  cmp('outcome', e.outcome, d.kind === 'result' ? 'released' : 'refused');
  cmp('jobId', e.jobId, doc.jobId);
  cmp('datasetId', e.datasetId, doc.datasetId);
  cmp('queryDigest', e.queryDigest, toHex(doc.queryDigest));
  cmp('platform', e.platform, doc.platform);
  if (d.kind === 'result') {
    cmp('sealDigest', e.sealDigest, toHex(d.doc.sealDigest));
    cmp('datasetDigest', e.datasetDigest, toHex(d.doc.datasetDigest));
    cmp('keyIds', [...new Set(e.keyIds)].sort().join(','), [...d.doc.keyArns].sort().join(','));
    cmp('code', e.code, null);
    cmp('reason', e.reason, null);
  } else {
    // A refusal before the seal was checked names no seal; the entry then keeps the host's.
    if (d.doc.sealDigest !== null) cmp('sealDigest', e.sealDigest, toHex(d.doc.sealDigest));
    cmp('code', e.code, d.doc.code);
    cmp('reason', e.reason, d.doc.reason);
  }
  return out;
}

/** The measurements an entry records, from verified evidence: PCRs 0-4 and 8, or MEASUREMENT. */
export function auditMeasurements(ev: VerifiedEvidence | undefined): Record<string, string> {
  const m: Record<string, string> = {};
  if (!ev) return m;
  for (const [k, v] of Object.entries(ev.pcrs)) if (['0', '1', '2', '3', '4', '8'].includes(k)) m[`PCR${k}`] = v;
  if (ev.measurement) m.MEASUREMENT = ev.measurement;
  return m;
}

/**
 * The audit record of one job as `runJob` ended it: a released result, an attested refusal, or a
 * failure with no attested document. `extras.datasetDigest` (hex) stands in when the job failed
 * before every record was sent (the digest of the whole file, as `enclavekit run` computes it).
 */
export function auditRecordFromOutcome(out: RunOutcome, extras: { datasetDigest?: string; time?: string } = {}): AuditRecord {
  const datasetDigest = out.datasetDigest ?? extras.datasetDigest;
  if (datasetDigest === undefined) throw new TypeError('"extras.datasetDigest" is required for a job that did not send every record');
  let outcome: AuditOutcome;
  let document: Uint8Array | null = null;
  let evidence: Uint8Array | null = null;
  let ev: VerifiedEvidence | undefined;
  let code: string | null = null;
  let reason: string | null = null;
  let platform: string;
  let seal: string | null = out.sealDigest;
  if (out.ok) {
    outcome = 'released';
    document = out.resultBytes;
    evidence = out.evidence;
    ev = out.verification;
    platform = out.result.platform;
    seal = toHex(out.result.sealDigest);
  } else if (out.refusal) {
    outcome = 'refused';
    document = out.refusal.bytes;
    evidence = out.refusal.evidence;
    ev = out.refusal.verification;
    code = out.refusal.doc.code;
    reason = out.refusal.doc.reason;
    platform = out.refusal.doc.platform;
    if (out.refusal.doc.sealDigest !== null) seal = toHex(out.refusal.doc.sealDigest);
  } else {
    outcome = 'failed';
    ev = out.worker;
    code = CODE.test(out.error.code) ? out.error.code : 'ERR_JOB_FAILED';
    reason = `${out.error.stage}: ${out.error.code}: ${out.error.message}`.slice(0, MAX_REASON);
    platform = ev?.platform ?? 'unknown';
  }
  const publicKey = ev?.publicKey ?? out.worker?.publicKey ?? null;
  return {
    jobId: out.jobId,
    ...(extras.time !== undefined ? { time: extras.time } : {}),
    datasetId: out.datasetId,
    sealDigest: seal,
    datasetDigest,
    queryDigest: out.queryDigest,
    keyIds: [...out.keyIds],
    platform,
    measurements: auditMeasurements(ev),
    outcome,
    code,
    reason,
    document,
    evidence,
    publicKey,
    nonce: out.jobNonce ?? null,
  };
}

/** Read the last line of a file (without its newline) by scanning back from the end. */
async function lastLine(path: string): Promise<string | undefined> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  if (size === 0) return undefined;
  const fh = await open(path, 'r');
  try {
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, size - 1);
    if (last[0] !== 0x0a) throw new ToolkitError('ERR_AUDIT_INVALID', 'audit log does not end with a newline (interrupted write?)', { reason: 'truncated' });
    const chunks: Buffer[] = [];
    let end = size - 1;
    let start = 0;
    const CHUNK = 64 * 1024;
    while (end > 0) {
      const from = Math.max(0, end - CHUNK);
      const buf = Buffer.alloc(end - from);
      await fh.read(buf, 0, buf.length, from);
      const nl = buf.lastIndexOf(0x0a);
      if (nl >= 0) {
        chunks.unshift(buf.subarray(nl + 1));
        start = from + nl + 1;
        break;
      }
      chunks.unshift(buf);
      end = from;
      if (size - 1 - from > AUDIT_MAX_LINE) throw new ToolkitError('ERR_AUDIT_INVALID', 'audit log has an overlong last line', { reason: 'line_too_long' });
    }
    if (size - 1 - start > AUDIT_MAX_LINE) throw new ToolkitError('ERR_AUDIT_INVALID', 'audit log has an overlong last line', { reason: 'line_too_long' });
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    await fh.close();
  }
}

const b64 = (b: Uint8Array | null): string | null => (b === null ? null : Buffer.from(b).toString('base64'));

/**
 * Append one entry, chained to the last one in the file. The last entry's shape and hash are checked
 * first, so a log whose tail was edited (or a v1 log) is not silently extended. A record that
 * contradicts its own document, or is out of bounds, is a caller error (TypeError).
 */
export async function appendAuditEntry(path: string, rec: AuditRecord, now: () => Date = () => new Date()): Promise<AuditEntry> {
  const last = await lastLine(path);
  let prev = AUDIT_GENESIS;
  let seq = 0;
  if (last !== undefined) {
    let p: unknown;
    try {
      p = JSON.parse(last);
    } catch (e) {
      throw new ToolkitError('ERR_AUDIT_INVALID', 'the last audit entry is not JSON', { reason: 'json', cause: e });
    }
    const problem = schemaProblem(p);
    if (problem) throw new ToolkitError('ERR_AUDIT_INVALID', `the last audit entry: ${schemaDetail(problem)}`, { reason: problem });
    const { hash, ...rest } = p as AuditEntry;
    if (entryHash(rest) !== hash) throw new ToolkitError('ERR_AUDIT_INVALID', 'the last audit entry does not match its hash', { reason: 'hash' });
    prev = hash;
    seq = (p as AuditEntry).seq + 1;
  }
  const t = rec.time === undefined ? now() : new Date(rec.time);
  if (Number.isNaN(t.getTime())) throw new TypeError('"time" expected an ISO 8601 time');
  const body: Omit<AuditEntry, 'hash'> = {
    v: 2,
    seq,
    time: t.toISOString(),
    jobId: rec.jobId,
    datasetId: rec.datasetId,
    sealDigest: rec.sealDigest,
    datasetDigest: rec.datasetDigest,
    queryDigest: rec.queryDigest,
    keyIds: [...rec.keyIds],
    platform: rec.platform,
    measurements: { ...rec.measurements },
    outcome: rec.outcome,
    code: rec.code,
    reason: rec.reason,
    document: b64(rec.document),
    evidence: b64(rec.evidence),
    publicKey: b64(rec.publicKey),
    nonce: rec.nonce === null ? null : toHex(rec.nonce),
    prev,
  };
  const entry: AuditEntry = { ...body, hash: entryHash(body) };
  const problem = schemaProblem(entry);
  if (problem) throw new TypeError(`audit entry is malformed (${problem})`);
  if (rec.document !== null) {
    const bad = documentMismatches(entry, decodeAttestedDocument(rec.document));
    if (bad.length > 0) throw new TypeError(`audit record does not match its document: ${bad.join('; ')}`);
  }
  const line = JSON.stringify(entry) + '\n';
  if (line.length > AUDIT_MAX_LINE) throw new TypeError('audit entry exceeds the line limit');
  const fh = await open(path, 'a', 0o600);
  try {
    await fh.write(line);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return entry;
}

class Broken extends Error {
  constructor(readonly reason: string, readonly detail: string) {
    super(detail);
  }
}

interface InstanceState {
  /** The seq the next document of this instance must have. */
  next: number;
  /** The chain head after the last document seen. */
  head: Uint8Array;
  publicKey: string | null;
}

interface LedgerState {
  generations: Set<number>;
  /** Worker instance (hex) -> the highest generation it used. */
  maxByInstance: Map<string, number>;
}

function expectationList(x: AuditVerifyOptions['expect']): AuditExpectations[] | undefined {
  if (x === undefined) return undefined;
  const list = (Array.isArray(x) ? [...x] : [x]) as AuditExpectations[];
  if (list.length === 0 || list.some((e) => (e.pcrs === undefined || e.pcrs.size === 0) && e.measurement === undefined))
    throw new ToolkitError('ERR_CONFIG_INVALID', 'audit verification needs expected PCRs or a MEASUREMENT for every accepted image', { reason: 'no_expectations' });
  return list;
}

/**
 * Verify a whole log; `firstBroken.line` is 1-based. Throws only for I/O errors, for expectations
 * that name no image, and for a `later` document that is not an attested document.
 */
export async function verifyAuditLog(path: string, opts: AuditVerifyOptions = {}): Promise<AuditVerifyResult> {
  const expect = expectationList(opts.expect);
  const later = (opts.later ?? []).map((l, i) => {
    const d = decodeAttestedDocument(l.document);
    return { label: l.label ?? `later document ${i + 1}`, digest: toHex(sha384(l.document)), instance: toHex(d.doc.audit.instance), seq: d.doc.audit.seq, jobId: d.doc.jobId, found: false };
  });
  const laterByDigest = new Map(later.map((l) => [l.digest, l]));
  const mode = expect ? 'evidence' : 'chain-only';
  const checked = { documents: 0, evidence: 0, chains: 0, later: 0 };
  const instances = new Map<string, InstanceState>();
  const ledgers = new Map<string, LedgerState>();
  let prev = AUDIT_GENESIS;
  let entries = 0;
  let line = 0;
  const result = (b?: Broken): AuditVerifyResult => ({
    ok: b === undefined,
    entries,
    mode,
    checked: { ...checked, chains: instances.size },
    ...(b ? { firstBroken: { line, reason: b.reason, detail: b.detail } } : {}),
  });

  const checkDocument = (e: AuditEntry): void => {
    if (e.document === null || e.evidence === null) return;
    const bytes = new Uint8Array(Buffer.from(e.document, 'base64'));
    let d: Decoded;
    try {
      d = decodeAttestedDocument(bytes);
    } catch (err) {
      throw new Broken('document_invalid', `the entry's document is not an attested result or refusal (${(err as Error).message})`);
    }
    const bad = documentMismatches(e, d);
    if (bad.length > 0) throw new Broken('document_mismatch', bad.join('; '));
    const digest = sha384(bytes);
    if (expect) {
      const evidence = new Uint8Array(Buffer.from(e.evidence, 'base64'));
      const bind = { nonce: new Uint8Array(Buffer.from(e.nonce!, 'hex')), userData: digest, ...(e.publicKey !== null ? { publicKey: new Uint8Array(Buffer.from(e.publicKey, 'base64')) } : {}) };
      const failures: string[] = [];
      let ev: VerifiedEvidence | undefined;
      for (const x of expect) {
        try {
          ev = verifyWorkerEvidence(evidence, { ...x, now: new Date(e.time) }, bind);
          break;
        } catch (err) {
          const c = (err as { code?: unknown }).code;
          failures.push(`${typeof c === 'string' ? `${c}: ` : ''}${(err as Error).message}`);
        }
      }
      if (!ev) throw new Broken('evidence', `the evidence does not verify for this document, nonce and key at ${e.time}: ${failures.join(' | ')}`);
      const wantPlatform = ev.platform === 'simulator' ? 'simulator' : ev.format;
      if (d.doc.platform !== wantPlatform) throw new Broken('evidence', `the document says platform ${d.doc.platform}, the evidence is ${wantPlatform}`);
      const mm: string[] = [];
      for (const [k, v] of Object.entries(e.measurements)) {
        const actual = k === 'MEASUREMENT' ? ev.measurement : ev.pcrs[k.slice(3)];
        if (actual !== v) mm.push(`measurements.${k}: entry ${v}, evidence ${actual ?? '(absent)'}`);
      }
      if (mm.length > 0) throw new Broken('document_mismatch', mm.join('; '));
      checked.evidence++;
    }
    // The worker's chain: per instance, from seq 0, each document linked to the one before.
    const link = d.doc.audit;
    const inst = toHex(link.instance);
    const st = instances.get(inst);
    const short = inst.slice(0, 12);
    if (st === undefined) {
      if (link.seq !== 0)
        throw new Broken('dropped', `the first entry of worker instance ${short}… is its document ${link.seq}: documents 0..${link.seq - 1} of it are not in the log`);
      if (!equalBytes(link.prev, AUDIT_CHAIN_GENESIS)) throw new Broken('worker_chain', `document 0 of worker instance ${short}… does not start at the genesis head`);
    } else {
      if (link.seq < st.next) throw new Broken('reordered', `worker instance ${short}…: document ${link.seq} after document ${st.next - 1}`);
      if (link.seq > st.next) throw new Broken('dropped', `worker instance ${short}…: document ${link.seq} follows document ${st.next - 1}; ${link.seq - st.next} document(s) missing`);
      if (!equalBytes(link.prev, st.head)) throw new Broken('worker_chain', `worker instance ${short}…: document ${link.seq} does not link to the document before it (an entry's document was changed)`);
      if (e.publicKey !== null && st.publicKey !== null && e.publicKey !== st.publicKey) throw new Broken('worker_chain', `worker instance ${short}… appears with two public keys`);
    }
    instances.set(inst, { next: link.seq + 1, head: nextAuditHead(link.prev, bytes), publicKey: e.publicKey ?? st?.publicKey ?? null });
    // The privacy ledger: a generation is used once per dataset, and a new worker instance starts above
    // every generation already used by another (else the host handed it an older sealed ledger).
    const seal = d.doc.sealDigest;
    if (d.doc.ledger !== null && seal !== null) {
      const key = toHex(seal);
      const g = d.doc.ledger.generation;
      let L = ledgers.get(key);
      if (!L) ledgers.set(key, (L = { generations: new Set(), maxByInstance: new Map() }));
      if (L.generations.has(g)) throw new Broken('rollback', `ledger generation ${g} of dataset seal ${key.slice(0, 12)}… appears twice: the sealed ledger was rolled back`);
      for (const [other, max] of L.maxByInstance)
        if (other !== inst && g <= max)
          throw new Broken('rollback', `ledger generation ${g} of dataset seal ${key.slice(0, 12)}… after generation ${max} from another worker instance: an older sealed ledger was handed back`);
      L.generations.add(g);
      L.maxByInstance.set(inst, Math.max(g, L.maxByInstance.get(inst) ?? 0));
    }
    const l = laterByDigest.get(toHex(digest));
    if (l && !l.found) {
      l.found = true;
      checked.later++;
    }
    checked.documents++;
  };

  const handle = (text: string): Broken | undefined => {
    line++;
    let e: unknown;
    try {
      e = JSON.parse(text);
    } catch {
      return new Broken('json', 'not JSON');
    }
    const problem = schemaProblem(e);
    if (problem) return new Broken(problem, schemaDetail(problem));
    const { hash, ...body } = e as AuditEntry;
    if (body.seq !== entries) return new Broken('seq', `seq ${body.seq}, expected ${entries}`);
    if (body.prev !== prev) return new Broken('prev', 'prev is not the previous entry\'s hash');
    if (entryHash(body) !== hash) return new Broken('hash', 'the entry does not match its hash');
    try {
      checkDocument(e as AuditEntry);
    } catch (err) {
      if (err instanceof Broken) return err;
      throw err;
    }
    prev = hash;
    entries++;
    return undefined;
  };

  const stream = createReadStream(path, { highWaterMark: 256 * 1024 });
  let pending: Buffer[] = [];
  let pendingLen = 0;
  try {
    for await (const c of stream) {
      let chunk = c as Buffer;
      let nl: number;
      while ((nl = chunk.indexOf(0x0a)) >= 0) {
        if (pendingLen + nl > AUDIT_MAX_LINE) {
          line++;
          return result(new Broken('line_too_long', `a line longer than ${AUDIT_MAX_LINE} bytes`));
        }
        const text = (pending.length === 0 ? chunk.subarray(0, nl) : Buffer.concat([...pending, chunk.subarray(0, nl)])).toString('utf8');
        pending = [];
        pendingLen = 0;
        const r = handle(text);
        if (r) return result(r);
        chunk = chunk.subarray(nl + 1);
      }
      if (chunk.length > 0) {
        pending.push(Buffer.from(chunk));
        pendingLen += chunk.length;
      }
      if (pendingLen > AUDIT_MAX_LINE) {
        line++;
        return result(new Broken('line_too_long', `a line longer than ${AUDIT_MAX_LINE} bytes`));
      }
    }
  } finally {
    stream.destroy();
  }
  if (pendingLen > 0) {
    line++;
    return result(new Broken('truncated', 'the last line has no newline (an interrupted write, or a cut)'));
  }
  // The end of the log: every document the verifier holds must be in it.
  line++;
  for (const l of later) {
    if (l.found) continue;
    const st = instances.get(l.instance);
    const short = l.instance.slice(0, 12);
    if (st !== undefined && l.seq < st.next)
      return result(new Broken('later_mismatch', `${l.label} (job ${l.jobId}) is document ${l.seq} of worker instance ${short}…, but the log holds a different document there`));
    return result(
      new Broken(
        'cut_off',
        st !== undefined
          ? `${l.label} (job ${l.jobId}) is document ${l.seq} of worker instance ${short}…; the log ends at its document ${st.next - 1}: entries were cut off`
          : `${l.label} (job ${l.jobId}, worker instance ${short}… document ${l.seq}) is not in the log, nor any entry of that worker instance: entries were cut off (or the result belongs to another log)`,
      ),
    );
  }
  line--;
  return result();
}
