/**
 * The encrypted field format, version 1 (written down in README, section "Field format"):
 *
 *   ekf1.<keyRef>.<base64url(iv, 12 bytes)>.<base64url(ciphertext || tag16)>
 *
 * base64url without padding, canonical (unused trailing bits zero). The plaintext is the UTF-8 JSON
 * text of the original value, so a number stays a number. The AES-256-GCM additional data binds the
 * field to its place:
 *
 *   "ekf1-aad" || u32be(len) || datasetId || u32be(len) || recordId || u32be(len) || fieldPath
 *             || u32be(len) || keyRef          (all UTF-8; lengths in bytes)
 *
 * Length prefixes keep the encoding injective: no two (dataset, record, path, keyRef) tuples share
 * additional data, whatever characters they contain.
 */
import { ToolkitError } from '../../attestation/errors.js';

export const FIELD_VERSION = 'ekf1';
export const IV_LENGTH = 12;
export const TAG_LENGTH = 16;
/** An encrypted field longer than this is refused before decoding (1 MiB of ciphertext). */
export const MAX_FIELD_CHARS = 1_398_124;

const KEY_REF_RE = /^[A-Za-z0-9_-]{1,64}$/;
const SEGMENT_RE = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);
const B64U_RE = /^[A-Za-z0-9_-]*$/;
const B64U_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64U_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64U_VALUE[B64U_ALPHABET.charCodeAt(i)] = i;

export interface ParsedField {
  keyRef: string;
  iv: Uint8Array;
  ciphertext: Uint8Array;
  tag: Uint8Array;
}

function fieldError(reason: string, message: string): ToolkitError {
  return new ToolkitError('ERR_FIELD_FORMAT', message, { reason });
}

export function isValidKeyRef(s: unknown): s is string {
  return typeof s === 'string' && KEY_REF_RE.test(s);
}

/** A field path: 1 to 8 dot-separated names, each `[A-Za-z_][A-Za-z0-9_-]{0,63}`. */
export function isValidFieldPath(s: unknown): s is string {
  if (typeof s !== 'string' || s.length === 0 || s.length > 520) return false;
  const parts = s.split('.');
  if (parts.length > 8) return false;
  for (const p of parts) if (!SEGMENT_RE.test(p) || FORBIDDEN_SEGMENTS.has(p)) return false;
  return true;
}

/** Strict base64url (no padding, canonical trailing bits); undefined when not. */
export function decodeBase64url(s: string): Uint8Array | undefined {
  const rem = s.length % 4;
  if (rem === 1 || !B64U_RE.test(s)) return undefined;
  if (rem !== 0) {
    const last = B64U_VALUE[s.charCodeAt(s.length - 1)]!;
    const mask = rem === 2 ? 0x0f : 0x03;
    if ((last & mask) !== 0) return undefined;
  }
  const b = Buffer.from(s, 'base64url');
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

export function encodeBase64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64url');
}

/** Cheap test used to decide whether a value at an encrypted path is in field format at all. */
export function looksLikeField(v: unknown): v is string {
  return typeof v === 'string' && v.startsWith('ekf');
}

/** Parse one field string. Throws `ERR_FIELD_FORMAT` with a `reason`; never echoes the input. */
export function parseField(s: unknown): ParsedField {
  if (typeof s !== 'string') throw fieldError('type', 'encrypted field is not a string');
  if (s.length > MAX_FIELD_CHARS) throw fieldError('too_long', 'encrypted field is too long');
  const d1 = s.indexOf('.');
  if (d1 < 0) throw fieldError('structure', 'encrypted field has no version prefix');
  if (s.slice(0, d1) !== FIELD_VERSION) throw fieldError('version', 'encrypted field has an unsupported version');
  const d2 = s.indexOf('.', d1 + 1);
  const d3 = d2 < 0 ? -1 : s.indexOf('.', d2 + 1);
  if (d2 < 0 || d3 < 0 || s.indexOf('.', d3 + 1) >= 0) throw fieldError('structure', 'encrypted field must have 4 dot-separated parts');
  const keyRef = s.slice(d1 + 1, d2);
  if (!KEY_REF_RE.test(keyRef)) throw fieldError('key_ref', 'encrypted field has an invalid key reference');
  const ivText = s.slice(d2 + 1, d3);
  if (ivText.length !== 16) throw fieldError('iv', 'encrypted field IV must be 12 bytes');
  const iv = decodeBase64url(ivText);
  if (!iv || iv.length !== IV_LENGTH) throw fieldError('iv', 'encrypted field IV must be 12 bytes of base64url');
  const body = decodeBase64url(s.slice(d3 + 1));
  if (!body) throw fieldError('base64', 'encrypted field ciphertext is not canonical base64url');
  if (body.length < TAG_LENGTH) throw fieldError('tag', 'encrypted field is shorter than its 16-byte tag');
  return {
    keyRef,
    iv,
    ciphertext: body.subarray(0, body.length - TAG_LENGTH),
    tag: body.subarray(body.length - TAG_LENGTH),
  };
}

