/**
 * CBOR for the pipeline: one strict cbor-x decoder for frames, and a small deterministic encoder
 * (RFC 8949 section 4.2.1, "core deterministic encoding") for everything that is hashed or signed:
 * results, records in the dataset digest, audit entries.
 *
 * The deterministic value model is JSON-like: null, booleans, numbers, text strings, byte strings
 * (Uint8Array), arrays and plain objects with text keys. Numbers that are integers in the safe range
 * are encoded as the shortest integer; other finite numbers as the shortest float (f16, f32 or f64)
 * that preserves the value exactly. NaN, infinities, bigints, undefined, Maps and tagged values are
 * refused, so every accepted value has exactly one encoding.
 *
 * Canonical decoding is decode-then-re-encode: a byte string is canonical iff cbor-x's decoding of it
 * re-encodes to the same bytes. Duplicate keys, unsorted keys, long-form lengths, indefinite lengths,
 * tags, non-shortest floats and non-text keys all change the re-encoding, so one comparison catches
 * them all without a second hand-written parser.
 */
// The no-eval build: cbor-x's record extension compiles decoders with `new Function`; we need none of it.
import { Decoder } from 'cbor-x/decode-no-eval';
import { Encoder } from 'cbor-x';
import { ToolkitError, type ToolkitErrorCode } from '../../attestation/errors.js';

/** Explicit options: no records, no structured clone, no pack; byte strings stay byte strings. */
const decoder = new Decoder({
  useRecords: false,
  mapsAsObjects: true,
  structuredClone: false,
  pack: false,
  // 8-byte integers as numbers: safe ones round-trip; larger ones lose precision and then fail the
  // canonical and schema checks instead of surfacing as bigints.
  int64AsNumber: true,
} as ConstructorParameters<typeof Decoder>[0]);

const encoder = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  structuredClone: false,
  pack: false,
  tagUint8Array: false,
} as ConstructorParameters<typeof Encoder>[0]);

/** Decode one CBOR item from untrusted bytes. Any library throw becomes `code`. Output is `unknown`. */
export function decodeCbor(bytes: Uint8Array, code: ToolkitErrorCode, label: string): unknown {
  try {
    return decoder.decode(bytes);
  } catch (e) {
    throw new ToolkitError(code, `${label}: not a single well-formed CBOR item`, { cause: e, reason: 'cbor' });
  }
}

/** Fast, non-canonical encoding for frames (cbor-x). Values are our own, already validated. */
export function encodeCborFast(value: unknown): Uint8Array {
  return encoder.encode(value);
}

