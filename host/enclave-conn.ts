/**
 * The host's end of one connection to an enclave worker: frames out with backpressure, frames in
 * through the protocol's incremental decoder, message ids checked in order. The worker is untrusted
 * until its attestation verifies, and even after that its frames are parsed strictly: a malformed,
 * oversized or out-of-order frame ends the connection with ERR_PROTOCOL / ERR_FRAME_TOO_LARGE.
 */
import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import { ToolkitError } from '../attestation/errors.js';
import { randomBytes } from 'node:crypto';
import {
  DEFAULT_MAX_FRAME,
  FrameDecoder,
  FrameWriter,
  PROTOCOL_VERSION,
  SequenceChecker,
  type Message,
  type RecordBatch,
  type Outgoing,
  type StatusMessage,
} from '../enclave/protocol/index.js';

/** Where the worker is: a Unix socket, a vsock (CID, port), or `sim` (a worker process we start). */
export type EnclaveTarget = { kind: 'unix'; path: string } | { kind: 'vsock'; cid: number; port: number } | { kind: 'sim' };

export function parseEnclaveTarget(text: string): EnclaveTarget {
  if (text === 'sim') return { kind: 'sim' };
  if (text.startsWith('unix:') && text.length > 5 && text.length < 108 + 5) return { kind: 'unix', path: text.slice(5) };
  const m = /^vsock:(\d{1,10}):(\d{1,10})$/.exec(text);
  if (m) {
    const cid = Number(m[1]);
    const port = Number(m[2]);
    if (cid <= 0xffffffff && port <= 0xffffffff) return { kind: 'vsock', cid, port };
  }
  throw new ToolkitError('ERR_CONFIG_INVALID', `--enclave expects vsock:CID:PORT, unix:PATH or sim, got ${JSON.stringify(text.slice(0, 120))}`, {
    reason: 'enclave_target',
  });
}

/** Open the byte stream to a worker. vsock goes through the native addon (loaded on demand). */
export async function connectEnclave(target: EnclaveTarget, timeoutMs = 10_000): Promise<Duplex> {
  if (target.kind === 'sim') throw new TypeError('connectEnclave: start the simulated worker first, then connect to its socket');
  if (target.kind === 'vsock') {
    const native = (await import('../native/index.js')) as unknown as {
      connectVsock?: (cid: number, port: number) => Promise<Duplex>;
    };
    if (typeof native.connectVsock !== 'function')
      throw new ToolkitError('ERR_PLATFORM_UNAVAILABLE', 'vsock needs the native addon, which is not available', { reason: 'native' });
    const pending = native.connectVsock(target.cid, target.port);
    return new Promise<Duplex>((resolve, reject) => {
      let late = false;
      const t = setTimeout(() => {
        late = true;
        reject(new ToolkitError('ERR_JOB_FAILED', `worker at vsock:${target.cid}:${target.port} did not accept within ${timeoutMs} ms`, { reason: 'connect_timeout' }));
      }, timeoutMs);
      pending.then(
        (s) => {
          clearTimeout(t);
          if (late) s.destroy();
          else resolve(s);
        },
        (e: unknown) => {
          clearTimeout(t);
          const code = (e as { code?: string }).code;
          reject(new ToolkitError('ERR_JOB_FAILED', `cannot connect to the worker at vsock:${target.cid}:${target.port}: ${code ?? 'error'}`, { reason: 'connect', cause: e }));
        },
      );
    });
  }
  const sock = createConnection({ path: target.path, allowHalfOpen: false });
  return new Promise<Duplex>((resolve, reject) => {
    const t = setTimeout(() => {
      sock.destroy();
      reject(new ToolkitError('ERR_JOB_FAILED', `worker at ${target.path} did not accept within ${timeoutMs} ms`, { reason: 'connect_timeout' }));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(t);
      resolve(sock);
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      reject(new ToolkitError('ERR_JOB_FAILED', `cannot connect to the worker at ${target.path}: ${e.code ?? e.message}`, { reason: 'connect', cause: e }));
    });
  });
}

