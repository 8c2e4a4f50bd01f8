/**
 * The Nitro Secure Module: CBOR requests and responses (serde_cbor encodings of the nsm-api Rust
 * enums) over a transport. `NsmDeviceTransport` is the real /dev/nsm ioctl; a simulator implements
 * `NsmTransport` and gets the same client.
 */
import { Decoder, Encoder } from 'cbor-x';
import type { DeviceBinding } from './binding.js';
import { requireBinding } from './binding.js';
import { NativeError, fromSystemError } from './errors.js';
import type { NativeErrorCode } from './errors.js';

export const NSM_DEVICE = '/dev/nsm';
export const NSM_REQUEST_MAX_SIZE = 0x1000;
export const NSM_RESPONSE_MAX_SIZE = 0x3000;
/** nsm-api bounds user_data, nonce and public_key to 1024 bytes each. */
export const NSM_ATTESTATION_FIELD_MAX = 1024;
export const NSM_MAX_PCRS = 32;

/** One request/response exchange with an NSM (device or simulator). */
export interface NsmTransport {
  request(req: Uint8Array): Promise<Uint8Array>;
}

export type NsmErrorName =
  | 'InvalidArgument'
  | 'InvalidIndex'
  | 'InvalidResponse'
  | 'ReadOnlyIndex'
  | 'InvalidOperation'
  | 'BufferTooSmall'
  | 'InputTooLarge'
  | 'InternalError';

const NSM_ERROR_CODES: Record<NsmErrorName, NativeErrorCode> = {
  InvalidArgument: 'ERR_NSM_INVALID_ARGUMENT',
  InvalidIndex: 'ERR_NSM_INVALID_INDEX',
  InvalidResponse: 'ERR_NSM_INVALID_RESPONSE',
  ReadOnlyIndex: 'ERR_NSM_READ_ONLY_INDEX',
  InvalidOperation: 'ERR_NSM_INVALID_OPERATION',
  BufferTooSmall: 'ERR_NSM_BUFFER_TOO_SMALL',
  InputTooLarge: 'ERR_NSM_INPUT_TOO_LARGE',
  InternalError: 'ERR_NSM_INTERNAL_ERROR',
};

/** An error the NSM reported (`{"Error": name}`), or a transport/response failure. */
export class NsmError extends NativeError {
  /** The NSM's own error name when it sent one, e.g. `InvalidIndex`. */
  readonly nsmError: string | undefined;
  constructor(code: NativeErrorCode, message: string, opts: { nsmError?: string; cause?: unknown; errno?: number; syscall?: string } = {}) {
    super(code, message, opts);
    this.nsmError = opts.nsmError;
  }
}

export type NsmRequest =
  | { type: 'DescribeNSM' }
  | { type: 'GetRandom' }
  | { type: 'Attestation'; userData?: Uint8Array | null; nonce?: Uint8Array | null; publicKey?: Uint8Array | null }
  | { type: 'DescribePCR'; index: number }
  | { type: 'ExtendPCR'; index: number; data: Uint8Array }
  | { type: 'LockPCR'; index: number }
  | { type: 'LockPCRs'; range: number };

export interface NsmDescription {
  versionMajor: number;
  versionMinor: number;
  versionPatch: number;
  moduleId: string;
  maxPcrs: number;
  lockedPcrs: number[];
  digest: string;
}

// Plain maps with text keys; no records or structured-clone tags on either side.
const encoder = new Encoder({ useRecords: false, variableMapSize: true, tagUint8Array: false } as ConstructorParameters<typeof Encoder>[0]);
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true, structuredClone: false, bundleStrings: false } as ConstructorParameters<typeof Decoder>[0]);

// cbor-x writes Buffers as plain byte strings (a bare Uint8Array would get a typed-array tag).
function bstr(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function optBytes(name: string, v: Uint8Array | null | undefined): Buffer | null {
  if (v === undefined || v === null) return null;
  if (!(v instanceof Uint8Array)) throw new TypeError(`"${name}" expected Uint8Array or null`);
  if (v.length > NSM_ATTESTATION_FIELD_MAX) throw new RangeError(`"${name}" expected at most 1024 bytes, got length=${v.length}`);
  return bstr(v);
}

function u16(name: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`"${name}" expected an integer in 0..${max}, got ${String(v)}`);
  return v;
}

