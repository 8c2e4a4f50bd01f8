/**
 * AF_UNIX and AF_VSOCK stream sockets as Node streams. The C++ side only moves bytes and reports
 * readiness; everything a caller sees (Duplex semantics, backpressure, half-close, error shapes,
 * argument checks) lives here, and takes the binding as a constructor argument so it can be tested
 * without the compiled addon.
 */
import { Duplex } from 'node:stream';
import { EventEmitter } from 'node:events';
import type { SockHandle, SocketBinding } from './binding.js';
import { requireBinding } from './binding.js';
import { NativeError, fromSystemError } from './errors.js';

/** VMADDR_CID_ANY: listen on every CID of this machine. */
export const VMADDR_CID_ANY = 0xffffffff;
/** VMADDR_PORT_ANY: let the kernel pick a port. */
export const VMADDR_PORT_ANY = 0xffffffff;
/** VMADDR_CID_HOST: the parent instance as seen from a Nitro enclave's point of view is CID 3; 2 is the host. */
export const VMADDR_CID_HOST = 2;
/** sun_path holds 108 bytes including the terminating NUL. */
export const UNIX_PATH_MAX = 107;

export type Endpoint = { kind: 'unix'; path: string } | { kind: 'vsock'; cid: number; port: number };

export interface StreamOptions {
  /** Like net.Socket: when false (default), the writable side ends once the peer's side has ended. */
  allowHalfOpen?: boolean;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
}

export interface ListenOptions extends StreamOptions {
  /** listen(2) backlog; default 511 as in Node's net. */
  backlog?: number;
}

function u32(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`"${name}" expected an integer in ${min}..${max}, got ${String(v)}`);
  }
  return v;
}

function checkUnixPath(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('"path" expected a non-empty string');
  if (path.includes('\0')) throw new RangeError('"path" must not contain NUL (abstract sockets are not supported)');
  const n = Buffer.byteLength(path);
  if (n > UNIX_PATH_MAX) throw new RangeError(`"path" expected at most ${UNIX_PATH_MAX} bytes, got length=${n}`);
  return path;
}

function checkBacklog(b: unknown): number {
  return b === undefined ? 511 : u32('backlog', b, 1, 65535);
}

/**
 * Parses `unix:/path`, `vsock:<cid>:<port>` or `vsock:ANY:<port>` (decimal numbers only). The
 * result is validated for listening or connecting by the functions that take it.
 */
export function parseEndpoint(text: string): Endpoint {
  if (typeof text !== 'string') throw new TypeError('"endpoint" expected a string');
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    try {
      return { kind: 'unix', path: checkUnixPath(path) };
    } catch (e) {
      throw new NativeError('ERR_VSOCK_ENDPOINT_INVALID', `invalid unix endpoint: ${(e as Error).message}`);
    }
  }
  const m = /^vsock:(ANY|0|[1-9][0-9]{0,9}):(0|[1-9][0-9]{0,9})$/.exec(text);
  if (m) {
    const cid = m[1] === 'ANY' ? VMADDR_CID_ANY : Number(m[1]);
    const port = Number(m[2]);
    if (cid <= 0xffffffff && port <= 0xffffffff) return { kind: 'vsock', cid, port };
  }
  throw new NativeError(
    'ERR_VSOCK_ENDPOINT_INVALID',
    'invalid endpoint: expected unix:<path>, vsock:<cid>:<port> or vsock:ANY:<port> (decimal, each at most 4294967295)',
  );
}

export function formatEndpoint(ep: Endpoint): string {
  return ep.kind === 'unix' ? `unix:${ep.path}` : `vsock:${ep.cid === VMADDR_CID_ANY ? 'ANY' : ep.cid}:${ep.port}`;
}

/** A connected socket as a Duplex. Backpressure is real: the addon stops reading while push() says so. */
export class NativeStream extends Duplex {
  #h: SockHandle | null;
  #events: SocketBinding['socketEvents'];
  #reading = false;
  #pendingWrite: ((err?: Error | null) => void) | null = null;
  bytesRead = 0;
  bytesWritten = 0;

