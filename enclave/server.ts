/**
 * The worker's frame protocol server: one session per connection, a strict state machine over the
 * messages of enclave/protocol.
 *
 *   hello -> attestation            (once, first)
 *   credentials                     (after hello: before a job, or during one to refresh them)
 *   status_request -> status        (between jobs: the operator's health check)
 *   job_start -> records* -> job_end -> result        (repeatable, one job at a time)
 *
 * The session keeps the host's AWS credentials in memory for its own life only: they sign this
 * session's KMS requests, are replaced by a refresh, are never logged, returned or written, and are
 * dropped when the session ends (JavaScript cannot zero strings; nothing else references them).
 *
 * Anything else (a malformed, oversized, truncated or out-of-order frame, a message in the wrong
 * state, a job failure) is answered with one `error` frame and the connection is closed: after a
 * failure nothing of the job is ever released, and a stream that lost its framing cannot be trusted
 * to resynchronise. Reading is pull-based (`for await` over the stream), so the worker never reads a
 * frame faster than it processes the previous one and the host feels the backpressure.
 */
import { createServer, type Server } from 'node:net';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { ToolkitError } from '../attestation/errors.js';
import {
  DEFAULT_MAX_FRAME,
  FrameDecoder,
  FrameWriter,
  PROTOCOL_VERSION,
  SequenceChecker,
  negotiateMaxFrame,
  protocolError,
  type JobEndMessage,
  type CredentialsMessage,
  type JobStartMessage,
  type Message,
  type Outgoing,
  type RecordsMessage,
} from './protocol/index.js';

/** One job in progress, as the session drives it. */
export interface ActiveJob {
  readonly jobId: string;
  /** Process one batch; the session awaits it before reading further (backpressure). */
  addBatch(msg: RecordsMessage): Promise<void> | void;
  /** All records are in: the attested result, or a `JobRefusal` (attested) thrown. */
  finish(msg: JobEndMessage): Promise<{ result: Uint8Array; evidence: Uint8Array; ledger?: Uint8Array }>;
  /** Drop the job (failure or disconnect): wipe its keys, release nothing. Idempotent. */
  abort(): void;
}

/** AWS credentials as a session holds them (from the host's `credentials` message). */
export interface SessionCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

/** What a job may use of its session. */
export interface JobContext {
  /** The session's current AWS credentials (the latest the host sent), read at each KMS call. */
  credentials(): SessionCredentials | undefined;
}

/** The worker's answer to `status_request` (numbers only). */
export interface WorkerStatus {
  workerVersion: string;
  platform: string;
  uptimeMs: number;
  jobs: number;
}

/** What the session needs from the worker. */
export interface SessionHandler {
  /** Evidence for `hello`: binds the worker's public key and the host's nonce. */
  attest(nonce: Uint8Array): Promise<Uint8Array>;
  /** The worker's public key (DER SPKI), sent next to evidence that binds it only as a digest (SEV-SNP). */
  publicKey?: Uint8Array;
  /** Fetch keys and set up a job; throws a `JobRefusal` (sent as an attested refusal) or a ToolkitError. */
  startJob(msg: JobStartMessage, ctx: JobContext): Promise<ActiveJob>;
  /** For `status_request`; without it the session answers with an error. */
  status?(): WorkerStatus;
  log(line: string): void;
}

/** The credentials of a `credentials` message, checked as a whole (the validator checked each field). */
function sessionCredentialsOf(m: CredentialsMessage): SessionCredentials {
  const c: SessionCredentials = { accessKeyId: m.accessKeyId, secretAccessKey: m.secretAccessKey };
  if (m.sessionToken !== undefined) c.sessionToken = m.sessionToken;
  if (m.expiration !== undefined) c.expiration = new Date(m.expiration);
  return c;
}

export interface SessionOptions {
  maxFrame?: number;
  /** A session that sends nothing for this long is closed (default 10 minutes). */
  idleTimeoutMs?: number;
}

/**
 * An error that may leave the enclave: only our own errors, whose messages are written to carry no
 * plaintext, key or ciphertext. Anything else becomes a constant message.
 */
export function publicError(e: unknown): { code: string; message: string } {
  if (e instanceof ToolkitError) return { code: e.code, message: e.message.slice(0, 1000) };
  return { code: 'ERR_JOB_FAILED', message: 'internal error in the worker' };
}

