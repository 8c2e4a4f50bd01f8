/**
 * Loading the compiled addon. Importing this module never throws: when the .node file is missing or
 * fails to load (no compiler at install time, another platform), every native call throws
 * ERR_NATIVE_UNAVAILABLE naming the file it looked for and why loading failed, while the pure-Node
 * parts (AES-GCM fallback, configfs-tsm, the NSM CBOR codec) keep working.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { NativeError } from './errors.js';

/** One native socket. Opaque to callers; `native/socket.ts` drives it. */
export interface SockHandle {
  start(onevent: SockEventHandler): void;
  readStart(): void;
  readStop(): void;
  /** 0 = written, 1 = pending (a WRITE event follows), or an Error (not thrown). */
  write(chunks: Uint8Array[]): 0 | 1 | Error;
  shutdown(): Error | undefined;
  close(): void;
  address(): { family: 'unix'; path: string } | { family: 'vsock'; cid: number; port: number } | { family: 'unknown' } | null;
  fd(): number;
  ref(): void;
  unref(): void;
}

export type SockEventHandler = (type: number, err: Error | undefined, a?: unknown, n?: number) => void;

export interface SocketBinding {
  socketEvents: { CONNECTION: number; CONNECT: number; READ: number; WRITE: number };
  listen(family: 'unix', path: string, backlog: number, onevent: SockEventHandler): SockHandle;
  listen(family: 'vsock', cid: number, port: number, backlog: number, onevent: SockEventHandler): SockHandle;
  connect(family: 'unix', path: string, onevent: SockEventHandler): SockHandle;
  connect(family: 'vsock', cid: number, port: number, onevent: SockEventHandler): SockHandle;
}

export interface DeviceBinding {
  nsmRequest(path: string, request: Uint8Array): Promise<Uint8Array>;
  snpGetExtReport(path: string, reportData: Uint8Array, vmpl: number, certsLen: number): Promise<{ response: Uint8Array; certs: Uint8Array }>;
}

export interface GcmBinding {
  gcmDecryptBatch(key: Uint8Array, input: Uint8Array, table: Uint32Array, out: Uint8Array, ok: Uint8Array): number;
  gcmCeiling(key: Uint8Array, input: Uint8Array, table: Uint32Array, out: Uint8Array, ok: Uint8Array, reps: number): number;
}

export type NativeBinding = SocketBinding & DeviceBinding & GcmBinding & { abiVersion: number };

const ADDON = 'enclavekit_native.node';
let cached: { binding: NativeBinding | null; reason: string; tried: string[] } | undefined;

function tryLoad(): { binding: NativeBinding | null; reason: string; tried: string[] } {
  const here = dirname(fileURLToPath(import.meta.url));
  const require = createRequire(import.meta.url);
  // Source (native/) and compiled (dist/native/) layouts both reach the package root's build/.
  const explicit = process.env.ENCLAVEKIT_NATIVE_PATH;
  const candidates = explicit ? [resolve(explicit)] : [
    resolve(here, '..', 'build', 'Release', ADDON),
    resolve(here, '..', '..', 'build', 'Release', ADDON),
    resolve(here, '..', 'build', 'Debug', ADDON),
  ];
  let reason = 'not built';
  for (const file of candidates) {
    try {
      const b = require(file) as NativeBinding;
      if (b.abiVersion !== 1) {
        reason = `${file} has abiVersion ${String(b.abiVersion)}, expected 1 (rebuild it)`;
        continue;
      }
      return { binding: b, reason: '', tried: candidates };
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code !== 'MODULE_NOT_FOUND') reason = `${file}: ${(e as Error).message}`;
    }
  }
  return { binding: null, reason, tried: candidates };
}

/** The addon if it loaded, else null. Loads once, lazily. */
export function nativeBinding(): NativeBinding | null {
  cached ??= tryLoad();
  return cached.binding;
}

/** Whether the addon loaded, and if not, why. */
export function nativeStatus(): { available: boolean; reason: string } {
  cached ??= tryLoad();
  return { available: cached.binding !== null, reason: cached.reason };
}

/** The addon, or an ERR_NATIVE_UNAVAILABLE error naming what is missing. */
export function requireBinding(feature: string): NativeBinding {
  cached ??= tryLoad();
  if (cached.binding) return cached.binding;
  throw new NativeError(
    'ERR_NATIVE_UNAVAILABLE',
    `${feature} needs the enclavekit native addon (${ADDON}), which is not available: ${cached.reason}. ` +
      `Looked in ${cached.tried.join(', ')}. Build it with \`npm rebuild enclavekit\` (needs python3, make, a C++17 compiler).`,
  );
}