class Writer {
  buf: Uint8Array;
  view: DataView;
  pos = 0;
  constructor(size = 1024) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  reset(): void {
    this.pos = 0;
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  head(major: number, n: number): void {
    const m = major << 5;
    this.ensure(9);
    if (n < 24) this.buf[this.pos++] = m | n;
    else if (n < 0x100) {
      this.buf[this.pos++] = m | 24;
      this.buf[this.pos++] = n;
    } else if (n < 0x10000) {
      this.buf[this.pos++] = m | 25;
      this.view.setUint16(this.pos, n);
      this.pos += 2;
    } else if (n < 0x100000000) {
      this.buf[this.pos++] = m | 26;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    } else {
      this.buf[this.pos++] = m | 27;
      this.view.setUint32(this.pos, Math.floor(n / 0x100000000));
      this.view.setUint32(this.pos + 4, n >>> 0);
      this.pos += 8;
    }
  }
}

const utf8 = new TextEncoder();
const keyCache = new Map<string, Uint8Array>();

function keyBytes(k: string): Uint8Array {
  let b = keyCache.get(k);
  if (b === undefined) {
    b = utf8.encode(k);
    // Record shapes repeat; a bounded cache keeps key encoding off the hot path without growing forever.
    if (keyCache.size < 4096) keyCache.set(k, b);
  }
  return b;
}

/** RFC 8949 4.2.1 order for text keys: shorter encoding first, then bytewise. */
function compareKeys(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

const f32 = new Float32Array(1);

/** f16 bits for `x` when the conversion is exact, else -1. */
function toHalfExact(x: number): number {
  if (x === 0) return Object.is(x, -0) ? 0x8000 : 0;
  const sign = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  let exp = Math.floor(Math.log2(a));
  // log2 can be off by one near powers of two
  if (2 ** exp > a) exp--;
  else if (2 ** (exp + 1) <= a) exp++;
  if (exp > 15) return -1;
  if (exp >= -14) {
    const mant = a / 2 ** exp - 1; // [0,1)
    const m = mant * 1024;
    if (!Number.isInteger(m)) return -1;
    return sign | ((exp + 15) << 10) | m;
  }
  const m = a / 2 ** -24; // subnormal: value = m * 2^-24
  if (!Number.isInteger(m) || m >= 1024) return -1;
  return sign | m;
}

function writeNumber(w: Writer, x: number, path: string): void {
  if (!Number.isFinite(x)) throw new TypeError(`canonical CBOR: non-finite number at ${path}`);
  if (Number.isInteger(x) && Number.isSafeInteger(x)) {
    if (x >= 0) w.head(0, x);
    else w.head(1, -1 - x);
    return;
  }
  const h = toHalfExact(x);
  w.ensure(9);
  if (h >= 0) {
    w.buf[w.pos++] = 0xf9;
    w.view.setUint16(w.pos, h);
    w.pos += 2;
    return;
  }
  f32[0] = x;
  if (f32[0] === x) {
    w.buf[w.pos++] = 0xfa;
    w.view.setFloat32(w.pos, x);
    w.pos += 4;
    return;
  }
  w.buf[w.pos++] = 0xfb;
  w.view.setFloat64(w.pos, x);
  w.pos += 8;
}

function writeString(w: Writer, s: string): void {
  if (s.length < 24 && isAscii(s)) {
    w.ensure(1 + s.length);
    w.buf[w.pos++] = 0x60 | s.length;
    for (let i = 0; i < s.length; i++) w.buf[w.pos++] = s.charCodeAt(i);
    return;
  }
  const n = Buffer.byteLength(s, 'utf8');
  w.head(3, n);
  w.ensure(n);
  utf8.encodeInto(s, w.buf.subarray(w.pos, w.pos + n));
  w.pos += n;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function writeValue(w: Writer, v: unknown, path: string, depth: number): void {
  if (depth > 64) throw new TypeError(`canonical CBOR: nesting deeper than 64 at ${path}`);
  switch (typeof v) {
    case 'number':
      return writeNumber(w, v, path);
    case 'string':
      return writeString(w, v);
    case 'boolean':
      w.ensure(1);
      w.buf[w.pos++] = v ? 0xf5 : 0xf4;
      return;
    case 'object': {
      if (v === null) {
        w.ensure(1);
        w.buf[w.pos++] = 0xf6;
        return;
      }
      if (v instanceof Uint8Array) {
        if (!bytesAllowed) throw new TypeError(`canonical CBOR: byte string not allowed at ${path}`);
        w.head(2, v.length);
        w.ensure(v.length);
        w.buf.set(v, w.pos);
        w.pos += v.length;
        return;
      }
      if (Array.isArray(v)) {
        w.head(4, v.length);
        for (let i = 0; i < v.length; i++) writeValue(w, v[i], path, depth + 1);
        return;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new TypeError(`canonical CBOR: unsupported object at ${path}`);
      const keys = Object.keys(v);
      const enc = keys.map(keyBytes);
      let sorted = true;
      for (let i = 1; i < enc.length; i++) if (compareKeys(enc[i - 1]!, enc[i]!) >= 0) { sorted = false; break; }
      let order: number[] | undefined;
      if (!sorted) {
        order = keys.map((_, i) => i);
        order.sort((a, b) => compareKeys(enc[a]!, enc[b]!));
      }
      const obj = v as Record<string, unknown>;
      let n = 0;
      for (const k of keys) if (obj[k] !== undefined) n++;
      w.head(5, n);
      for (let j = 0; j < keys.length; j++) {
        const i = order ? order[j]! : j;
        const k = keys[i]!;
        const val = obj[k];
        // undefined members are absent, as in JSON: one value, one encoding
        if (val === undefined) continue;
        const kb = enc[i]!;
        w.head(3, kb.length);
        w.ensure(kb.length);
        w.buf.set(kb, w.pos);
        w.pos += kb.length;
        writeValue(w, val, path + '.' + k, depth + 1);
      }
      return;
    }
    default:
      throw new TypeError(`canonical CBOR: unsupported ${typeof v} at ${path}`);
  }
}

const shared = new Writer(64 * 1024);
/** Records are JSON values: a byte string inside one would have no JSON (NDJSON, CSV) counterpart. */
let bytesAllowed = true;

/**
 * Deterministic encoding of a JSON-like value. Throws TypeError for values outside the model
 * (caller misuse: our own code builds these values).
 */
export function encodeCanonical(value: unknown): Uint8Array {
  shared.reset();
  try {
    writeValue(shared, value, '$', 0);
    return shared.buf.slice(0, shared.pos);
  } finally {
    shrink();
  }
}

/** One huge value must not pin a huge scratch buffer for the life of the process. */
function shrink(): void {
  if (shared.buf.length > 1024 * 1024) {
    shared.buf = new Uint8Array(64 * 1024);
    shared.view = new DataView(shared.buf.buffer);
  }
  shared.reset();
}

/**
 * Encode a JSON value (no byte strings) into a reused buffer and hand the bytes to `sink` without copying. The view is only valid
 * inside `sink`. Used on the per-record hot path (dataset digest).
 */
export function withCanonicalJson(value: unknown, sink: (bytes: Uint8Array) => void): void {
  shared.reset();
  bytesAllowed = false;
  try {
    writeValue(shared, value, '$', 0);
    bytesAllowed = true;
    sink(shared.buf.subarray(0, shared.pos));
  } finally {
    bytesAllowed = true;
    shrink();
  }
}

/** Decode bytes that must be in canonical form; anything else throws `code` with reason `non_canonical`. */
export function decodeCanonical(bytes: Uint8Array, code: ToolkitErrorCode, label: string): unknown {
  const value = decodeCbor(bytes, code, label);
  let again: Uint8Array;
  try {
    again = encodeCanonical(value);
  } catch (e) {
    throw new ToolkitError(code, `${label}: contains a value outside the canonical model`, { cause: e, reason: 'non_canonical' });
  }
  if (again.length !== bytes.length || !Buffer.from(again.buffer, again.byteOffset, again.length).equals(bytes)) {
    throw new ToolkitError(code, `${label}: not in canonical CBOR form`, { reason: 'non_canonical' });
  }
  return value;
}