export interface EnclaveConnectionOptions {
  maxFrame?: number;
  /** Observe every chunk sent/received (tests that audit the channel). */
  tap?: (direction: 'out' | 'in', bytes: Uint8Array) => void;
}

/**
 * A framed, ordered message channel. `next()` yields incoming messages in order; a worker `error`
 * frame is returned like any message (the caller decides what it means); a transport or protocol
 * failure rejects every pending and future `next()` and `send()`.
 */
export class EnclaveConnection {
  readonly #stream: Duplex;
  readonly #decoder: FrameDecoder;
  readonly #writer: FrameWriter;
  readonly #ids = new SequenceChecker('worker message id');
  readonly #queue: Message[] = [];
  readonly #waiters: { resolve: (m: Message) => void; reject: (e: unknown) => void }[] = [];
  readonly #tap: EnclaveConnectionOptions['tap'];
  #failure: ToolkitError | undefined;
  #closed = false;
  #drainWaiters: (() => void)[] = [];
  /** Listeners told when the peer sends an `error` frame or the channel fails (to stop streaming early). */
  readonly #onTrouble = new Set<(why: Message | ToolkitError) => void>();

  constructor(stream: Duplex, opts: EnclaveConnectionOptions = {}) {
    this.#stream = stream;
    this.#tap = opts.tap;
    this.#decoder = new FrameDecoder({ maxFrame: opts.maxFrame ?? DEFAULT_MAX_FRAME });
    this.#writer = new FrameWriter(opts.maxFrame ?? DEFAULT_MAX_FRAME);
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('end', () => {
      try {
        this.#decoder.end();
        this.#fail(new ToolkitError('ERR_JOB_FAILED', 'the worker closed the connection', { reason: 'closed' }));
      } catch (e) {
        this.#fail(asToolkit(e));
      }
    });
    stream.on('error', (e: NodeJS.ErrnoException) =>
      this.#fail(new ToolkitError('ERR_JOB_FAILED', `connection to the worker failed: ${e.code ?? e.message}`, { reason: 'transport', cause: e })),
    );
    stream.on('close', () => this.#fail(new ToolkitError('ERR_JOB_FAILED', 'the connection to the worker closed', { reason: 'closed' })));
    stream.on('drain', () => {
      const w = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const f of w) f();
    });
  }

  /** The channel's terminal failure, if any. */
  get failure(): ToolkitError | undefined {
    return this.#failure;
  }

  set maxFrame(n: number) {
    this.#decoder.maxFrame = n;
    this.#writer.maxFrame = n;
  }

  onTrouble(f: (why: Message | ToolkitError) => void): () => void {
    this.#onTrouble.add(f);
    return () => this.#onTrouble.delete(f);
  }

