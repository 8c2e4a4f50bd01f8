/**
 * The key manifest of a dataset, version 1: which fields are encrypted, which field is the record id,
 * and for each key reference the KMS CiphertextBlob of its data key with the encryption context it
 * was generated under. It holds no secret: the data keys inside are wrapped by KMS.
 */
import { ToolkitError } from '../../attestation/errors.js';
import { isValidFieldPath, isValidKeyRef } from './field.js';

export interface ManifestKey {
  keyId: string;
  /** Standard base64 of the KMS CiphertextBlob. */
  ciphertextBlob: string;
  encryptionContext: Record<string, string>;
}

export interface KeyManifest {
  version: 1;
  datasetId: string;
  idField: string;
  fields: string[];
  keys: Record<string, ManifestKey>;
}

const DATASET_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
export const MAX_MANIFEST_KEYS = 10_000;

export function isValidDatasetId(s: unknown): s is string {
  return typeof s === 'string' && DATASET_ID_RE.test(s);
}

/** The encryption context every data key of a dataset is generated under (KMS binds it). */
export function keyEncryptionContext(datasetId: string, keyRef: string): Record<string, string> {
  return { 'enclavekit:dataset': datasetId, 'enclavekit:key-ref': keyRef };
}

function bad(path: string, message: string): ToolkitError {
  return new ToolkitError('ERR_MANIFEST_INVALID', `manifest${path}: ${message}`, { reason: path || '$' });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw bad(`${path}.${k}`, 'unknown key');
  for (const k of allowed) if (!(k in o)) throw bad(`${path}.${k}`, 'missing');
}

/** Strict validation: unknown keys, wrong types and bad names are `ERR_MANIFEST_INVALID` naming the path. */
export function validateManifest(v: unknown): KeyManifest {
  if (!isPlainObject(v)) throw bad('', 'expected an object');
  onlyKeys(v, ['version', 'datasetId', 'idField', 'fields', 'keys'], '');
  if (v.version !== 1) throw bad('.version', 'expected 1');
  if (!isValidDatasetId(v.datasetId)) throw bad('.datasetId', 'expected [A-Za-z0-9][A-Za-z0-9._:-]{0,127}');
  if (!isValidFieldPath(v.idField)) throw bad('.idField', 'expected a field path');
  if (!Array.isArray(v.fields) || v.fields.length === 0 || v.fields.length > 256)
    throw bad('.fields', 'expected 1 to 256 field paths');
  const fields: string[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < v.fields.length; i++) {
    const f: unknown = v.fields[i];
    if (!isValidFieldPath(f)) throw bad(`.fields[${i}]`, 'expected a field path');
    if (seen.has(f)) throw bad(`.fields[${i}]`, 'duplicate field');
    if (f === v.idField) throw bad(`.fields[${i}]`, 'the id field cannot be encrypted');
    // A path that is a prefix of another would encrypt an object and one of its members twice.
    for (const g of seen) if (g.startsWith(f + '.') || f.startsWith(g + '.')) throw bad(`.fields[${i}]`, 'overlaps another field');
    seen.add(f);
    fields.push(f);
  }
  if (!isPlainObject(v.keys)) throw bad('.keys', 'expected an object');
  const refs = Object.keys(v.keys);
  if (refs.length === 0 || refs.length > MAX_MANIFEST_KEYS) throw bad('.keys', `expected 1 to ${MAX_MANIFEST_KEYS} keys`);
  const keys: Record<string, ManifestKey> = {};
  for (const ref of refs) {
    const p = `.keys.${ref}`;
    if (!isValidKeyRef(ref)) throw bad(p, 'invalid key reference');
    const k = v.keys[ref];
    if (!isPlainObject(k)) throw bad(p, 'expected an object');
    onlyKeys(k, ['keyId', 'ciphertextBlob', 'encryptionContext'], p);
    if (typeof k.keyId !== 'string' || k.keyId.length === 0 || k.keyId.length > 2048) throw bad(`${p}.keyId`, 'expected a non-empty string');
    if (typeof k.ciphertextBlob !== 'string' || k.ciphertextBlob.length === 0 || k.ciphertextBlob.length > 8192 || !B64_RE.test(k.ciphertextBlob))
      throw bad(`${p}.ciphertextBlob`, 'expected base64, at most 6144 bytes');
    const ec = k.encryptionContext;
    if (!isPlainObject(ec)) throw bad(`${p}.encryptionContext`, 'expected an object');
    const ecKeys = Object.keys(ec);
    if (ecKeys.length > 64) throw bad(`${p}.encryptionContext`, 'too many entries');
    const ctx: Record<string, string> = {};
    for (const ek of ecKeys) {
      const ev = ec[ek];
      if (ek.length === 0 || ek.length > 2048 || typeof ev !== 'string' || ev.length > 2048)
        throw bad(`${p}.encryptionContext`, 'expected string values');
      ctx[ek] = ev;
    }
    keys[ref] = { keyId: k.keyId, ciphertextBlob: k.ciphertextBlob, encryptionContext: ctx };
  }
  return { version: 1, datasetId: v.datasetId, idField: v.idField, fields, keys };
}

/** Parse manifest JSON text (bytes or string) strictly. */
export function parseManifest(text: string | Uint8Array): KeyManifest {
  const s = typeof text === 'string' ? text : decodeUtf8(text);
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    throw new ToolkitError('ERR_MANIFEST_INVALID', 'manifest: not valid JSON', { cause: e, reason: 'json' });
  }
  return validateManifest(v);
}

function decodeUtf8(b: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch (e) {
    throw new ToolkitError('ERR_MANIFEST_INVALID', 'manifest: not UTF-8', { cause: e, reason: 'utf8' });
  }
}
