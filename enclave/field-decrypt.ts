/**
 * Opening encrypted fields inside the enclave. The AES-GCM work goes through a pluggable batched
 * `FieldDecryptor` (one call per key per record batch), so the native addon's batched path can replace
 * the default node:crypto one without touching the job logic.
 *
 * Every failure to open a field becomes one `ERR_FIELD_DECRYPT` naming the record id and the field
 * path, with a constant message otherwise: no ciphertext, plaintext, key or library cause is carried,
 * because error text leaves the enclave.
 */
import { createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { ToolkitError } from '../attestation/errors.js';

export interface DecryptItem {
  iv: Uint8Array;
  ciphertext: Uint8Array;
  tag: Uint8Array;
  aad: Uint8Array;
}

export interface DecryptBatchResult {
  /** ok[i] is false when item i failed authentication (or could not be processed at all). */
  ok: boolean[];
  /** plaintexts[i] is meaningful only when ok[i]. */
  plaintexts: Uint8Array[];
}

/**
 * Fields packed into one buffer (native/gcm.ts `PackedFields`): `table` holds 8 uint32 per field,
 * `[ivOff, 12, ctOff, ctLen, tagOff, 16, aadOff, aadLen]`, offsets into `input`.
 */
export interface PackedItems {
  input: Uint8Array;
  table: Uint32Array;
  count: number;
  totalLength: number;
}

/** All plaintexts back to back: field i is `plaintext[offsets[i], offsets[i+1])` when `ok[i] === 1`. */
export interface PackedDecryptResult {
  plaintext: Uint8Array;
  offsets: Uint32Array;
  ok: Uint8Array;
}

export interface FieldDecryptor {
  decryptBatch(key: Uint8Array, items: readonly DecryptItem[]): DecryptBatchResult;
  /** Optional: the same work over packed fields (the addon's `decryptPacked`), without per-field objects. */
  decryptPacked?(key: Uint8Array, packed: PackedItems): PackedDecryptResult;
}

const EMPTY = new Uint8Array(0);

/** The pure node:crypto AES-256-GCM decryptor. */
export const nodeFieldDecryptor: FieldDecryptor = {
  decryptBatch(key: Uint8Array, items: readonly DecryptItem[]): DecryptBatchResult {
    if (!(key instanceof Uint8Array) || key.length !== 32) throw new RangeError('"key" expected Uint8Array of length 32');
    // One KeyObject per batch: importing the raw key once instead of once per field.
    let ko: KeyObject | undefined;
    const ok = new Array<boolean>(items.length);
    const plaintexts = new Array<Uint8Array>(items.length);
    try {
      ko = createSecretKey(key);
      for (let i = 0; i < items.length; i++) {
        const it = items[i]!;
        try {
          const d = createDecipheriv('aes-256-gcm', ko, it.iv, { authTagLength: 16 });
          d.setAAD(it.aad);
          d.setAuthTag(it.tag);
          const a = d.update(it.ciphertext);
          const b = d.final();
          plaintexts[i] = b.length === 0 ? a : Buffer.concat([a, b]);
          ok[i] = true;
        } catch {
          plaintexts[i] = EMPTY;
          ok[i] = false;
        }
      }
    } finally {
      // KeyObject memory cannot be wiped from JS; dropping the reference is all we can do.
      ko = undefined;
    }
    return { ok, plaintexts };
  },
};

export function fieldDecryptError(recordId: string, fieldPath: string): ToolkitError {
  return new ToolkitError(
    'ERR_FIELD_DECRYPT',
    `field "${fieldPath}" of record "${recordId}" could not be decrypted`,
    { reason: 'open' },
  );
}

/**
 * Run `decryptor` and check its answer's shape: a plugged-in decryptor that returns the wrong number
 * of results must fail the batch, not misalign plaintexts with fields.
 */
export function decryptChecked(decryptor: FieldDecryptor, key: Uint8Array, items: readonly DecryptItem[]): DecryptBatchResult {
  let r: DecryptBatchResult;
  try {
    r = decryptor.decryptBatch(key, items);
  } catch (e) {
    throw new ToolkitError('ERR_FIELD_DECRYPT', 'the field decryptor failed', { reason: 'decryptor', cause: e instanceof ToolkitError ? e : undefined });
  }
  if (!r || !Array.isArray(r.ok) || !Array.isArray(r.plaintexts) || r.ok.length !== items.length || r.plaintexts.length !== items.length)
    throw new ToolkitError('ERR_FIELD_DECRYPT', 'the field decryptor returned a malformed answer', { reason: 'decryptor' });
  return r;
}

/**
 * The packed counterpart of `decryptChecked`: an answer of the wrong shape fails the batch. A
 * decryptor without `decryptPacked` gets the fields as items and its answer is repacked.
 */
export function decryptPackedChecked(decryptor: FieldDecryptor, key: Uint8Array, packed: PackedItems): PackedDecryptResult {
  const n = packed.count;
  if (typeof decryptor.decryptPacked !== 'function') {
    const t = packed.table;
    const inp = packed.input;
    const items: DecryptItem[] = new Array(n);
    for (let i = 0, b = 0; i < n; i++, b += 8) {
      items[i] = {
        iv: inp.subarray(t[b]!, t[b]! + t[b + 1]!),
        ciphertext: inp.subarray(t[b + 2]!, t[b + 2]! + t[b + 3]!),
        tag: inp.subarray(t[b + 4]!, t[b + 4]! + t[b + 5]!),
        aad: inp.subarray(t[b + 6]!, t[b + 6]! + t[b + 7]!),
      };
    }
    const r = decryptChecked(decryptor, key, items);
    let total = 0;
    for (let i = 0; i < n; i++) total += r.ok[i] === true && r.plaintexts[i] instanceof Uint8Array ? r.plaintexts[i]!.length : 0;
    const plaintext = new Uint8Array(total);
    const offsets = new Uint32Array(n + 1);
    const ok = new Uint8Array(n);
    let o = 0;
    try {
      for (let i = 0; i < n; i++) {
        offsets[i] = o;
        const pt = r.plaintexts[i];
        if (r.ok[i] === true && pt instanceof Uint8Array) {
          plaintext.set(pt, o);
          o += pt.length;
          ok[i] = 1;
        }
      }
    } finally {
      for (const pt of r.plaintexts) if (pt instanceof Uint8Array) pt.fill(0);
    }
    offsets[n] = o;
    return { plaintext, offsets, ok };
  }
  let r: PackedDecryptResult;
  try {
    r = decryptor.decryptPacked(key, packed);
  } catch (e) {
    throw new ToolkitError('ERR_FIELD_DECRYPT', 'the field decryptor failed', { reason: 'decryptor', cause: e instanceof ToolkitError ? e : undefined });
  }
  if (!r || !(r.plaintext instanceof Uint8Array) || !(r.offsets instanceof Uint32Array) || !(r.ok instanceof Uint8Array) ||
      r.ok.length !== n || r.offsets.length !== n + 1 || r.offsets[n]! > r.plaintext.length) {
    if (r && r.plaintext instanceof Uint8Array) r.plaintext.fill(0);
    throw new ToolkitError('ERR_FIELD_DECRYPT', 'the field decryptor returned a malformed answer', { reason: 'decryptor' });
  }
  return r;
}
