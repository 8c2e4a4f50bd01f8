/**
 * The audit log: append-only JSON lines, each entry hash-chained to the one before.
 *
 *   entry.hash = hex(SHA-384(canonical CBOR of the entry without "hash")),  entry.prev = previous hash
 *
 * The first entry's prev is 96 zeros; `seq` counts from 0. Each append is written with one write()
 * and fsync'd before it returns. `verifyAuditLog` re-derives every hash and names the first line
 * that breaks the chain (edited, deleted, reordered or inserted entries all break it). The chain
 * detects tampering with the middle of the log; truncating its tail is detectable only against a
 * copy of the last hash kept elsewhere (for example in the result files it points at).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { ToolkitError } from '../attestation/errors.js';
import { encodeCanonical } from '../enclave/protocol/index.js';

export const AUDIT_GENESIS = '0'.repeat(96);
const HEX96 = /^[0-9a-f]{96}$/;
const MAX_LINE = 1024 * 1024;

export interface AuditVerification {
  ok: boolean;
  /** Whether the remote side's evidence and result verified; `reason` when it did not. */
  reason?: string;
}

/** What a caller records about one job. */
export interface AuditRecord {
  jobId: string;
  /** ISO 8601; defaults to now. */
  time?: string;
  datasetId: string;
  /** hex SHA-384 */
  datasetDigest: string;
  /** hex SHA-384 */
  queryDigest: string;
  keyIds: string[];
  platform: string;
  /** Measurement name -> hex value (PCR0..., MEASUREMENT). */
  measurements: Record<string, string>;
  /** hex SHA-384, or null when the job produced no result. */
  resultDigest: string | null;
  verification: AuditVerification;
}

export interface AuditEntry extends Required<Omit<AuditRecord, 'time'>> {
  v: 1;
  seq: number;
  time: string;
  prev: string;
  hash: string;
}

export interface AuditVerifyResult {
  ok: boolean;
  entries: number;
  firstBroken?: { line: number; reason: string };
}

function entryHash(e: Omit<AuditEntry, 'hash'>): string {
  return createHash('sha384').update(encodeCanonical(e)).digest('hex');
}

const isHexOr = (v: unknown, re: RegExp): boolean => typeof v === 'string' && re.test(v);
const HEX = /^[0-9a-f]*$/;

/** Schema of one entry; returns a reason or undefined. */
function schemaProblem(e: unknown): string | undefined {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) return 'not_object';
  const o = e as Record<string, unknown>;
  const keys = ['v', 'seq', 'time', 'jobId', 'datasetId', 'datasetDigest', 'queryDigest', 'keyIds', 'platform', 'measurements', 'resultDigest', 'verification', 'prev', 'hash'];
  for (const k of Object.keys(o)) if (!keys.includes(k)) return `unknown_key:${k}`;
  for (const k of keys) if (!(k in o)) return `missing:${k}`;
  if (o.v !== 1) return 'version';
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 0) return 'seq';
  if (typeof o.time !== 'string' || Number.isNaN(Date.parse(o.time))) return 'time';
  if (typeof o.jobId !== 'string' || typeof o.datasetId !== 'string' || typeof o.platform !== 'string') return 'type';
  if (!isHexOr(o.datasetDigest, HEX96) || !isHexOr(o.queryDigest, HEX96)) return 'digest';
  if (o.resultDigest !== null && !isHexOr(o.resultDigest, HEX96)) return 'digest';
  if (!Array.isArray(o.keyIds) || o.keyIds.some((k) => typeof k !== 'string')) return 'keyIds';
  const m = o.measurements;
  if (m === null || typeof m !== 'object' || Array.isArray(m) || Object.values(m).some((x) => !isHexOr(x, HEX))) return 'measurements';
  const ver = o.verification as Record<string, unknown>;
  if (ver === null || typeof ver !== 'object' || typeof ver.ok !== 'boolean' || Object.keys(ver).some((k) => k !== 'ok' && k !== 'reason') || (ver.reason !== undefined && typeof ver.reason !== 'string'))
    return 'verification';
  if (!isHexOr(o.prev, HEX96) || !isHexOr(o.hash, HEX96)) return 'hash_format';
  return undefined;
}