  /** Not for direct use: streams come from connect*() and a server's 'connection' event. */
  constructor(handle: SockHandle, events: SocketBinding['socketEvents'], opts: StreamOptions = {}) {
    super({
      allowHalfOpen: opts.allowHalfOpen ?? false,
      readableHighWaterMark: opts.readableHighWaterMark ?? 1024 * 1024,
      writableHighWaterMark: opts.writableHighWaterMark ?? 1024 * 1024,
    });
    this.#h = handle;
    this.#events = events;
    handle.start((type, err, a, n) => this.#onEvent(type, err, a, n));
  }

  /** Like net.Socket: an unref'ed stream does not keep the process alive by itself. */
  ref(): this {
    this.#h?.ref();
    return this;
  }

  unref(): this {
    this.#h?.unref();
    return this;
  }

  /** Our own end's address as the kernel reports it (unix path or vsock cid/port). */
  address(): ReturnType<SockHandle['address']> {
    return this.#h?.address() ?? null;
  }

  #onEvent(type: number, err: Error | undefined, a: unknown, n: number | undefined): void {
    if (type === this.#events.READ) {
      if (err) {
        this.destroy(fromSystemError(err));
        return;
      }
      if (a === undefined) {
        this.#reading = false;
        this.push(null);
        return;
      }
      const buf = a as Buffer;
      const chunk = n !== undefined && n !== buf.length ? buf.subarray(0, n) : buf;
      this.bytesRead += chunk.length;
      if (!this.push(chunk) && this.#reading) {
        this.#reading = false;
        this.#h?.readStop();
      }
      return;
    }
    if (type === this.#events.WRITE) {
      const cb = this.#pendingWrite;
      this.#pendingWrite = null;
      if (cb) cb(err ? fromSystemError(err) : null);
    }
  }

  override _read(): void {
    if (this.#reading || !this.#h) return;
    this.#reading = true;
    this.#h.readStart();
  }

  #send(chunks: Uint8Array[], size: number, cb: (err?: Error | null) => void): void {
    if (!this.#h) {
      cb(new NativeError('EBADF', 'write EBADF: socket is closed', { syscall: 'write' }));
      return;
    }
    const r = this.#h.write(chunks);
    if (r === 0) {
      this.bytesWritten += size;
      cb(null);
    } else if (r === 1) {
      this.bytesWritten += size;
      this.#pendingWrite = cb;
    } else {
      cb(fromSystemError(r));
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#send([chunk], chunk.length, cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    const list: Uint8Array[] = new Array(chunks.length);
    let size = 0;
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!.chunk;
      list[i] = c;
      size += c.length;
    }
    this.#send(list, size, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    const e = this.#h?.shutdown();
    // A peer that is already gone makes shutdown fail with ENOTCONN; the stream ends all the same.
    if (e && (e as { code?: string }).code !== 'ENOTCONN') cb(fromSystemError(e));
    else cb(null);
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    const h = this.#h;
    this.#h = null;
    this.#pendingWrite = null;
    h?.close();
    cb(err);
  }
}

/** A listening socket; emits 'connection' (NativeStream), 'error' and 'close'. */
export class NativeServer extends EventEmitter {
  #h: SockHandle | null;
  readonly #addr: ReturnType<SockHandle['address']>;

  constructor(handle: SockHandle, events: SocketBinding['socketEvents'], opts: StreamOptions = {}) {
    super();
    this.#h = handle;
    handle.start((type, err, a) => {
      if (type !== events.CONNECTION) return;
      if (err) {
        this.emit('error', fromSystemError(err));
        return;
      }
      this.emit('connection', new NativeStream(a as SockHandle, events, opts));
    });
    this.#addr = handle.address();
  }

  /** `{family:'unix', path}` or `{family:'vsock', cid, port}` (the port the kernel chose, for port ANY). */
  address(): ReturnType<SockHandle['address']> {
    return this.#addr;
  }

  /** Stops accepting (and unlinks a unix socket path). Open connections stay open, as with net.Server. */
  close(cb?: () => void): this {
    const h = this.#h;
    this.#h = null;
    if (h) {
      h.close();
      process.nextTick(() => this.emit('close'));
    }
    if (cb) process.nextTick(cb);
    return this;
  }

  /** Like net.Server: an unref'ed server does not keep the process alive by itself. */
  ref(): this {
    this.#h?.ref();
    return this;
  }

  unref(): this {
    this.#h?.unref();
    return this;
  }

  get listening(): boolean {
    return this.#h !== null;
  }
}

/**
 * The socket API over a given binding. `defaultSockets()` uses the compiled addon; tests pass a fake.
 */
