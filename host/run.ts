/**
 * One job, host side: attest the worker, send the query and the key manifest, stream the dataset in
 * batches with backpressure, and verify what comes back.
 *
 *   hello(nonce1) -> attestation          verified: root, PCRs/measurement, nonce1, a public key
 *   credentials                            the parent's AWS credentials, only to a verified worker
 *   job_start(query, manifest, nonce2)
 *   records(seq 0..n)                      the dataset digest is computed as records are sent;
 *                                          credentials again before they expire
 *   job_end(count, digest) -> result       verified: same worker key, nonce2, SHA-384(result)
 *
 * The host holds no data key and sees no plaintext; it only forwards records as they are on disk
 * (encrypted fields stay encrypted). A worker `error` frame or a dropped connection stops the
 * stream at once, and the job fails: no partial result exists to release.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform } from 'node:stream';
import type { Duplex } from 'node:stream';
import { ToolkitError, isToolkitError } from '../attestation/errors.js';
import { toHex } from '../attestation/bytes.js';
import {
  DEFAULT_MAX_FRAME,
  DatasetDigest,
  PROTOCOL_VERSION,
  RecordBatch,
  manifestBody,
  queryDigest,
  sealDigest,
  type KeyManifest,
  type Message,
  type RefusalDocument,
  type ResultDocument,
} from '../enclave/protocol/index.js';
import { readDataset, detectFormat, type DatasetFormat } from './dataset.js';
import { EnclaveConnection } from './enclave-conn.js';
import { credentialsPayload, describeCredentials, type AwsCredentials, type CredentialProvider } from './credentials.js';
import type { Progress } from './progress.js';
import { verifyRefusal, verifyResult, verifyWorkerEvidence, type Expectations, type VerifiedEvidence } from './verify-result.js';

export interface RunJobOptions {
  /** Dataset file (NDJSON or CSV, encrypted fields as written by `enclavekit encrypt`). */
  dataset: string;
  format?: DatasetFormat;
  manifest: KeyManifest;
  query: Record<string, unknown>;
  /** Opens the byte stream to the worker. */
  connect: () => Promise<Duplex>;
  expect: Omit<Expectations, 'now'>;
  now?: () => Date;
  jobId?: string;
  /** Records per batch frame (default 500; halved automatically if a frame would be too large). */
  batchSize?: number;
  maxFrame?: number;
  progress?: Progress;
  /** How long to wait for the worker's attestation, and for its result after job_end. */
  helloTimeoutMs?: number;
  resultTimeoutMs?: number;
  /** Observe every byte on the channel (tests). */
  tap?: (direction: 'out' | 'in', bytes: Uint8Array) => void;
  log?: (line: string) => void;
  randomBytes?: (n: number) => Uint8Array;
  /** The dataset's sealed privacy ledger as the worker last returned it (kept by the host). */
  ledger?: Uint8Array;
  /**
   * The parent's AWS credentials for the worker's KMS requests (`parentCredentials()` of
   * host/credentials.ts on a parent instance). Sent only after the worker's attestation verified,
   * before job_start, and again while records stream once they are within `credentialsRefreshMs` of
   * expiring. Without it nothing is sent (a worker on a real platform then refuses the job).
   */
  credentials?: CredentialProvider;
  /** Refresh the worker's credentials this long before they expire (default 10 minutes). */
  credentialsRefreshMs?: number;
}

export interface JobSummary {
  jobId: string;
  datasetId: string;
  /** Hex, of what was sent (undefined if the job failed before all records were sent). */
  datasetDigest?: string;
  queryDigest: string;
  records: number;
  keyIds: string[];
  /** Hex SHA-384 of the sealed manifest body. */
  sealDigest: string;
  /** The worker's attestation after hello, if it verified. */
  worker?: VerifiedEvidence;
  /** The nonce sent in job_start (audit entries keep it beside the evidence). */
  jobNonce?: Uint8Array;
  /** The sealed ledger the worker returned with its result or refusal: keep it for the next job. */
  ledger?: Uint8Array;
}

/** An attested refusal the worker sent, verified. */
export interface AttestedRefusal {
  doc: RefusalDocument;
  bytes: Uint8Array;
  evidence: Uint8Array;
  verification: VerifiedEvidence;
}

export type RunOutcome =
  | (JobSummary & {
      ok: true;
      result: ResultDocument;
      resultBytes: Uint8Array;
      resultDigest: string;
      evidence: Uint8Array;
      verification: VerifiedEvidence;
    })
  | (JobSummary & { ok: false; error: { code: string; message: string; reason?: string; stage: string }; refusal?: AttestedRefusal });

/** Thrown inside runJob when the worker sent a refusal that verified. */
class RefusedByWorker extends ToolkitError {
  constructor(readonly attested: AttestedRefusal) {
    super(
      attested.doc.code as ToolkitError['code'],
      attested.doc.code === 'ERR_JOB_REFUSED' ? 'the worker refused the job; nothing was released' : `the worker refused the job: ${attested.doc.code} (${attested.doc.reason}): ${attested.doc.message}`,
      { reason: attested.doc.reason },
    );
  }
}

