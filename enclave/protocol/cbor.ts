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

/*
 * A bounded structural walk before cbor-x sees untrusted bytes. cbor-x acts on tags while decoding:
 * it builds RegExp/Date/Set/typed arrays and follows shared references (tags 28/29), with which a
 * couple of hundred bytes expand into millions of nodes or keep the decoder busy long before any
 * canonicality check could run. Nothing we encode carries a tag, so every tag is refused here; nesting
 * depth and the item count are capped; every declared length is checked against the bytes left. One
 * pass, no allocation, so the walk costs less than the decode it guards.
 */

/** Deepest nesting the walk lets through: a record's own depth (64) plus the frame around it. */
export const MAX_CBOR_DEPTH = 72;

interface WalkState {
  b: Uint8Array;
  items: number;
  maxItems: number;
  code: ToolkitErrorCode;
  label: string;
}

function walkError(st: WalkState, reason: string, what: string): ToolkitError {
  return new ToolkitError(st.code, `${st.label}: ${what}`, { reason });
}

/** Set by walkHead: the head's argument, `-1` for an indefinite length (a global, so no allocation). */
let walkArg = 0;
/** Reads the head at `pos` into walkArg; returns where the head ends. */
function walkHead(st: WalkState, pos: number): number {
  const b = st.b;
  if (pos >= b.length) throw walkError(st, 'cbor', 'CBOR data ends early');
  const ai = b[pos]! & 0x1f;
  if (ai < 24) {
    walkArg = ai;
    return pos + 1;
  }
  if (ai === 31) {
    walkArg = -1;
    return pos + 1;
  }
  if (ai > 27) throw walkError(st, 'cbor', `reserved CBOR additional info at offset ${pos}`);
  const n = 1 << (ai - 24);
  if (pos + 1 + n > b.length) throw walkError(st, 'cbor', 'CBOR data ends early');
  let v = 0;
  for (let i = 1; i <= n; i++) v = v * 256 + b[pos + i]!;
  // Only compared with byte counts below; a value past 2^53 is as good as infinite there.
  walkArg = v;
  return pos + 1 + n;
}

const PROTO_KEY = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f]; // "__proto__"

/**
 * cbor-x renames a "__proto__" map key to "__proto_": a record or query would be changed silently
 * (and only fail later, on the dataset digest). Refused up front, whatever the key's head length
 * (indefinite-length strings, the only other spelling, are refused by the walk).
 */
function checkKey(st: WalkState, p: number): void {
  const b = st.b;
  if (p >= b.length || b[p]! >> 5 !== 3) return;
  const at = walkHead(st, p);
  if (walkArg !== 9 || at + 9 > b.length) return;
  for (let i = 0; i < 9; i++) if (b[at + i] !== PROTO_KEY[i]) return;
  throw walkError(st, 'proto_key', `a "__proto__" map key at offset ${p}`);
}

function walkItem(st: WalkState, pos: number, depth: number): number {
  if (depth > MAX_CBOR_DEPTH) throw walkError(st, 'cbor_depth', `CBOR nesting deeper than ${MAX_CBOR_DEPTH}`);
  if (++st.items > st.maxItems) throw walkError(st, 'cbor_items', `more than ${st.maxItems} CBOR items`);
  const b = st.b;
  const major = b[pos]! >> 5;
  const ib = b[pos]!;
  const next = walkHead(st, pos);
  const arg = walkArg;
  switch (major) {
    case 0:
    case 1:
      if (arg < 0) throw walkError(st, 'cbor', `indefinite-length integer at offset ${pos}`);
      return next;
    case 2:
    case 3: {
      // Nothing we encode uses indefinite-length strings; refusing them keeps keys contiguous.
      if (arg < 0) throw walkError(st, 'cbor', `indefinite-length string at offset ${pos}`);
      if (arg > b.length - next) throw walkError(st, 'cbor', `string at offset ${pos} runs past the end`);
      return next + arg;
    }
    case 4:
    case 5: {
      const per = major === 5 ? 2 : 1;
      let p = next;
      if (arg >= 0) {
        // Every item takes at least one byte: a count beyond the bytes left is a lie.
        if (arg > (b.length - p) / per) throw walkError(st, 'cbor', `container at offset ${pos} declares more items than bytes`);
        for (let i = 0; i < arg * per; i++) {
          if (per === 2 && (i & 1) === 0) checkKey(st, p);
          p = walkItem(st, p, depth + 1);
        }
        return p;
      }
      for (let i = 0; ; i++) {
        if (p >= b.length) throw walkError(st, 'cbor', 'indefinite-length container is not terminated');
        if (b[p] === 0xff) {
          if (i % per !== 0) throw walkError(st, 'cbor', `map at offset ${pos} ends after a key`);
          return p + 1;
        }
        if (per === 2 && (i & 1) === 0) checkKey(st, p);
        p = walkItem(st, p, depth + 1);
      }
    }
    case 6:
      throw walkError(st, 'cbor_tag', `CBOR tag at offset ${pos} (no tags are allowed)`);
    default:
      // false, true, null, undefined and floats; simple values and a stray break are not data.
      if ((ib >= 0xf4 && ib <= 0xf7) || ib === 0xf9 || ib === 0xfa || ib === 0xfb) return next;
      throw walkError(st, 'cbor', `unsupported CBOR simple value at offset ${pos}`);
  }
}