export async function serveSession(stream: Duplex, handler: SessionHandler, opts: SessionOptions = {}): Promise<void> {
  const mine = opts.maxFrame ?? DEFAULT_MAX_FRAME;
  const decoder = new FrameDecoder({ maxFrame: mine });
  const writer = new FrameWriter(mine);
  const ids = new SequenceChecker('host message id');
  let state: 'hello' | 'idle' | 'job' = 'hello';
  let job: ActiveJob | undefined;
  let seq: SequenceChecker | undefined;
  let closed = false;
  /** The job a failure belongs to (kept past abort so the error frame can name it). */
  let lastJobId: string | undefined;
  /** This session's AWS credentials: memory only, replaced by a refresh, dropped at the end. */
  let credentials: SessionCredentials | undefined;
  const jobContext: JobContext = { credentials: () => credentials };
  stream.on('error', () => {
    closed = true;
  });
  stream.on('close', () => {
    closed = true;
  });
  let idle: NodeJS.Timeout | undefined;
  const armIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(() => stream.destroy(), opts.idleTimeoutMs ?? 600_000);
  };

  const send = async (msg: Outgoing) => {
    if (closed) return;
    const frame = writer.encode(msg);
    if (!stream.write(frame)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          stream.off('drain', done);
          stream.off('close', done);
          resolve();
        };
        stream.on('drain', done);
        stream.on('close', done);
      });
    }
  };

  const handle = async (m: Message): Promise<void> => {
    ids.check(m.id);
    switch (m.t) {
      case 'hello': {
        if (state !== 'hello') throw protocolError('state', 'hello: already said');
        if (m.version !== PROTOCOL_VERSION) throw protocolError('version', `hello: protocol version ${m.version} is not supported (this worker speaks ${PROTOCOL_VERSION})`);
        const n = negotiateMaxFrame(mine, m.maxFrame);
        decoder.maxFrame = n;
        writer.maxFrame = n;
        const evidence = await handler.attest(m.nonce);
        await send({ t: 'attestation', evidence, ...(handler.publicKey ? { publicKey: handler.publicKey } : {}) });
        state = 'idle';
        return;
      }
      case 'job_start': {
        if (state !== 'idle') throw protocolError('state', `job_start: not expected ${state === 'hello' ? 'before hello' : 'during a job'}`);
        handler.log(`job ${m.jobId}: start (dataset ${m.datasetId}, ${Object.keys(m.manifest.keys).length} key(s))`);
        lastJobId = m.jobId;
        job = await asJobFailure(handler.startJob(m, jobContext));
        seq = new SequenceChecker(`job ${m.jobId} batch seq`);
        state = 'job';
        return;
      }
      case 'records': {
        if (state !== 'job' || !job || !seq) throw protocolError('state', 'records: no job in progress');
        if (m.jobId !== job.jobId) throw protocolError('jobId', 'records: for another job');
        seq.check(m.seq);
        await job.addBatch(m);
        return;
      }
      case 'job_end': {
        if (state !== 'job' || !job) throw protocolError('state', 'job_end: no job in progress');
        if (m.jobId !== job.jobId) throw protocolError('jobId', 'job_end: for another job');
        const j = job;
        try {
          const { result, evidence, ledger } = await asJobFailure(j.finish(m));
          await send({ t: 'result', jobId: j.jobId, result, evidence, ...(handler.publicKey ? { publicKey: handler.publicKey } : {}), ...(ledger ? { ledger } : {}) });
          handler.log(`job ${j.jobId}: result released (${result.length} bytes)`);
        } finally {
          j.abort();
          job = undefined;
          seq = undefined;
          state = 'idle';
        }
        return;
      }
      case 'credentials': {
        if (state === 'hello') throw protocolError('state', 'credentials: not expected before hello');
        const refresh = credentials !== undefined;
        credentials = sessionCredentialsOf(m);
        // Never the key id, the secret or the token: only that they came, and until when.
        handler.log(`session: credentials ${refresh ? 'refreshed' : 'received'}${credentials.expiration ? ` (valid until ${credentials.expiration.toISOString()})` : ' (no expiry given)'}`);
        return;
      }
      case 'status_request': {
        if (state !== 'idle') throw protocolError('state', `status_request: not expected ${state === 'hello' ? 'before hello' : 'during a job'}`);
        if (!handler.status) throw new ToolkitError('ERR_PROTOCOL', 'status_request: this worker does not report status', { reason: 'status' });
        const st = handler.status();
        const exp = credentials?.expiration;
        await send({
          t: 'status',
          workerVersion: st.workerVersion.slice(0, 64),
          platform: st.platform,
          uptimeMs: Math.max(0, Math.floor(st.uptimeMs)),
          jobs: st.jobs,
          credentials: credentials !== undefined,
          ...(exp ? { credentialsExpiration: exp.toISOString() } : {}),
        });
        return;
      }
      default:
        throw protocolError('t', `${m.t}: not a message the host may send`);
    }
  };

  armIdle();
  try {
    // destroyOnReturn: false — on a failure the stream must stay open long enough to deliver the
    // error frame; destroying it with unread input would make the kernel answer with a reset.
    for await (const chunk of stream.iterator({ destroyOnReturn: false })) {
      armIdle();
      const bytes = chunk as Buffer;
      const msgs = decoder.push(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
      for (const m of msgs) await handle(m);
    }
    decoder.end();
  } catch (e) {
    const pe = publicError(e);
    const jobId = job?.jobId ?? ((state as string) === 'job' || e instanceof JobFailure || e instanceof JobRefusal ? lastJobId : undefined);
    handler.log(`session: ${jobId ? `job ${jobId} ` : ''}${e instanceof JobRefusal ? 'refused' : 'failed'}: ${pe.code}: ${pe.message}`);
    job?.abort();
    job = undefined;
    try {
      if (e instanceof JobRefusal && jobId)
        await send({ t: 'refusal', jobId, refusal: e.attested.refusal, evidence: e.attested.evidence, ...(handler.publicKey ? { publicKey: handler.publicKey } : {}), ...(e.attested.ledger ? { ledger: e.attested.ledger } : {}) });
      else await send({ t: 'error', code: pe.code, message: pe.message, ...(jobId ? { jobId } : {}) });
    } catch {
      // the peer is gone; nothing more to tell it
    }
  } finally {
    clearTimeout(idle);
    job?.abort();
    // The session's credentials go with it.
    credentials = undefined;
    if (!closed) {
      // Say no more, then discard whatever the host still has in flight until it closes (bounded),
      // so the error frame is read rather than lost to a connection reset.
      stream.end();
      stream.on('data', () => {});
      stream.resume();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        const done = () => {
          clearTimeout(t);
          resolve();
        };
        stream.once('close', done);
        stream.once('end', done);
        stream.once('error', done);
      });
    }
    stream.destroy();
  }
}

