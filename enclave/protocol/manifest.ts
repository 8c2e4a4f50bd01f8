/**
 * The sealed manifest of a dataset, version 2 (README "Sealed manifest"): which fields are encrypted,
 * which field is the record id, the schema, every data key as the exact KMS key ARN + CiphertextBlob +
 * encryption context, the record count and the in-order dataset digest, the owner's release policy,
 * and the seal: one HMAC per data key over all of the above (seal.ts). It holds no secret.
 *
 * Version 1 manifests (unsealed) are refused with a message that says how to re-encrypt: nothing in
 * them stops a host from adding records or keys of its own.
 */
import { ToolkitError } from '../../attestation/errors.js';
import { isValidFieldPath, isValidKeyRef } from './field.js';
import { validateReleasePolicy, type ReleasePolicy } from './release-policy.js';

export interface ManifestKey {
  /** The KMS key ARN that wraps this data key (what KMS answers as KeyId). */
  keyId: string;
  /** Standard base64 of the KMS CiphertextBlob. */
  ciphertextBlob: string;
  encryptionContext: Record<string, string>;
}

/** Types a schema records per field path (inferred from the plaintext at encryption time). */
export type FieldType = 'string' | 'number' | 'boolean' | 'mixed';
export const FIELD_TYPES: readonly FieldType[] = ['string', 'number', 'boolean', 'mixed'];

/** Everything the seal covers. */
export interface ManifestBody {
  version: 2;
  datasetId: string;
  idField: string;
  /** Encrypted field paths. */
  fields: string[];
  /** Every leaf field path of the records (clear and encrypted) and its type. */
  schema: Record<string, FieldType>;
  keys: Record<string, ManifestKey>;
  /** Number of records, exactly. */
  records: number;
  /** Hex SHA-384 dataset digest (digest.ts) over the encrypted records in order. */
  digest: string;
  /** The owner's release policy; null = the strictest default (release-policy.ts). */
  policy: ReleasePolicy | null;
}

export interface KeyManifest extends ManifestBody {
  /** Key reference -> hex HMAC-SHA384 of the body under that data key's seal key. */
  seal: Record<string, string>;
}

const DATASET_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** A KMS key ARN, as KMS names a key in its answers: arn:PARTITION:kms:REGION:ACCOUNT:key/ID. */
export const KMS_KEY_ARN_RE = /^arn:aws[a-z-]{0,16}:kms:[a-z0-9-]{1,32}:\d{12}:key\/[A-Za-z0-9-]{1,128}$/;
const HEX96_RE = /^[0-9a-f]{96}$/;
export const MAX_MANIFEST_KEYS = 10_000;
export const MAX_SCHEMA_FIELDS = 1024;

export function isValidDatasetId(s: unknown): s is string {
  return typeof s === 'string' && DATASET_ID_RE.test(s);
}

/** The encryption context every data key of a dataset is generated under (KMS binds it). */
export function keyEncryptionContext(datasetId: string, keyRef: string): Record<string, string> {
  return { 'enclavekit:dataset': datasetId, 'enclavekit:key-ref': keyRef };
}

function bad(path: string, message: string, reason = path || '$'): ToolkitError {
  return new ToolkitError('ERR_MANIFEST_INVALID', `manifest${path}: ${message}`, { reason });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw bad(`${path}.${k}`, 'unknown key');
  for (const k of allowed) if (!(k in o)) throw bad(`${path}.${k}`, 'missing');
}

export const UNSEALED_MANIFEST_MESSAGE =
  'manifest version 1 is not sealed, and an unsealed manifest lets a host add records or keys of its own; ' +
  're-encrypt the plaintext with this version of `enclavekit encrypt`, which writes a sealed version 2 manifest';

