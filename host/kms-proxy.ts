/**
 * The host's KMS proxy, in the manner of AWS's vsock-proxy: the enclave has no network, so it opens a
 * stream (vsock, or a Unix socket in simulator mode) to the host, and the host forwards the bytes of that
 * connection, untouched, to one TCP endpoint. TLS runs end to end between the enclave and KMS, so the
 * proxy never sees a key or a plaintext; what it controls is *where* the bytes may go: only to an
 * allow-listed `HOST:PORT`, checked before the first connection is accepted.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { existsSync, unlinkSync, lstatSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { ToolkitError } from '../attestation/errors.js';

export interface HostPort {
  host: string;
  port: number;
}

/** Where the proxy listens: a Unix socket path, or a vsock port (any CID) on a Nitro parent instance. */
export type ProxyListen = { kind: 'unix'; path: string } | { kind: 'vsock'; port: number; cid?: number };

/** A listening socket that hands each accepted connection to `onConnection`; injectable for vsock. */
export interface ProxyListener {
  close(): Promise<void>;
}
export type ListenFn = (
  at: ProxyListen,
  onConnection: (stream: Duplex) => void,
) => Promise<ProxyListener>;

export interface KmsProxyOptions {
  listen: ProxyListen;
  /** The single TCP endpoint this proxy forwards to (vsock-proxy's `REMOTE_ADDR REMOTE_PORT`). */
  target: HostPort;
  /** Endpoints that may be reached; `target` must be one of them, or the proxy refuses to start. */
  allow: readonly HostPort[];
  /** Concurrent connections; one more is closed at once (default 32). */
  maxConnections?: number;
  /** Upstream connect timeout in ms (default 5000). */
  connectTimeoutMs?: number;
  /** A connection idle for this long in both directions is closed (default 120000 ms). */
  idleTimeoutMs?: number;
  /** Listener for vsock (the native addon); Unix sockets use node:net unless this is given. */
  listenFn?: ListenFn;
  /** One-line events without payload bytes (connection opened/closed/refused). */
  log?: (line: string) => void;
}

export interface KmsProxy {
  /** Where it listens, as given. */
  readonly listen: ProxyListen;
  readonly target: HostPort;
  /** Connections currently forwarded. */
  active(): number;
  /** Stop accepting, close every forwarded connection, remove the Unix socket file. */
  close(): Promise<void>;
}

function configError(message: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_CONFIG_INVALID', message, cause === undefined ? {} : { cause });
}

/** `HOST:PORT` (IPv6 in brackets: `[::1]:443`) -> HostPort, or a config error naming the input. */
export function parseHostPort(text: string): HostPort {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
    throw configError(`expected HOST:PORT with a port in 1..65535, got ${JSON.stringify(text.slice(0, 200))}`);
  }
  return { host: (m[1] ?? m[2]!).toLowerCase(), port };
}

/** The TCP endpoint an `http(s)://host[:port]` URL reaches (the port defaulted by scheme). */
export function hostPortOfUrl(url: string): HostPort {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw configError(`not a URL: ${JSON.stringify(url.slice(0, 200))}`, e);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw configError(`KMS endpoint must be http(s), got ${u.protocol}`);
  const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return { host, port: u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80 };
}

/**
 * Parse an allowlist in vsock-proxy's YAML format:
 * ```yaml
 * allowlist:
 * - {address: kms.us-east-1.amazonaws.com, port: 443}
 * ```
 * Unknown keys are refused (a typo must not silently widen or narrow the list).
 */
