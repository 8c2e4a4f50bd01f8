/**
 * Batched AES-256-GCM field decryption. One call takes a key and many fields and returns every
 * plaintext in one buffer, with offsets and a per-field ok flag. With the addon, the whole batch runs
 * in C against Node's own OpenSSL with one cipher context (the key schedule is computed once); without
 * it, the same API runs on node:crypto.
 *
 * Memory: plaintexts of fields whose tag fails are zero-filled before the call returns, and
 * `wipe()` zero-fills the result buffer. JavaScript cannot promise more than that: strings or copies
 * the caller derives, and buffers the GC has moved or not yet reclaimed, are out of our reach.
 */
import { createDecipheriv } from 'node:crypto';
import type { GcmBinding } from './binding.js';
import { nativeBinding, requireBinding } from './binding.js';

export const GCM_KEY_LENGTH = 32;
export const GCM_IV_LENGTH = 12;
export const GCM_TAG_LENGTH = 16;
const STRIDE = 8;

export interface GcmField {
  iv: Uint8Array;
  ciphertext: Uint8Array;
  tag: Uint8Array;
  aad?: Uint8Array;
}

/**
 * Fields packed for the native call: `input` holds the bytes, `table` 8 uint32 per field
 * `[ivOff, ivLen, ctOff, ctLen, tagOff, tagLen, aadOff, aadLen]`.
 */
export interface PackedFields {
  input: Uint8Array;
  table: Uint32Array;
  count: number;
  /** Sum of the ciphertext lengths = size of the plaintext buffer. */
  totalLength: number;
}

export class GcmBatchResult {
  /** All plaintexts back to back; field i is `plaintext.subarray(offsets[i], offsets[i+1])`. */
  readonly plaintext: Uint8Array;
  readonly offsets: Uint32Array;
  /** 1 if field i authenticated, else 0 (and its plaintext bytes are zero). */
  readonly ok: Uint8Array;
  readonly okCount: number;

  constructor(plaintext: Uint8Array, offsets: Uint32Array, ok: Uint8Array, okCount: number) {
    this.plaintext = plaintext;
    this.offsets = offsets;
    this.ok = ok;
    this.okCount = okCount;
  }

  get count(): number {
    return this.ok.length;
  }

  /** The plaintext of field i (a view, not a copy), or null if it did not authenticate. */
  field(i: number): Uint8Array | null {
    if (!Number.isInteger(i) || i < 0 || i >= this.ok.length) throw new RangeError(`field index ${i} out of range`);
    return this.ok[i] === 1 ? this.plaintext.subarray(this.offsets[i]!, this.offsets[i + 1]!) : null;
  }

  /** Zero-fills the plaintext buffer (views from field() see zeros afterwards). */
  wipe(): void {
    this.plaintext.fill(0);
  }
}

function checkKey(key: unknown): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array)) throw new TypeError('"key" expected Uint8Array');
  if (key.length !== GCM_KEY_LENGTH) throw new RangeError(`"key" expected Uint8Array of length 32, got length=${key.length}`);
}

function checkField(f: GcmField, i: number): void {
  if (f === null || typeof f !== 'object') throw new TypeError(`field ${i}: expected an object`);
  const { iv, ciphertext, tag, aad } = f;
  if (!(iv instanceof Uint8Array) || !(ciphertext instanceof Uint8Array) || !(tag instanceof Uint8Array) ||
      (aad !== undefined && !(aad instanceof Uint8Array))) {
    throw new TypeError(`field ${i}: iv, ciphertext, tag (and aad) expected Uint8Array`);
  }
  if (iv.length !== GCM_IV_LENGTH) throw new RangeError(`field ${i}: "iv" expected Uint8Array of length 12, got length=${iv.length}`);
  if (tag.length !== GCM_TAG_LENGTH) throw new RangeError(`field ${i}: "tag" expected Uint8Array of length 16, got length=${tag.length}`);
}

/**
 * Packs fields for one native call. When every part already lives in one ArrayBuffer (fields sliced
 * out of a decoded record batch), no byte is copied: the table points into that buffer.
 */
export function packFields(fields: readonly GcmField[]): PackedFields {
  if (!Array.isArray(fields)) throw new TypeError('"fields" expected an array');
  const n = fields.length;
  const table = new Uint32Array(n * STRIDE);
  let total = 0;
  let size = 0;
  // One pass: check every field, fill the table with offsets into the shared buffer (if all parts
  // turn out to share one), and size a packed copy for the other case.
  let shared: ArrayBufferLike | null = null;
  for (let i = 0, t = 0; i < n; i++, t += STRIDE) {
    const f = fields[i]!;
    checkField(f, i);
    const { iv, ciphertext, tag, aad } = f;
    const ctLen = ciphertext.length;
    const aadLen = aad === undefined ? 0 : aad.length;
    total += ctLen;
    size += 28 + ctLen + aadLen;
    if (i === 0) shared = iv.buffer;
    if (shared !== null) {
      if (iv.buffer !== shared || ciphertext.buffer !== shared || tag.buffer !== shared || (aad !== undefined && aad.buffer !== shared)) {
        shared = null;
        continue;
      }
      table[t] = iv.byteOffset;
      table[t + 1] = 12;
      table[t + 2] = ciphertext.byteOffset;
      table[t + 3] = ctLen;
      table[t + 4] = tag.byteOffset;
      table[t + 5] = 16;
      table[t + 6] = aad === undefined ? 0 : aad.byteOffset;
      table[t + 7] = aadLen;
    }
  }
  if (total > 0xffffffff) throw new RangeError('batch too large: total ciphertext exceeds 4 GiB');
  if (shared !== null && shared.byteLength <= 0xffffffff) {
    return { input: new Uint8Array(shared), table, count: n, totalLength: total };
  }
  if (size > 0xffffffff) throw new RangeError('batch too large: packed input exceeds 4 GiB');
  const input = new Uint8Array(size);
  let o = 0;
  for (let i = 0, t = 0; i < n; i++, t += STRIDE) {
    const f = fields[i]!;
    input.set(f.iv, o); table[t] = o; table[t + 1] = 12; o += 12;
    input.set(f.tag, o); table[t + 4] = o; table[t + 5] = 16; o += 16;
    const aadLen = f.aad ? f.aad.length : 0;
    if (f.aad) input.set(f.aad, o);
    table[t + 6] = o; table[t + 7] = aadLen; o += aadLen;
    input.set(f.ciphertext, o); table[t + 2] = o; table[t + 3] = f.ciphertext.length; o += f.ciphertext.length;
  }
  return { input, table, count: n, totalLength: total };
}