export function formatField(keyRef: string, iv: Uint8Array, ciphertextAndTag: Uint8Array): string {
  if (!KEY_REF_RE.test(keyRef)) throw new TypeError('"keyRef" expected [A-Za-z0-9_-]{1,64}');
  if (iv.length !== IV_LENGTH) throw new RangeError(`"iv" expected Uint8Array of length 12, got length=${iv.length}`);
  if (ciphertextAndTag.length < TAG_LENGTH) throw new RangeError('"ciphertextAndTag" shorter than the tag');
  return `${FIELD_VERSION}.${keyRef}.${encodeBase64url(iv)}.${encodeBase64url(ciphertextAndTag)}`;
}

const AAD_MAGIC = Buffer.from('ekf1-aad', 'latin1');

/** Additional data of one field; see the module comment for the exact encoding. */
export function fieldAad(datasetId: string, recordId: string, fieldPath: string, keyRef: string): Uint8Array {
  const parts = [datasetId, recordId, fieldPath, keyRef];
  let n = AAD_MAGIC.length;
  const lens = parts.map((p) => Buffer.byteLength(p, 'utf8'));
  for (const l of lens) n += 4 + l;
  const out = Buffer.allocUnsafe(n);
  AAD_MAGIC.copy(out, 0);
  let o = AAD_MAGIC.length;
  for (let i = 0; i < 4; i++) {
    out.writeUInt32BE(lens[i]!, o);
    o += 4;
    o += out.write(parts[i]!, o, 'utf8');
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/**
 * A record id as it enters the additional data: a non-empty string up to 256 characters, or a safe
 * integer written in decimal (so a CSV "42" and an NDJSON 42 name the same record). Undefined when
 * the value cannot be an id.
 */
export function recordIdOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v.length > 0 && v.length <= 256 ? v : undefined;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  return undefined;
}

/** Read a dot path from a plain object; undefined when any step is missing or not an object. */
export function getPath(obj: unknown, segments: readonly string[]): unknown {
  let cur: unknown = obj;
  for (const s of segments) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, s)) return undefined;
    cur = (cur as Record<string, unknown>)[s];
  }
  return cur;
}

/** Write a dot path that `getPath` just read (the parent objects exist). */
export function setPath(obj: Record<string, unknown>, segments: readonly string[], value: unknown): void {
  let cur = obj;
  for (let i = 0; i < segments.length - 1; i++) cur = cur[segments[i]!] as Record<string, unknown>;
  cur[segments[segments.length - 1]!] = value;
}

/**
 * Parses encrypted fields straight into one growable buffer, for batched decryption without a
 * typed array per IV, ciphertext, tag and AAD. `parse` makes exactly the checks of `parseField`, in
 * the same order, with the same errors; `aad` writes the bytes `fieldAad` returns.
 */
export class PackedFieldWriter {
  buf: Buffer = Buffer.allocUnsafe(64 * 1024);
  pos = 0;
  /** Of the last `parse`: the key reference, and where the IV and the ciphertext||tag body were written. */
  keyRef = '';
  ivOff = 0;
  bodyOff = 0;
  bodyLen = 0;
  #lastKeyRef: string | undefined;