/** A worker's `error` frame as a host-side error. */
export function workerError(m: Extract<Message, { t: 'error' }>): ToolkitError {
  return new ToolkitError('ERR_JOB_FAILED', `the worker failed the job: ${m.code}: ${m.message}`, { reason: m.code });
}

function countingStream(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

export async function runJob(opts: RunJobOptions): Promise<RunOutcome> {
  const now = opts.now ?? (() => new Date());
  const rnd = opts.randomBytes ?? ((n: number) => new Uint8Array(randomBytes(n)));
  const log = opts.log ?? (() => {});
  const jobId = opts.jobId ?? `job-${randomUUID()}`;
  const manifest = opts.manifest;
  /** SHA-384 of the sealed manifest body: named in the summary and required in the result. */
  const seal = sealDigest(manifestBody(manifest));
  const summary: JobSummary = {
    jobId,
    datasetId: manifest.datasetId,
    queryDigest: toHex(queryDigest(opts.query)),
    records: 0,
    keyIds: [...new Set(Object.values(manifest.keys).map((k) => k.keyId))],
    sealDigest: toHex(seal),
  };
  let jobNonce: Uint8Array | undefined;
  let workerKey: Uint8Array | undefined;
  /** Verify a refusal frame and turn it into the error this job ends with. */
  const refusalError = (m: Extract<Message, { t: 'refusal' }>): ToolkitError => {
    if (m.ledger) summary.ledger = m.ledger;
    if (!jobNonce || !workerKey || m.jobId !== jobId) return new ToolkitError('ERR_PROTOCOL', 'a refusal for no job of ours', { reason: 'state' });
    try {
      const v = verifyRefusal(m.refusal, m.evidence, { ...opts.expect, now: now() }, { jobId, datasetId: manifest.datasetId, query: opts.query, nonce: jobNonce, publicKey: workerKey });
      return new RefusedByWorker({ doc: v.refusal, bytes: m.refusal, evidence: m.evidence, verification: v.evidence });
    } catch (e) {
      return isToolkitError(e) ? e : new ToolkitError('ERR_RESULT_INVALID', 'the refusal did not verify', { reason: 'refusal', cause: e });
    }
  };
  let stage = 'connect';
  let conn: EnclaveConnection | undefined;
  try {
    const format = opts.format ?? detectFormat(opts.dataset);
    if (format === undefined) throw new ToolkitError('ERR_CONFIG_INVALID', `cannot tell the dataset format of ${opts.dataset} (use .ndjson/.jsonl or .csv)`, { reason: 'format' });
    const stream = await opts.connect();
    conn = new EnclaveConnection(stream, { maxFrame: opts.maxFrame ?? DEFAULT_MAX_FRAME, ...(opts.tap ? { tap: opts.tap } : {}) });

    stage = 'attestation';
    const helloNonce = rnd(32);
    await conn.send({ t: 'hello', version: PROTOCOL_VERSION, nonce: helloNonce, maxFrame: opts.maxFrame ?? DEFAULT_MAX_FRAME });
    const att = await conn.next(opts.helloTimeoutMs ?? 30_000);
    if (att.t === 'error') throw workerError(att);
    if (att.t !== 'attestation') throw new ToolkitError('ERR_PROTOCOL', `expected attestation, got ${att.t}`, { reason: 'state' });
    const worker = verifyWorkerEvidence(att.evidence, { ...opts.expect, now: now() }, {
      nonce: helloNonce,
      ...(att.publicKey ? { publicKey: att.publicKey } : {}),
    });
    summary.worker = worker;
    workerKey = worker.publicKey;
    log(`worker attested: platform ${worker.platform}${worker.pcrs['0'] ? `, PCR0 ${worker.pcrs['0']}` : ''}${worker.measurement ? `, MEASUREMENT ${worker.measurement}` : ''}`);

    // Credentials go to an attested worker only, and never into a log line or the outcome.
    let handed: AwsCredentials | undefined;
    if (opts.credentials) {
      stage = 'credentials';
      handed = await opts.credentials();
      await conn.send({ t: 'credentials', ...credentialsPayload(handed) });
      log(`credentials handed to the worker: ${describeCredentials(handed, now())}`);
    }
    const refreshMs = opts.credentialsRefreshMs ?? 10 * 60_000;
    let lastRefreshTry = -Infinity;
    const refreshCredentials = async (c: EnclaveConnection): Promise<void> => {
      if (!opts.credentials || handed?.expiration === undefined) return;
      const t = now().getTime();
      if (handed.expiration.getTime() - t > refreshMs || t - lastRefreshTry < 30_000) return;
      lastRefreshTry = t;
      let next: AwsCredentials;
      try {
        next = await opts.credentials();
      } catch (e) {
        // The set the worker holds stays valid until it expires; try again later.
        log(`credentials refresh failed: ${isToolkitError(e) ? `${e.code}: ${e.message}` : 'error'}`);
        return;
      }
      if (next.expiration !== undefined && next.expiration.getTime() <= handed.expiration.getTime()) return;
      await c.send({ t: 'credentials', ...credentialsPayload(next) });
      handed = next;
      log(`credentials refreshed: ${describeCredentials(next, now())}`);
    };

    stage = 'stream';
    jobNonce = rnd(32);
    summary.jobNonce = jobNonce;
    await conn.send({ t: 'job_start', jobId, datasetId: manifest.datasetId, query: opts.query, manifest, nonce: jobNonce, ...(opts.ledger ? { ledger: opts.ledger } : {}) });
    // Stop streaming as soon as the worker reports a failure or the channel dies.
    let trouble: ToolkitError | undefined;
    const off = conn.onTrouble((why) => {
      if (trouble) return;
      if (isToolkitError(why)) trouble = why;
      else if (why.t === 'refusal') trouble = refusalError(why);
      else trouble = workerError(why as Extract<Message, { t: 'error' }>);
    });
    const digest = new DatasetDigest(manifest.datasetId);
    let bytes = 0;
    const source = createReadStream(opts.dataset, { highWaterMark: 1 << 20 }).pipe(countingStream((n) => (bytes += n)));
    let seq = 0;
    // Each record is encoded once, canonically: those bytes feed the digest and go on the wire.
    const batch = new RecordBatch();
    const batchSize = opts.batchSize ?? 500;
    const maxFrame = opts.maxFrame ?? DEFAULT_MAX_FRAME;
    const c = conn;
    const flush = async (): Promise<void> => {
      let from = 0;
      while (from < batch.count) {
        // A batch of large records can exceed the frame limit: split it rather than fail (a single
        // record that does not fit fails with ERR_FRAME_TOO_LARGE).
        let to = batch.count;
        while (to - from > 1 && batch.bytesOf(from, to) + 256 > maxFrame) to = from + ((to - from) >> 1);
        await c.sendRecords(jobId, seq, batch, from, to);
        seq++;
        from = to;
      }
      batch.clear();
      await refreshCredentials(c);
    };
    try {
      for await (const { record } of readDataset(source, { format })) {
        if (trouble) break;
        batch.add(record, digest);
        if (batch.count >= batchSize || batch.byteLength + 256 > maxFrame) {
          await flush();
          opts.progress?.update(digest.count, bytes);
        }
      }
      if (!trouble && batch.count > 0) await flush();
    } catch (e) {
      source.destroy();
      throw trouble ?? e;
    } finally {
      off();
    }
    if (trouble) {
      source.destroy();
      throw trouble;
    }
    opts.progress?.update(digest.count, bytes);
    summary.records = digest.count;
    const datasetDigest = digest.digest();
    summary.datasetDigest = toHex(datasetDigest);

    stage = 'result';
    await conn.send({ t: 'job_end', jobId, count: summary.records, datasetDigest });
    const msg = await conn.next(opts.resultTimeoutMs ?? 120_000);
    if (msg.t === 'error') throw workerError(msg);
    if (msg.t === 'refusal') throw refusalError(msg);
    if (msg.t !== 'result' || msg.jobId !== jobId) throw new ToolkitError('ERR_PROTOCOL', `expected the result of ${jobId}, got ${msg.t}`, { reason: 'state' });

    stage = 'verify';
    const v = verifyResult(msg.result, msg.evidence, { ...opts.expect, now: now() }, {
      jobId,
      datasetId: manifest.datasetId,
      datasetDigest,
      query: opts.query,
      records: summary.records,
      nonce: jobNonce,
      publicKey: worker.publicKey!,
      sealDigest: seal,
      keyArns: summary.keyIds,
    });
    if (msg.ledger) summary.ledger = msg.ledger;
    return {
      ...summary,
      ok: true,
      result: v.result,
      resultBytes: msg.result,
      resultDigest: toHex(v.resultDigest),
      evidence: msg.evidence,
      verification: v.evidence,
    };
  } catch (e) {
    const err = isToolkitError(e)
      ? e
      : new ToolkitError('ERR_JOB_FAILED', `job failed: ${(e as NodeJS.ErrnoException)?.code ?? 'internal error'}`, { reason: 'internal', cause: e });
    return {
      ...summary,
      ok: false,
      error: { code: err.code, message: err.message, ...(err.reason !== undefined ? { reason: err.reason } : {}), stage },
      ...(err instanceof RefusedByWorker ? { refusal: err.attested } : {}),
    };
  } finally {
    opts.progress?.done();
    conn?.close();
  }
}

/**
 * The dataset digest of a whole file, as a complete job would have sent it: for the audit entry of
 * a job that failed before the last record went out.
 */
export async function datasetDigestOfFile(path: string, datasetId: string, format?: DatasetFormat): Promise<Uint8Array> {
  const f = format ?? detectFormat(path);
  if (f === undefined) throw new ToolkitError('ERR_CONFIG_INVALID', `cannot tell the dataset format of ${path}`, { reason: 'format' });
  const d = new DatasetDigest(datasetId);
  for await (const { record } of readDataset(path, { format: f })) d.add(record);
  return d.digest();
}