/** Strict validation: unknown keys, wrong types and bad names are `ERR_MANIFEST_INVALID` naming the path. */
export function validateManifest(v: unknown): KeyManifest {
  if (!isPlainObject(v)) throw bad('', 'expected an object');
  if (v.version === 1) throw bad('.version', UNSEALED_MANIFEST_MESSAGE, 'unsealed');
  const body = validateManifestBody(v, ['seal']);
  const s = v.seal;
  if (!isPlainObject(s)) throw bad('.seal', 'expected an object');
  const seal: Record<string, string> = {};
  for (const k of Object.keys(s)) if (!(k in body.keys)) throw bad(`.seal.${k}`, 'names no key of the manifest');
  for (const ref of Object.keys(body.keys)) {
    const m = s[ref];
    if (typeof m !== 'string' || !HEX96_RE.test(m)) throw bad(`.seal.${ref}`, 'expected 96 lower-case hex digits (HMAC-SHA384)');
    seal[ref] = m;
  }
  return { ...body, seal };
}

/** The sealed part alone (what `encrypt` builds before it can seal it). */
export function validateManifestBody(v: unknown, extraKeys: readonly string[] = []): ManifestBody {
  if (!isPlainObject(v)) throw bad('', 'expected an object');
  onlyKeys(v, ['version', 'datasetId', 'idField', 'fields', 'schema', 'keys', 'records', 'digest', 'policy', ...extraKeys], '');
  if (v.version !== 2) throw bad('.version', 'expected 2');
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
  const sc = v.schema;
  if (!isPlainObject(sc)) throw bad('.schema', 'expected an object');
  const schemaKeys = Object.keys(sc);
  if (schemaKeys.length > MAX_SCHEMA_FIELDS) throw bad('.schema', `more than ${MAX_SCHEMA_FIELDS} fields`);
  const schema: Record<string, FieldType> = {};
  for (const k of schemaKeys) {
    if (!isValidFieldPath(k)) throw bad(`.schema`, `"${String(k).slice(0, 80)}" is not a field path`);
    const t = sc[k];
    if (typeof t !== 'string' || !(FIELD_TYPES as readonly string[]).includes(t)) throw bad(`.schema.${k}`, `expected one of ${FIELD_TYPES.join(', ')}`);
    schema[k] = t as FieldType;
  }
  for (const f of fields) if (!(f in schema)) throw bad('.schema', `has no entry for the encrypted field "${f}"`);
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
    if (typeof k.keyId !== 'string' || !KMS_KEY_ARN_RE.test(k.keyId))
      throw bad(`${p}.keyId`, 'expected a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), as KMS names the key that made the data key');
    if (typeof k.ciphertextBlob !== 'string' || k.ciphertextBlob.length === 0 || k.ciphertextBlob.length > 8192 || !B64_RE.test(k.ciphertextBlob))
      throw bad(`${p}.ciphertextBlob`, 'expected base64, at most 6144 bytes');
    const ec = k.encryptionContext;
    if (!isPlainObject(ec)) throw bad(`${p}.encryptionContext`, 'expected an object');
    // Exactly the context `encrypt` generates the key under: KMS binds it to the CiphertextBlob, so a
    // key released under it was made for this dataset and this reference.
    const want = keyEncryptionContext(v.datasetId, ref);
    const ecKeys = Object.keys(ec);
    if (ecKeys.length !== 2 || ecKeys.some((x) => ec[x] !== want[x]))
      throw bad(`${p}.encryptionContext`, `expected exactly ${JSON.stringify(want)}`);
    keys[ref] = { keyId: k.keyId, ciphertextBlob: k.ciphertextBlob, encryptionContext: { ...want } };
  }
  if (typeof v.records !== 'number' || !Number.isSafeInteger(v.records) || v.records < 0) throw bad('.records', 'expected a record count');
  if (typeof v.digest !== 'string' || !HEX96_RE.test(v.digest)) throw bad('.digest', 'expected 96 lower-case hex digits (SHA-384)');
  let policy: ReleasePolicy | null = null;
  if (v.policy !== null) {
    try {
      policy = validateReleasePolicy(v.policy);
    } catch (e) {
      throw bad('.policy', (e as Error).message, 'policy');
    }
  }
  return { version: 2, datasetId: v.datasetId, idField: v.idField, fields, schema, keys, records: v.records, digest: v.digest, policy };
}

/** The manifest without its seal: the exact value the seal MACs cover. */
export function manifestBody(m: KeyManifest): ManifestBody {
  const { seal: _seal, ...body } = m;
  return body;
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