  reset(): void {
    this.pos = 0;
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  parse(s: unknown): void {
    if (typeof s !== 'string') throw fieldError('type', 'encrypted field is not a string');
    if (s.length > MAX_FIELD_CHARS) throw fieldError('too_long', 'encrypted field is too long');
    const d1 = s.indexOf('.');
    if (d1 < 0) throw fieldError('structure', 'encrypted field has no version prefix');
    if (d1 !== FIELD_VERSION.length || !s.startsWith(FIELD_VERSION)) throw fieldError('version', 'encrypted field has an unsupported version');
    const d2 = s.indexOf('.', d1 + 1);
    const d3 = d2 < 0 ? -1 : s.indexOf('.', d2 + 1);
    if (d2 < 0 || d3 < 0 || s.indexOf('.', d3 + 1) >= 0) throw fieldError('structure', 'encrypted field must have 4 dot-separated parts');
    const keyRef = s.slice(d1 + 1, d2);
    // Batches name the same key again and again: test the pattern once per new name.
    if (keyRef !== this.#lastKeyRef) {
      if (!KEY_REF_RE.test(keyRef)) throw fieldError('key_ref', 'encrypted field has an invalid key reference');
      this.#lastKeyRef = keyRef;
    }
    if (d3 - d2 - 1 !== 16) throw fieldError('iv', 'encrypted field IV must be 12 bytes');
    const ivText = s.slice(d2 + 1, d3);
    if (!B64U_RE.test(ivText)) throw fieldError('iv', 'encrypted field IV must be 12 bytes of base64url');
    const bodyText = s.slice(d3 + 1);
    const L = bodyText.length;
    const rem = L % 4;
    if (rem === 1 || !B64U_RE.test(bodyText)) throw fieldError('base64', 'encrypted field ciphertext is not canonical base64url');
    if (rem !== 0) {
      const last = B64U_VALUE[bodyText.charCodeAt(L - 1)]!;
      if ((last & (rem === 2 ? 0x0f : 0x03)) !== 0) throw fieldError('base64', 'encrypted field ciphertext is not canonical base64url');
    }
    const bodyLen = (L >> 2) * 3 + (rem === 0 ? 0 : rem - 1);
    if (bodyLen < TAG_LENGTH) throw fieldError('tag', 'encrypted field is shorter than its 16-byte tag');
    this.ensure(IV_LENGTH + bodyLen);
    this.ivOff = this.pos;
    this.buf.write(ivText, this.pos, IV_LENGTH, 'base64url');
    this.pos += IV_LENGTH;
    this.bodyOff = this.pos;
    this.buf.write(bodyText, this.pos, bodyLen, 'base64url');
    this.pos += bodyLen;
    this.bodyLen = bodyLen;
    this.keyRef = keyRef;
  }

  /**
   * Append the additional data of one field: `prefix` is `aadPrefix(datasetId)`, `path` is
   * `aadPart(fieldPath)`. Returns the start offset; the length is `pos - start`.
   */
  aad(prefix: Uint8Array, recordId: string, path: Uint8Array, keyRef: string): number {
    const start = this.pos;
    this.ensure(prefix.length + 4 + recordId.length * 3 + path.length + 4 + keyRef.length);
    const b = this.buf;
    b.set(prefix, this.pos);
    this.pos += prefix.length;
    const n = b.write(recordId, this.pos + 4, 'utf8');
    b.writeUInt32BE(n, this.pos);
    this.pos += 4 + n;
    b.set(path, this.pos);
    this.pos += path.length;
    // key references are ASCII ([A-Za-z0-9_-])
    b.writeUInt32BE(keyRef.length, this.pos);
    this.pos += 4 + b.write(keyRef, this.pos + 4, 'latin1');
    return start;
  }
}

/** The additional data's constant start for one dataset: magic, then the length-prefixed dataset id. */
export function aadPrefix(datasetId: string): Uint8Array {
  return aadPart(datasetId, AAD_MAGIC);
}

/** One length-prefixed UTF-8 part of the additional data (a field path), after `before`. */
export function aadPart(text: string, before: Uint8Array = new Uint8Array(0)): Uint8Array {
  const t = Buffer.from(text, 'utf8');
  const out = Buffer.allocUnsafe(before.length + 4 + t.length);
  out.set(before, 0);
  out.writeUInt32BE(t.length, before.length);
  t.copy(out, before.length + 4);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}