/**
 * A job refused with an attested refusal document (worker.ts): the session sends it as a `refusal`
 * frame instead of an `error`, so the host can keep it as evidence in its audit log.
 */
export class JobRefusal extends ToolkitError {
  constructor(
    err: ToolkitError,
    readonly attested: { refusal: Uint8Array; evidence: Uint8Array; ledger?: Uint8Array },
  ) {
    super(err.code, err.message, err.reason === undefined ? { cause: err } : { cause: err, reason: err.reason });
  }
}

async function asJobFailure<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof JobRefusal) throw e;
    if (e instanceof ToolkitError) {
      const f = new JobFailure(e.code, e.message, e.reason === undefined ? { cause: e } : { cause: e, reason: e.reason });
      throw f;
    }
    throw e;
  }
}

/** Marks a failure inside a job's own work (key loading, finishing) so the error frame names the job. */
class JobFailure extends ToolkitError {}

export type ListenEndpoint = { kind: 'unix'; path: string } | { kind: 'vsock'; cid: number; port: number };

export interface WorkerServer {
  close(): Promise<void>;
}

/**
 * Accept connections and run one session each (at most `maxConnections` at once; more are closed).
 * Unix sockets use node:net; vsock uses the native addon.
 */
export async function listenSessions(
  at: ListenEndpoint,
  onConnection: (stream: Duplex) => Promise<void>,
  opts: { maxConnections?: number; log?: (line: string) => void } = {},
): Promise<WorkerServer> {
  const max = opts.maxConnections ?? 4;
  let live = 0;
  const streams = new Set<Duplex>();
  const accept = (s: Duplex) => {
    if (live >= max) {
      opts.log?.(`connection refused: ${max} sessions already open`);
      s.destroy();
      return;
    }
    live++;
    streams.add(s);
    onConnection(s)
      .catch(() => undefined)
      .finally(() => {
        live--;
        streams.delete(s);
      });
  };
  if (at.kind === 'unix') {
    if (existsSync(at.path)) {
      if (!lstatSync(at.path).isSocket()) throw new ToolkitError('ERR_CONFIG_INVALID', `${at.path} exists and is not a socket`);
      unlinkSync(at.path);
    }
    const server: Server = createServer({ allowHalfOpen: true }, accept);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(at.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return {
      close: () =>
        new Promise<void>((resolve) => {
          for (const s of streams) s.destroy();
          server.close(() => resolve());
        }),
    };
  }
  const native = (await import('../native/index.js')) as unknown as {
    listenVsock?: (port: number, o?: { cid?: number; allowHalfOpen?: boolean }) => import('node:events').EventEmitter & { close(cb?: () => void): unknown };
  };
  if (typeof native.listenVsock !== 'function')
    throw new ToolkitError('ERR_PLATFORM_UNAVAILABLE', 'listening on vsock needs the native addon', { reason: 'native' });
  const server = native.listenVsock(at.port, { cid: at.cid, allowHalfOpen: true });
  server.on('connection', accept);
  server.on('error', (e: Error) => opts.log?.(`vsock listener error: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) s.destroy();
        server.close(() => resolve());
      }),
  };
}