/** The exact CBOR the Rust nsm-api would send for this request (field order is the struct order). */
export function encodeNsmRequest(req: NsmRequest): Uint8Array {
  let value: unknown;
  switch (req.type) {
    case 'DescribeNSM':
    case 'GetRandom':
      value = req.type;
      break;
    case 'Attestation':
      value = { Attestation: { user_data: optBytes('userData', req.userData), nonce: optBytes('nonce', req.nonce), public_key: optBytes('publicKey', req.publicKey) } };
      break;
    case 'DescribePCR':
      value = { DescribePCR: { index: u16('index', req.index, 0xffff) } };
      break;
    case 'ExtendPCR': {
      if (!(req.data instanceof Uint8Array)) throw new TypeError('"data" expected Uint8Array');
      value = { ExtendPCR: { index: u16('index', req.index, 0xffff), data: bstr(req.data) } };
      break;
    }
    case 'LockPCR':
      value = { LockPCR: { index: u16('index', req.index, 0xffff) } };
      break;
    case 'LockPCRs':
      value = { LockPCRs: { range: u16('range', req.range, 0xffff) } };
      break;
    default:
      throw new TypeError(`unknown NSM request type ${String((req as { type?: unknown }).type)}`);
  }
  const out = new Uint8Array(encoder.encode(value));
  if (out.length > NSM_REQUEST_MAX_SIZE) throw new NsmError('ERR_NSM_INPUT_TOO_LARGE', `NSM request of ${out.length} bytes exceeds 4096`);
  return out;
}

function bad(msg: string, cause?: unknown): NsmError {
  return new NsmError('ERR_NSM_RESPONSE_INVALID', `NSM response invalid: ${msg}`, { cause });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function bytesField(o: Record<string, unknown>, k: string, max = NSM_RESPONSE_MAX_SIZE): Uint8Array {
  const v = o[k];
  if (!(v instanceof Uint8Array)) throw bad(`"${k}" is not a byte string`);
  if (v.length > max) throw bad(`"${k}" is too long`);
  return new Uint8Array(v);
}

function intField(o: Record<string, unknown>, k: string, max = 0xffff): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw bad(`"${k}" is not an integer in 0..${max}`);
  return v;
}

/**
 * Decodes a response and checks it answers `expected`. `{"Error": name}` becomes an NsmError with
 * the matching ERR_NSM_* code; anything malformed becomes ERR_NSM_RESPONSE_INVALID.
 */
export function decodeNsmResponse(bytes: Uint8Array, expected: NsmRequest['type']): { variant: string; body: Record<string, unknown> | null } {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" expected Uint8Array');
  if (bytes.length === 0 || bytes.length > NSM_RESPONSE_MAX_SIZE) throw bad(`length ${bytes.length}`);
  let v: unknown;
  try {
    v = decoder.decode(bstr(bytes));
  } catch (e) {
    throw bad('not CBOR', e);
  }
  let variant: string;
  let body: unknown = null;
  if (typeof v === 'string') {
    variant = v;
  } else if (isRecord(v)) {
    const keys = Object.keys(v);
    if (keys.length !== 1) throw bad('expected a map with one variant');
    variant = keys[0]!;
    body = v[variant];
  } else {
    throw bad('expected a text string or a map');
  }
  if (variant === 'Error') {
    const name = typeof body === 'string' ? body : '';
    const code = Object.prototype.hasOwnProperty.call(NSM_ERROR_CODES, name) ? NSM_ERROR_CODES[name as NsmErrorName] : 'ERR_NSM_UNKNOWN_ERROR';
    throw new NsmError(code, `NSM returned error ${name || '(unnamed)'} for ${expected}`, { nsmError: name || undefined });
  }
  if (variant !== expected) throw bad(`answered ${variant.slice(0, 32)} to ${expected}`);
  const unit = expected === 'LockPCR' || expected === 'LockPCRs';
  if (unit) {
    if (body !== null) throw bad(`${expected} carries a body`);
    return { variant, body: null };
  }
  if (!isRecord(body)) throw bad(`${expected} body is not a map`);
  return { variant, body };
}

/** The NSM's calls over any transport (the device, or a simulator implementing NsmTransport). */
export class NsmClient {
  readonly #t: NsmTransport;
  constructor(transport: NsmTransport) {
    this.#t = transport;
  }