  #onData(chunk: Buffer): void {
    if (this.#failure) return;
    const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
    this.#tap?.('in', bytes);
    let msgs: Message[];
    try {
      msgs = this.#decoder.push(bytes);
      for (const m of msgs) this.#ids.check(m.id);
    } catch (e) {
      this.#fail(asToolkit(e));
      this.#stream.destroy();
      return;
    }
    for (const m of msgs) {
      if (m.t === 'error' || m.t === 'refusal') for (const f of this.#onTrouble) f(m);
      const w = this.#waiters.shift();
      if (w) w.resolve(m);
      else this.#queue.push(m);
    }
  }

  #fail(e: ToolkitError): void {
    if (this.#failure) return;
    this.#failure = e;
    for (const f of this.#onTrouble) f(e);
    for (const w of this.#waiters.splice(0)) w.reject(e);
    const d = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const f of d) f();
  }

  /** The next incoming message, or the channel's failure; `timeoutMs` bounds the wait. */
  next(timeoutMs?: number): Promise<Message> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<Message>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const entry = {
        resolve: (m: Message) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          const i = this.#waiters.indexOf(entry);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(new ToolkitError('ERR_JOB_FAILED', `the worker did not answer within ${timeoutMs} ms`, { reason: 'timeout' }));
        }, timeoutMs);
      }
      this.#waiters.push(entry);
    });
  }

  /** Send one message; resolves once the stream can take more (backpressure). */
  async send(msg: Outgoing): Promise<void> {
    if (this.#failure) throw this.#failure;
    const frame = this.#writer.encode(msg);
    this.#tap?.('out', frame);
    if (!this.#stream.write(frame)) {
      await new Promise<void>((r) => this.#drainWaiters.push(r));
      if (this.#failure) throw this.#failure;
    }
  }

  /** Send records [from, to) of `batch` as one records message, with the same backpressure as `send`. */
  async sendRecords(jobId: string, seq: number, batch: RecordBatch, from?: number, to?: number): Promise<void> {
    if (this.#failure) throw this.#failure;
    const frame = this.#writer.encodeRecords(jobId, seq, batch, from, to);
    this.#tap?.('out', frame);
    if (!this.#stream.write(frame)) {
      await new Promise<void>((r) => this.#drainWaiters.push(r));
      if (this.#failure) throw this.#failure;
    }
  }

  /** Half-close our side and release the stream. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#fail(new ToolkitError('ERR_JOB_FAILED', 'connection closed by the host', { reason: 'closed' }));
    this.#stream.destroy();
  }
}

function asToolkit(e: unknown): ToolkitError {
  if (e instanceof ToolkitError) return e;
  return new ToolkitError('ERR_PROTOCOL', 'unreadable frame from the worker', { reason: 'internal', cause: e });
}

/** What `probeWorker` saw: the hello evidence (unverified: the caller verifies it) and the status. */
export interface WorkerProbe {
  /** The nonce sent in hello, which the evidence must carry. */
  nonce: Uint8Array;
  evidence: Uint8Array;
  /** The worker's key beside the evidence (SEV-SNP binds it only as a digest). */
  publicKey?: Uint8Array;
  /** The worker's answer to status_request, or undefined from a worker that has no status. */
  status?: Omit<StatusMessage, 't' | 'id'>;
  /** Milliseconds from connect to the attestation. */
  helloMs: number;
}

/**
 * An operator's health check over one connection: hello with a fresh nonce, the attestation, then
 * `status_request` (a worker that predates it answers with an error, reported as no status). Sends
 * no credentials, no job. Throws ERR_JOB_FAILED (`connect`, `timeout`, `closed`) or ERR_PROTOCOL.
 */
export async function probeWorker(
  connect: () => Promise<Duplex>,
  opts: { timeoutMs?: number; randomBytes?: (n: number) => Uint8Array; now?: () => number } = {},
): Promise<WorkerProbe> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const clock = opts.now ?? (() => performance.now());
  const t0 = clock();
  const conn = new EnclaveConnection(await connect());
  try {
    const nonce = (opts.randomBytes ?? ((n: number) => new Uint8Array(randomBytes(n))))(32);
    await conn.send({ t: 'hello', version: PROTOCOL_VERSION, nonce });
    const att = await conn.next(timeoutMs);
    if (att.t === 'error') throw new ToolkitError('ERR_JOB_FAILED', `the worker answered hello with ${att.code}: ${att.message}`, { reason: att.code });
    if (att.t !== 'attestation') throw new ToolkitError('ERR_PROTOCOL', `expected attestation, got ${att.t}`, { reason: 'state' });
    const probe: WorkerProbe = { nonce, evidence: att.evidence, ...(att.publicKey ? { publicKey: att.publicKey } : {}), helloMs: clock() - t0 };
    await conn.send({ t: 'status_request' });
    const st = await conn.next(timeoutMs).catch((e: unknown) => {
      // A worker without status support closes after its error frame; that is not a failure of the probe.
      if (e instanceof ToolkitError && e.code === 'ERR_JOB_FAILED' && e.reason === 'closed') return undefined;
      throw e;
    });
    if (st?.t === 'status') {
      const { t: _t, id: _id, ...rest } = st;
      probe.status = rest;
    } else if (st !== undefined && st.t !== 'error') throw new ToolkitError('ERR_PROTOCOL', `expected status, got ${st.t}`, { reason: 'state' });
    return probe;
  } finally {
    conn.close();
  }
}
