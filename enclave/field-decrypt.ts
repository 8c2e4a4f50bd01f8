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

export interface FieldDecryptor {
  decryptBatch(key: Uint8Array, items: readonly DecryptItem[]): DecryptBatchResult;
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