/**
 * Throws `code` unless `bytes` hold exactly one well-formed CBOR item without tags, nested at most
 * MAX_CBOR_DEPTH deep, of at most `maxItems` items (default: one per byte, which no tag-free input
 * can exceed; a smaller cap is for callers that know their shape).
 */
export function checkCborStructure(bytes: Uint8Array, code: ToolkitErrorCode, label: string, maxItems = bytes.length): void {
  const st: WalkState = { b: bytes, items: 0, maxItems, code, label };
  if (bytes.length === 0) throw walkError(st, 'cbor', 'no CBOR item');
  const end = walkItem(st, 0, 0);
  if (end !== bytes.length) throw walkError(st, 'cbor', `${bytes.length - end} bytes after the CBOR item`);
}

/**
 * Decode one CBOR item from untrusted bytes: the structural walk first (tags, depth, item count,
 * lengths; see checkCborStructure), then cbor-x. Any library throw becomes `code`. Output is `unknown`.
 */
export function decodeCbor(bytes: Uint8Array, code: ToolkitErrorCode, label: string): unknown {
  checkCborStructure(bytes, code, label);
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
  /** The same memory as a Buffer, for its native string writes. */
  bytes: Buffer;
  pos = 0;
  constructor(size = 1024) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
    this.bytes = Buffer.from(this.buf.buffer, 0, size);
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
    this.bytes = Buffer.from(next.buffer, 0, size);
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

/** How to write an object with these keys: the canonical member order and each key's encoded head. */
interface KeyPlan {
  keys: readonly string[];
  /** Indices into `keys`, in canonical order. */
  order: Uint32Array;
  /** Text-string head and UTF-8 bytes of keys[order[j]]. */
  heads: Uint8Array[];
}

function makePlan(keys: readonly string[]): KeyPlan {
  // cbor-x decodes this key as "__proto_" and plain assignment would set the prototype instead: no
  // decoder gives it back as written, so it is outside the model (the walk refuses it on input too).
  // Here, not in writeValue: a plan with it is never cached, so the check costs nothing per object.
  if (keys.includes('__proto__')) throw new TypeError('canonical CBOR: a "__proto__" key cannot round-trip');
  const enc = keys.map(keyBytes);
  const order = Uint32Array.from(keys.keys());
  // A stable sort with this comparator equals the previous order-or-sort code for every input,
  // including keys whose UTF-8 bytes collide (lone surrogates): ties keep insertion order.
  const sorted = [...order].sort((a, b) => compareKeys(enc[a]!, enc[b]!));
  const heads: Uint8Array[] = [];
  for (let j = 0; j < sorted.length; j++) {
    order[j] = sorted[j]!;
    const kb = enc[sorted[j]!]!;
    const w = new Writer(kb.length + 9);
    w.head(3, kb.length);
    w.buf.set(kb, w.pos);
    heads.push(w.buf.slice(0, w.pos + kb.length));
  }
  return { keys: [...keys], order, heads };
}

/**
 * Records repeat a handful of shapes, so the member order of each shape is computed once. Plans are
 * found by their first key and compared key by key; the cache is bounded.
 */
const planCache = new Map<string, KeyPlan[]>();
let planCount = 0;

function planFor(keys: readonly string[]): KeyPlan {
  const first = keys.length === 0 ? '' : keys[0]!;
  const bucket = planCache.get(first);
  if (bucket !== undefined) {
    outer: for (let b = 0; b < bucket.length; b++) {
      const p = bucket[b]!;
      const pk = p.keys;
      if (pk.length !== keys.length) continue;
      for (let i = 1; i < pk.length; i++) if (pk[i] !== keys[i]) continue outer;
      return p;
    }
  }
  const p = makePlan(keys);
  if (planCount < 1024 && keys.length <= 256) {
    planCount++;
    if (bucket === undefined) planCache.set(first, [p]);
    else bucket.push(p);
  }
  return p;
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
  // Write the bytes first, where a head for an all-ASCII string would end, and move them in the
  // rare case the real head is longer: one pass over the string instead of measuring it first.
  const max = s.length * 3;
  w.ensure(9 + max);
  const start = w.pos;
  const guess = headLength(s.length);
  const n = w.bytes.write(s, start + guess, max, 'utf8');
  const real = headLength(n);
  if (real !== guess) w.buf.copyWithin(start + real, start + guess, start + guess + n);
  w.head(3, n);
  w.pos = start + real + n;
}

function headLength(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9;
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
      const plan = planFor(keys);
      const obj = v as Record<string, unknown>;
      let n = 0;
      for (let i = 0; i < keys.length; i++) if (obj[keys[i]!] !== undefined) n++;
      w.head(5, n);
      const order = plan.order;
      for (let j = 0; j < order.length; j++) {
        const i = order[j]!;
        const k = keys[i]!;
        const val = obj[k];
        // undefined members are absent, as in JSON: one value, one encoding
        if (val === undefined) continue;
        const kb = plan.heads[j]!;
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
    shared.bytes = Buffer.from(shared.buf.buffer, 0, shared.buf.length);
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

/** A growable output buffer for canonical encodings written back to back (record batches). */
export class CanonicalBuffer {
  readonly #w = new Writer(64 * 1024);
  get length(): number {
    return this.#w.pos;
  }
  /** The bytes written so far (a view, valid until the next write or reset). */
  view(): Uint8Array {
    return this.#w.buf.subarray(0, this.#w.pos);
  }
  reset(): void {
    this.#w.reset();
  }
  /** Append the head of a CBOR item (major type, argument). */
  head(major: number, n: number): void {
    this.#w.head(major, n);
  }
  /** Append raw bytes (already CBOR). */
  raw(b: Uint8Array): void {
    this.#w.ensure(b.length);
    this.#w.buf.set(b, this.#w.pos);
    this.#w.pos += b.length;
  }
  text(s: string): void {
    writeString(this.#w, s);
  }
  /**
   * Append the deterministic encoding of a JSON value (no byte strings), exactly the bytes
   * `withCanonicalJson` would produce. On a TypeError the buffer is left as it was.
   */
  json(value: unknown): void {
    const at = this.#w.pos;
    bytesAllowed = false;
    try {
      writeValue(this.#w, value, '$', 0);
    } catch (e) {
      this.#w.pos = at;
      throw e;
    } finally {
      bytesAllowed = true;
    }
  }
}

/*
 * Strict decoding of canonical bytes, with the byte spans of record-like items.
 *
 * `decodeCbor` + re-encoding is how canonicality is decided elsewhere; on the per-record hot path
 * that costs a second encoding of every record. This decoder accepts exactly the byte strings that
 * `encodeCanonical` produces for values without byte strings (every other input, including ones
 * cbor-x would accept, makes it give up), and it returns the same value cbor-x's decoder returns for
 * those bytes. A caller that gets `undefined` falls back to the general path, so behaviour for
 * non-canonical input is unchanged; for canonical input the bytes of each span ARE the canonical
 * encoding of the decoded value, and can be hashed as received.
 */

class NotCanonical {}
const NOT_CANONICAL = new NotCanonical();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const MAX_DEPTH = 64;

let dBuf: Uint8Array = new Uint8Array(0);
let dView: DataView = new DataView(dBuf.buffer);
let dBytes: Buffer = Buffer.alloc(0);
let dPos = 0;

function fail(): never {
  throw NOT_CANONICAL;
}

/** The argument of a head whose first byte is `ib`, shortest form required. */
function readArg(ib: number): number {
  const ai = ib & 0x1f;
  if (ai < 24) return ai;
  let n: number;
  if (ai === 24) {
    if (dPos + 1 > dBuf.length) fail();
    n = dBuf[dPos]!;
    dPos += 1;
    if (n < 24) fail();
  } else if (ai === 25) {
    if (dPos + 2 > dBuf.length) fail();
    n = dView.getUint16(dPos);
    dPos += 2;
    if (n < 0x100) fail();
  } else if (ai === 26) {
    if (dPos + 4 > dBuf.length) fail();
    n = dView.getUint32(dPos);
    dPos += 4;
    if (n < 0x10000) fail();
  } else if (ai === 27) {
    if (dPos + 8 > dBuf.length) fail();
    const hi = dView.getUint32(dPos);
    const lo = dView.getUint32(dPos + 4);
    dPos += 8;
    // Beyond 2^53 the canonical writer uses a float, so such an integer head is never canonical.
    if (hi === 0 || hi > 0x1fffff) fail();
    n = hi * 0x100000000 + lo;
  } else fail();
  return n;
}

function readText(len: number): string {
  const end = dPos + len;
  if (end > dBuf.length) fail();
  const b = dBuf;
  let ascii = true;
  for (let i = dPos; i < end; i++) {
    if (b[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  let s: string;
  if (ascii) {
    if (len <= 8) {
      s = '';
      for (let i = dPos; i < end; i++) s += String.fromCharCode(b[i]!);
    } else s = dBytes.toString('latin1', dPos, end);
  } else {
    // cbor-x decodes long strings with a BOM-stripping TextDecoder; keep such strings on its path.
    if (len >= 3 && b[dPos] === 0xef && b[dPos + 1] === 0xbb && b[dPos + 2] === 0xbf) fail();
    try {
      s = strictUtf8.decode(b.subarray(dPos, end));
    } catch {
      fail();
    }
  }
  dPos = end;
  return s;
}

function readFloat(ai: number): number {
  let x: number;
  if (ai === 25) {
    if (dPos + 2 > dBuf.length) fail();
    const h = dView.getUint16(dPos);
    dPos += 2;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    const mag = e === 0 ? m * 2 ** -24 : e === 31 ? NaN : (1 + m / 1024) * 2 ** (e - 15);
    x = h & 0x8000 ? -mag : mag;
  } else if (ai === 26) {
    if (dPos + 4 > dBuf.length) fail();
    x = dView.getFloat32(dPos);
    dPos += 4;
    if (toHalfExact(x) >= 0) fail();
  } else if (ai === 27) {
    if (dPos + 8 > dBuf.length) fail();
    x = dView.getFloat64(dPos);
    dPos += 8;
    f32[0] = x;
    if (f32[0] === x || toHalfExact(x) >= 0) fail();
  } else fail();
  // Finite non-integers (or integers past 2^53) only: everything else has another encoding.
  if (!Number.isFinite(x) || Number.isSafeInteger(x)) fail();
  return x;
}

function readItem(depth: number): unknown {
  if (depth > MAX_DEPTH || dPos >= dBuf.length) fail();
  const ib = dBuf[dPos++]!;
  const major = ib >> 5;
  switch (major) {
    case 0:
      return readArg(ib);
    case 1: {
      const n = readArg(ib);
      if (n > Number.MAX_SAFE_INTEGER - 1) fail();
      return -1 - n;
    }
    case 3:
      return readText(readArg(ib));
    case 4: {
      const n = readArg(ib);
      if (n > dBuf.length - dPos) fail();
      const a = new Array<unknown>(n);
      for (let i = 0; i < n; i++) a[i] = readItem(depth + 1);
      return a;
    }
    case 5:
      return readMap(readArg(ib), depth);
    case 7:
      if (ib === 0xf4) return false;
      if (ib === 0xf5) return true;
      if (ib === 0xf6) return null;
      return readFloat(ib & 0x1f);
    default:
      // byte strings and tags: outside the record model
      return fail();
  }
}

/** Decoded map keys by their bytes: records repeat the same few keys, so most keys are found here. */
const KEY_SLOTS = 1024;
const keySlotBytes: (Uint8Array | undefined)[] = new Array(KEY_SLOTS).fill(undefined);
const keySlotText: string[] = new Array(KEY_SLOTS).fill('');

function readKey(len: number): string {
  if (len > 24) return readText(len);
  const end = dPos + len;
  if (end > dBuf.length) fail();
  const b = dBuf;
  let h = len;
  for (let i = dPos; i < end; i++) h = (Math.imul(h, 31) + b[i]!) | 0;
  const slot = (h ^ (h >>> 10)) & (KEY_SLOTS - 1);
  const cached = keySlotBytes[slot];
  if (cached !== undefined && cached.length === len) {
    let same = true;
    for (let i = 0; i < len; i++) {
      if (cached[i] !== b[dPos + i]) {
        same = false;
        break;
      }
    }
    if (same) {
      dPos = end;
      return keySlotText[slot]!;
    }
  }
  const start = dPos;
  const key = readText(len);
  keySlotBytes[slot] = b.slice(start, end);
  keySlotText[slot] = key;
  return key;
}

function readMap(n: number, depth: number): Record<string, unknown> {
  if (n > dBuf.length - dPos) fail();
  const obj: Record<string, unknown> = {};
  let prevStart = -1;
  let prevLen = -1;
  for (let i = 0; i < n; i++) {
    if (dPos >= dBuf.length) fail();
    const ib = dBuf[dPos++]!;
    if (ib >> 5 !== 3) fail();
    const len = readArg(ib);
    const start = dPos;
    // Keys strictly increasing in (length, bytes): sorted, and no duplicates.
    if (len < prevLen) fail();
    if (len === prevLen) {
      let c = 0;
      for (let k = 0; k < len && c === 0; k++) c = dBuf[start + k]! - dBuf[prevStart + k]!;
      if (c <= 0) fail();
    }
    const key = readKey(len);
    // cbor-x renames this key; leave such records to it so both paths give the same value.
    if (key === '__proto__') fail();
    prevStart = start;
    prevLen = len;
    obj[key] = readItem(depth + 1);
  }
  return obj;
}

export interface SpannedDecode {
  value: Record<string, unknown>;
  /** Start offsets of the items of the top-level array member `spanKey`, then its end: n + 1 entries. */
  offsets: Uint32Array;
}

/**
 * Decode `bytes` as one canonical top-level map (values without byte strings) and note where each
 * item of its array member `spanKey` (at most `maxItems` of them) starts and ends. Undefined when
 * the bytes are anything but canonical in that model; the caller then decodes them the general way.
 */
export function decodeCanonicalSpans(bytes: Uint8Array, spanKey: string, maxItems = 0xffffffff): SpannedDecode | undefined {
  dBuf = bytes;
  dView = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  dBytes = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  dPos = 0;
  try {
    if (bytes.length === 0) return undefined;
    const ib = bytes[dPos++]!;
    if (ib >> 5 !== 5) return undefined;
    const n = readArg(ib);
    if (n > bytes.length) return undefined;
    const obj: Record<string, unknown> = {};
    let offsets: Uint32Array | undefined;
    let prev = '';
    for (let i = 0; i < n; i++) {
      if (dPos >= bytes.length) return undefined;
      const kb = bytes[dPos++]!;
      if (kb >> 5 !== 3) return undefined;
      const key = readText(readArg(kb));
      const kb1 = keyBytes(prev);
      const kb2 = keyBytes(key);
      if (i > 0 && compareKeys(kb1, kb2) >= 0) return undefined;
      if (key === '__proto__') return undefined;
      prev = key;
      if (key === spanKey && dPos < bytes.length && bytes[dPos]! >> 5 === 4) {
        const ab = bytes[dPos++]!;
        const m = readArg(ab);
        // Past the message's own limit the general path decodes it and refuses it, as before.
        if (m > bytes.length - dPos || m > maxItems) return undefined;
        const a = new Array<unknown>(m);
        offsets = new Uint32Array(m + 1);
        // Each item is decoded as a record root would be (its own depth budget), as the digest encodes it.
        for (let j = 0; j < m; j++) {
          offsets[j] = dPos;
          a[j] = readItem(0);
        }
        offsets[m] = dPos;
        obj[key] = a;
      } else obj[key] = readItem(1);
    }
    if (dPos !== bytes.length || offsets === undefined) return undefined;
    return { value: obj, offsets };
  } catch (e) {
    if (e === NOT_CANONICAL) return undefined;
    throw e;
  } finally {
    dBuf = new Uint8Array(0);
    dView = new DataView(dBuf.buffer);
    dBytes = Buffer.alloc(0);
  }
}