  async #call(req: NsmRequest): Promise<Record<string, unknown> | null> {
    const bytes = encodeNsmRequest(req);
    const resp = await this.#t.request(bytes);
    return decodeNsmResponse(resp, req.type).body;
  }

  /** The COSE_Sign1 attestation document. Each of userData, nonce, publicKey is at most 1024 bytes. */
  async attestation(opts: { userData?: Uint8Array | null; nonce?: Uint8Array | null; publicKey?: Uint8Array | null } = {}): Promise<Uint8Array> {
    const body = (await this.#call({ type: 'Attestation', ...opts }))!;
    const doc = bytesField(body, 'document');
    if (doc.length === 0) throw bad('empty document');
    return doc;
  }

  async describePcr(index: number): Promise<{ lock: boolean; data: Uint8Array }> {
    const body = (await this.#call({ type: 'DescribePCR', index }))!;
    if (typeof body.lock !== 'boolean') throw bad('"lock" is not a boolean');
    const data = bytesField(body, 'data', 64);
    return { lock: body.lock, data };
  }

  /** Extends PCR index with data; returns the new value. */
  async extendPcr(index: number, data: Uint8Array): Promise<Uint8Array> {
    const body = (await this.#call({ type: 'ExtendPCR', index, data }))!;
    return bytesField(body, 'data', 64);
  }

  async lockPcr(index: number): Promise<void> {
    await this.#call({ type: 'LockPCR', index });
  }

  /** Locks PCRs [0, range). */
  async lockPcrs(range: number): Promise<void> {
    await this.#call({ type: 'LockPCRs', range });
  }

  async describeNsm(): Promise<NsmDescription> {
    const b = (await this.#call({ type: 'DescribeNSM' }))!;
    const locked = b.locked_pcrs;
    if (!Array.isArray(locked) || locked.length > 0xffff) throw bad('"locked_pcrs" is not an array');
    const lockedPcrs = locked.map((x, i) => {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffff) throw bad(`"locked_pcrs"[${i}] is not a u16`);
      return x;
    });
    if (typeof b.module_id !== 'string' || b.module_id.length > 1024) throw bad('"module_id" is not a string');
    if (typeof b.digest !== 'string' || b.digest.length > 16) throw bad('"digest" is not a string');
    return {
      versionMajor: intField(b, 'version_major'),
      versionMinor: intField(b, 'version_minor'),
      versionPatch: intField(b, 'version_patch'),
      moduleId: b.module_id,
      maxPcrs: intField(b, 'max_pcrs'),
      lockedPcrs,
      digest: b.digest,
    };
  }

  /** Random bytes from the NSM (nsm-lib: up to 256 per call). */
  async getRandom(): Promise<Uint8Array> {
    const body = (await this.#call({ type: 'GetRandom' }))!;
    return bytesField(body, 'random', 4096);
  }
}

/** /dev/nsm through the addon's NSM_IOCTL_RAW. The device path is injectable. */
export class NsmDeviceTransport implements NsmTransport {
  readonly path: string;
  readonly #binding: DeviceBinding | undefined;

  constructor(opts: { path?: string; binding?: DeviceBinding } = {}) {
    this.path = opts.path ?? NSM_DEVICE;
    this.#binding = opts.binding;
  }

  async request(req: Uint8Array): Promise<Uint8Array> {
    if (!(req instanceof Uint8Array)) throw new TypeError('"req" expected Uint8Array');
    if (req.length === 0 || req.length > NSM_REQUEST_MAX_SIZE) throw new NsmError('ERR_NSM_INPUT_TOO_LARGE', `NSM request must be 1..4096 bytes, got ${req.length}`);
    const b = this.#binding ?? requireBinding('the Nitro Secure Module (/dev/nsm)');
    try {
      return await b.nsmRequest(this.path, req);
    } catch (e) {
      const se = fromSystemError(e);
      if (se.syscall === 'open' && (se.code === 'ENOENT' || se.code === 'ENODEV' || se.code === 'ENXIO')) {
        throw new NsmError('ERR_NSM_UNAVAILABLE', `no Nitro Secure Module at ${this.path}: this is not a Nitro Enclave (or the nsm driver is not loaded)`, { cause: se, errno: se.errno, syscall: se.syscall });
      }
      if (se.code === 'EMSGSIZE') throw new NsmError('ERR_NSM_INPUT_TOO_LARGE', `NSM request too large (${se.message})`, { cause: se, errno: se.errno, syscall: se.syscall });
      throw new NsmError('ERR_NSM_DEVICE', `NSM device ${this.path} failed: ${se.message}`, { cause: se, errno: se.errno, syscall: se.syscall });
    }
  }
}

/** An NsmClient over /dev/nsm (or the given device path). */
export function openNsm(opts: { path?: string; binding?: DeviceBinding } = {}): NsmClient {
  return new NsmClient(new NsmDeviceTransport(opts));
}