export class SocketApi {
  readonly #binding: SocketBinding;

  constructor(binding: SocketBinding) {
    this.#binding = binding;
  }

  listenUnix(path: string, opts: ListenOptions = {}): NativeServer {
    checkUnixPath(path);
    const backlog = checkBacklog(opts.backlog);
    const b = this.#binding;
    return this.#server(() => b.listen('unix', path, backlog, noop), opts);
  }

  /** cid defaults to VMADDR_CID_ANY; port VMADDR_PORT_ANY lets the kernel choose. */
  listenVsock(port: number, opts: ListenOptions & { cid?: number } = {}): NativeServer {
    u32('port', port, 0, 0xffffffff);
    const cid = opts.cid === undefined ? VMADDR_CID_ANY : u32('cid', opts.cid, 0, 0xffffffff);
    const backlog = checkBacklog(opts.backlog);
    const b = this.#binding;
    return this.#server(() => b.listen('vsock', cid, port, backlog, noop), opts);
  }

  connectUnix(path: string, opts: StreamOptions = {}): Promise<NativeStream> {
    checkUnixPath(path);
    const b = this.#binding;
    return this.#connect((cb) => b.connect('unix', path, cb), opts);
  }

  /** cid must name a peer: 1 (local) .. 0xfffffffe; 0 (hypervisor) and ANY are refused. */
  connectVsock(cid: number, port: number, opts: StreamOptions = {}): Promise<NativeStream> {
    u32('cid', cid, 1, 0xfffffffe);
    u32('port', port, 0, 0xfffffffe);
    const b = this.#binding;
    return this.#connect((cb) => b.connect('vsock', cid, port, cb), opts);
  }

  listen(endpoint: Endpoint | string, opts: ListenOptions = {}): NativeServer {
    const ep = typeof endpoint === 'string' ? parseEndpoint(endpoint) : endpoint;
    return ep.kind === 'unix' ? this.listenUnix(ep.path, opts) : this.listenVsock(ep.port, { ...opts, cid: ep.cid });
  }

  connect(endpoint: Endpoint | string, opts: StreamOptions = {}): Promise<NativeStream> {
    const ep = typeof endpoint === 'string' ? parseEndpoint(endpoint) : endpoint;
    return ep.kind === 'unix' ? this.connectUnix(ep.path, opts) : this.connectVsock(ep.cid, ep.port, opts);
  }

  #server(open: () => SockHandle, opts: StreamOptions): NativeServer {
    let h: SockHandle;
    try {
      h = open();
    } catch (e) {
      throw fromSystemError(e);
    }
    return new NativeServer(h, this.#binding.socketEvents, opts);
  }

  #connect(open: (cb: (type: number, err: Error | undefined) => void) => SockHandle, opts: StreamOptions): Promise<NativeStream> {
    const events = this.#binding.socketEvents;
    return new Promise((resolve, reject) => {
      let h: SockHandle | undefined;
      try {
        h = open((type, err) => {
          if (type !== events.CONNECT || !h) return;
          if (err) {
            h.close();
            reject(fromSystemError(err));
          } else {
            resolve(new NativeStream(h, events, opts));
          }
        });
      } catch (e) {
        reject(fromSystemError(e));
      }
    });
  }
}

function noop(): void {}

let defaultApi: SocketApi | undefined;
function api(): SocketApi {
  defaultApi ??= new SocketApi(requireBinding('AF_VSOCK/AF_UNIX native sockets'));
  return defaultApi;
}

export function listenUnix(path: string, opts?: ListenOptions): NativeServer {
  return api().listenUnix(path, opts);
}
export function listenVsock(port: number, opts?: ListenOptions & { cid?: number }): NativeServer {
  return api().listenVsock(port, opts);
}
/** Argument errors and a missing addon throw synchronously; OS errors reject. */
export function connectUnix(path: string, opts?: StreamOptions): Promise<NativeStream> {
  return api().connectUnix(path, opts);
}
export function connectVsock(cid: number, port: number, opts?: StreamOptions): Promise<NativeStream> {
  return api().connectVsock(cid, port, opts);
}
export function listen(endpoint: Endpoint | string, opts?: ListenOptions): NativeServer {
  return api().listen(endpoint, opts);
}
export function connect(endpoint: Endpoint | string, opts?: StreamOptions): Promise<NativeStream> {
  return api().connect(endpoint, opts);
}