export function parseAllowlistYaml(text: string): HostPort[] {
  let doc: unknown;
  try {
    doc = parseYaml(text, { strict: true, uniqueKeys: true, maxAliasCount: 0 });
  } catch (e) {
    throw configError('allowlist YAML does not parse', e);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw configError('allowlist YAML must be a mapping with key "allowlist"');
  const keys = Object.keys(doc);
  if (keys.length !== 1 || keys[0] !== 'allowlist') throw configError(`allowlist YAML: expected only key "allowlist", got ${keys.join(', ') || 'none'}`);
  const list = (doc as { allowlist: unknown }).allowlist;
  if (!Array.isArray(list)) throw configError('allowlist YAML: "allowlist" must be a list');
  return list.map((item: unknown, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw configError(`allowlist[${i}] must be a mapping`);
    const extra = Object.keys(item).filter((k) => k !== 'address' && k !== 'port');
    if (extra.length > 0) throw configError(`allowlist[${i}]: unknown key ${extra[0]}`);
    const { address, port } = item as { address?: unknown; port?: unknown };
    if (typeof address !== 'string' || address.length === 0 || address.length > 253) throw configError(`allowlist[${i}].address must be a host name or address`);
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw configError(`allowlist[${i}].port must be an integer in 1..65535`);
    return parseHostPort(address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);
  });
}

export function isAllowed(target: HostPort, allow: readonly HostPort[]): boolean {
  return allow.some((a) => a.port === target.port && a.host === target.host.toLowerCase());
}

/** Listen on a Unix socket with node:net; a stale socket file is replaced, any other file is not. */
export const listenUnixNet: ListenFn = async (at, onConnection) => {
  if (at.kind !== 'unix') throw configError('node:net listener serves Unix sockets only; vsock needs the native addon');
  if (existsSync(at.path)) {
    if (!lstatSync(at.path).isSocket()) throw configError(`${at.path} exists and is not a socket`);
    unlinkSync(at.path);
  }
  const server: Server = createServer({ allowHalfOpen: true }, (s) => onConnection(s));
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
        server.close(() => resolve());
      }),
  };
};

/**
 * Start forwarding. Throws ERR_CONFIG_INVALID, before listening, when `target` is not allow-listed.
 */
export async function startKmsProxy(opts: KmsProxyOptions): Promise<KmsProxy> {
  const target = { host: opts.target.host.toLowerCase(), port: opts.target.port };
  if (!isAllowed(target, opts.allow)) {
    throw new ToolkitError(
      'ERR_CONFIG_INVALID',
      `KMS proxy target ${target.host}:${target.port} is not in the allowlist (${opts.allow.map((a) => `${a.host}:${a.port}`).join(', ') || 'empty'})`,
      { reason: 'not_allowed' },
    );
  }
  const maxConnections = opts.maxConnections ?? 32;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 120_000;
  const log = opts.log ?? (() => {});
  const live = new Set<{ down: Duplex; up: Socket }>();
  let closing = false;
  let seq = 0;

  const onConnection = (down: Duplex): void => {
    const id = ++seq;
    if (closing || live.size >= maxConnections) {
      log(`kms-proxy: connection ${id} refused (${closing ? 'shutting down' : `limit ${maxConnections} reached`})`);
      down.destroy();
      return;
    }
    const up = createConnection({ host: target.host, port: target.port, allowHalfOpen: true });
    const pair = { down, up };
    live.add(pair);
    let done = false;
    const finish = (why: string) => {
      if (done) return;
      done = true;
      clearTimeout(connectTimer);
      live.delete(pair);
      up.destroy();
      down.destroy();
      log(`kms-proxy: connection ${id} closed (${why})`);
    };
    const connectTimer = setTimeout(() => finish(`KMS at ${target.host}:${target.port} did not accept within ${connectTimeoutMs} ms`), connectTimeoutMs);
    up.setTimeout(idleTimeoutMs, () => finish('idle'));
    let connected = false;
    up.once('connect', () => {
      connected = true;
      clearTimeout(connectTimer);
      log(`kms-proxy: connection ${id} -> ${target.host}:${target.port}`);
    });
    // pipe() gives backpressure both ways; half-close is propagated so TLS close_notify is delivered.
    down.pipe(up);
    up.pipe(down);
    up.on('error', (e: NodeJS.ErrnoException) =>
      finish(connected ? `upstream ${target.host}:${target.port} ${e.code ?? 'error'}` : `cannot reach KMS at ${target.host}:${target.port}: ${e.code ?? 'error'}`),
    );
    down.on('error', (e: NodeJS.ErrnoException) => finish(`downstream ${e.code ?? 'error'}`));
    up.on('close', () => finish('upstream closed'));
    down.on('close', () => finish('downstream closed'));
  };

  const listenFn = opts.listenFn ?? listenUnixNet;
  const listener = await listenFn(opts.listen, onConnection);
  return {
    listen: opts.listen,
    target,
    active: () => live.size,
    async close() {
      if (closing) return;
      closing = true;
      for (const p of [...live]) {
        p.up.destroy();
        p.down.destroy();
      }
      live.clear();
      await listener.close();
      if (opts.listen.kind === 'unix') {
        try {
          unlinkSync(opts.listen.path);
        } catch {
          // already gone: node:net removes it on close on some platforms
        }
      }
    },
  };
}