/** Read the last complete line of a file without reading the whole file. */
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
    const n = Math.min(size, MAX_LINE + 2);
    const buf = Buffer.alloc(n);
    await fh.read(buf, 0, n, size - n);
    if (buf[n - 1] !== 0x0a) throw new ToolkitError('ERR_AUDIT_INVALID', 'audit log does not end with a newline (interrupted write?)', { reason: 'truncated' });
    const start = buf.lastIndexOf(0x0a, n - 2) + 1;
    if (start === 0 && n < size) throw new ToolkitError('ERR_AUDIT_INVALID', 'audit log has an overlong last line', { reason: 'line_too_long' });
    return buf.subarray(start, n - 1).toString('utf8');
  } finally {
    await fh.close();
  }
}

/**
 * Append one entry, chained to the last one in the file. The last entry's own hash is checked
 * first, so a log whose tail was edited is not silently extended. Single writer per file.
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
    if (problem) throw new ToolkitError('ERR_AUDIT_INVALID', `the last audit entry is malformed (${problem})`, { reason: problem });
    const { hash, ...rest } = p as AuditEntry;
    if (entryHash(rest) !== hash) throw new ToolkitError('ERR_AUDIT_INVALID', 'the last audit entry does not match its hash', { reason: 'hash' });
    prev = hash;
    seq = (p as AuditEntry).seq + 1;
  }
  const body: Omit<AuditEntry, 'hash'> = {
    v: 1,
    seq,
    time: rec.time ?? now().toISOString(),
    jobId: rec.jobId,
    datasetId: rec.datasetId,
    datasetDigest: rec.datasetDigest,
    queryDigest: rec.queryDigest,
    keyIds: [...rec.keyIds],
    platform: rec.platform,
    measurements: { ...rec.measurements },
    resultDigest: rec.resultDigest,
    verification: rec.verification.reason === undefined ? { ok: rec.verification.ok } : { ok: rec.verification.ok, reason: rec.verification.reason },
    prev,
  };
  const entry: AuditEntry = { ...body, hash: entryHash(body) };
  const problem = schemaProblem(entry);
  if (problem) throw new TypeError(`audit entry is malformed (${problem})`);
  const fh = await open(path, 'a', 0o600);
  try {
    await fh.write(JSON.stringify(entry) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  return entry;
}

/** Check the whole chain; `firstBroken.line` is 1-based. */
export async function verifyAuditLog(path: string): Promise<AuditVerifyResult> {
  let prev = AUDIT_GENESIS;
  let entries = 0;
  let line = 0;
  const broken = (reason: string): AuditVerifyResult => ({ ok: false, entries, firstBroken: { line, reason } });
  let rest = Buffer.alloc(0);
  const stream = createReadStream(path, { highWaterMark: 256 * 1024 });
  const handle = (text: string): AuditVerifyResult | undefined => {
    line++;
    let e: unknown;
    try {
      e = JSON.parse(text);
    } catch {
      return broken('json');
    }
    const problem = schemaProblem(e);
    if (problem) return broken(problem);
    const { hash, ...body } = e as AuditEntry;
    if (body.seq !== entries) return broken('seq');
    if (body.prev !== prev) return broken('prev');
    if (entryHash(body) !== hash) return broken('hash');
    prev = hash;
    entries++;
    return undefined;
  };
  try {
    for await (const c of stream) {
      let chunk = Buffer.concat([rest, c as Buffer]);
      let nl: number;
      while ((nl = chunk.indexOf(0x0a)) >= 0) {
        const r = handle(chunk.subarray(0, nl).toString('utf8'));
        if (r) return r;
        chunk = chunk.subarray(nl + 1);
      }
      if (chunk.length > MAX_LINE) {
        line++;
        return broken('line_too_long');
      }
      rest = Buffer.from(chunk);
    }
  } finally {
    stream.destroy();
  }
  if (rest.length > 0) {
    line++;
    return broken('truncated');
  }
  return { ok: true, entries };
}