function checkPacked(p: PackedFields): void {
  if (!p || !(p.input instanceof Uint8Array) || !(p.table instanceof Uint32Array)) throw new TypeError('"packed" expected {input: Uint8Array, table: Uint32Array}');
  if (p.table.length % STRIDE !== 0 || p.table.length / STRIDE !== p.count) throw new RangeError('"packed.table" must hold 8 entries per field');
  let total = 0;
  const len = p.input.length;
  for (let i = 0, t = 0; i < p.count; i++, t += STRIDE) {
    const tb = p.table;
    if (tb[t + 1] !== 12 || tb[t + 5] !== 16) throw new RangeError(`field ${i}: IV must be 12 bytes and tag 16 bytes`);
    for (let k = 0; k < 8; k += 2) {
      if (tb[t + k]! + tb[t + k + 1]! > len) throw new RangeError(`field ${i}: range outside input`);
    }
    total += tb[t + 3]!;
  }
  if (total !== p.totalLength) throw new RangeError('"packed.totalLength" does not match the table');
}

function offsetsOf(p: PackedFields): Uint32Array {
  const off = new Uint32Array(p.count + 1);
  let o = 0;
  for (let i = 0; i < p.count; i++) {
    off[i] = o;
    o += p.table[i * STRIDE + 3]!;
  }
  off[p.count] = o;
  return off;
}

function decryptPure(key: Uint8Array, p: PackedFields, out: Uint8Array, ok: Uint8Array): number {
  let good = 0;
  let o = 0;
  const t = p.table;
  const inp = p.input;
  for (let i = 0; i < p.count; i++) {
    const b = i * STRIDE;
    const ctLen = t[b + 3]!;
    try {
      const d = createDecipheriv('aes-256-gcm', key, inp.subarray(t[b]!, t[b]! + 12), { authTagLength: 16 });
      d.setAuthTag(inp.subarray(t[b + 4]!, t[b + 4]! + 16));
      if (t[b + 7]! > 0) d.setAAD(inp.subarray(t[b + 6]!, t[b + 6]! + t[b + 7]!));
      const pt = d.update(inp.subarray(t[b + 2]!, t[b + 2]! + ctLen));
      d.final();
      out.set(pt, o);
      pt.fill(0);
      ok[i] = 1;
      good++;
    } catch {
      out.fill(0, o, o + ctLen);
      ok[i] = 0;
    }
    o += ctLen;
  }
  return good;
}

export interface FieldDecryptorOptions {
  /** The addon's AES-GCM entry points; null forces the node:crypto path. Default: the addon if it loaded. */
  binding?: GcmBinding | null;
}

export class FieldDecryptor {
  readonly #binding: GcmBinding | null;

  constructor(opts: FieldDecryptorOptions = {}) {
    this.#binding = opts.binding === undefined ? nativeBinding() : opts.binding;
  }

  /** True when batches run in C (the addon); false on the node:crypto fallback. */
  get native(): boolean {
    return this.#binding !== null;
  }

  /** Wrong key, IV or tag lengths throw (RangeError) before any field is decrypted. */
  decryptFields(key: Uint8Array, fields: readonly GcmField[]): GcmBatchResult {
    checkKey(key);
    return this.#run(key, packFields(fields));
  }

  decryptPacked(key: Uint8Array, packed: PackedFields): GcmBatchResult {
    checkKey(key);
    checkPacked(packed);
    return this.#run(key, packed);
  }

  #run(key: Uint8Array, p: PackedFields): GcmBatchResult {
    const out = new Uint8Array(p.totalLength);
    const ok = new Uint8Array(p.count);
    const good = this.#binding
      ? this.#binding.gcmDecryptBatch(key, p.input, p.table, out, ok)
      : decryptPure(key, p, out, ok);
    return new GcmBatchResult(out, offsetsOf(p), ok, good);
  }
}

/** Decrypts a batch with the addon when present, else node:crypto. */
export function decryptFields(key: Uint8Array, fields: readonly GcmField[], opts?: FieldDecryptorOptions): GcmBatchResult {
  return new FieldDecryptor(opts).decryptFields(key, fields);
}

/**
 * Benchmark only: decrypts the packed batch `reps` times inside one native call (no JavaScript
 * between fields or repetitions), the upper bound for the batched path. Returns the fields that verified.
 */
export function nativeGcmCeiling(key: Uint8Array, packed: PackedFields, reps: number): number {
  checkKey(key);
  checkPacked(packed);
  const b = requireBinding('the native AES-GCM ceiling');
  return b.gcmCeiling(key, packed.input, packed.table, new Uint8Array(packed.totalLength), new Uint8Array(packed.count), reps);
}
