/**
 * Field encryption for data owners: stream a dataset, encrypt the chosen fields with AES-256-GCM
 * data keys from KMS GenerateDataKey, write the dataset back in the same format, and return its key
 * manifest. Constant memory: records are read, encrypted and written in small batches, and the
 * reader waits whenever the writer is full.
 *
 * Only one data key exists in memory at a time. It is used through a node:crypto KeyObject (which
 * JS cannot wipe) and its raw bytes are zeroed on rotation and at the end.
 */
import { createCipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { once } from 'node:events';
import { stringify as stringifyCsv } from 'csv-stringify/sync';
import { KMSClient, GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { ToolkitError } from '../attestation/errors.js';
import {
  DatasetDigest, MAX_SCHEMA_FIELDS, deriveSealKey, fieldAad, formatField, getPath, isValidDatasetId, isValidFieldPath, keyEncryptionContext, recordIdOf,
  sealManifest, setPath, validateManifest, validateManifestBody, validateReleasePolicy,
  type FieldType, type KeyManifest, type ManifestBody, type ManifestKey, type ReleasePolicy,
} from '../enclave/protocol/index.js';
import { readDataset, datasetError, nestRow, type DatasetFormat } from './dataset.js';

export interface DataKey {
  plaintext: Uint8Array;
  ciphertextBlob: Uint8Array;
  keyId: string;
}

/** Where data keys come from: KMS GenerateDataKey (AES_256) under an encryption context. */
export interface DataKeySource {
  generateDataKey(keyId: string, encryptionContext: Record<string, string>): Promise<DataKey>;
}

export interface KmsDataKeySourceOptions {
  endpoint?: string;
  region?: string;
  /** Explicit credentials; otherwise the SDK's default provider chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Per-request timeout in milliseconds (default 10 000). */
  timeoutMs?: number;
  /** A ready client (tests, custom handlers); the other options are then ignored. */
  client?: KMSClient;
}

function kmsError(e: unknown): ToolkitError {
  const err = e as { name?: string; code?: string; $metadata?: unknown };
  const net = ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EHOSTUNREACH', 'TimeoutError', 'RequestTimeout'];
  if ((err.code && net.includes(err.code)) || (err.name && net.includes(err.name)))
    return new ToolkitError('ERR_KMS_UNREACHABLE', `KMS unreachable: ${err.code ?? err.name}`, { reason: 'network', cause: e });
  return new ToolkitError('ERR_KMS_REQUEST', `KMS GenerateDataKey failed: ${err.name ?? 'error'}`, { reason: err.name ?? 'request', cause: e });
}

/** The real thing: `@aws-sdk/client-kms` against AWS KMS or the local simulator. */
export class KmsDataKeySource implements DataKeySource {
  readonly client: KMSClient;

  constructor(opts: KmsDataKeySourceOptions = {}) {
    // The SDK warns on every client creation under Node versions it is phasing out; that is noise here.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    if (opts.client) {
      this.client = opts.client;
      return;
    }
    const timeout = opts.timeoutMs ?? 10_000;
    this.client = new KMSClient({
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      region: opts.region ?? 'us-east-1',
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      maxAttempts: 2,
      requestHandler: { connectionTimeout: timeout, requestTimeout: timeout },
    });
  }

  async generateDataKey(keyId: string, encryptionContext: Record<string, string>): Promise<DataKey> {
    let out;
    try {
      out = await this.client.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: encryptionContext }));
    } catch (e) {
      throw kmsError(e);
    }
    const pt = out.Plaintext;
    const blob = out.CiphertextBlob;
    if (!(pt instanceof Uint8Array) || pt.length !== 32 || !(blob instanceof Uint8Array) || blob.length === 0 || typeof out.KeyId !== 'string') {
      if (pt instanceof Uint8Array) pt.fill(0);
      throw new ToolkitError('ERR_KMS_REQUEST', 'KMS GenerateDataKey returned a malformed answer', { reason: 'response' });
    }
    return { plaintext: pt, ciphertextBlob: blob, keyId: out.KeyId };
  }

  destroy(): void {
    this.client.destroy();
  }
}

export interface EncryptDatasetOptions {
  input: Readable | string;
  format: DatasetFormat;
  /** Dot paths of the fields to encrypt (CSV: column names). */
  fields: string[];
  idField: string;
  datasetId: string;
  /** KMS key id, ARN or alias that wraps the data keys. */
  keyId: string;
  kms: DataKeySource;
  /** Fields encrypted under one data key before the next is generated. Default 1 000 000. */
  rotateAfter?: number;
  output: Writable | string;
  maxLineBytes?: number;
  /** IV source, injectable for tests; default node:crypto. */
  randomBytes?: (n: number) => Uint8Array;
  /** The owner's release policy, sealed into the manifest; absent = the strictest default. */
  policy?: ReleasePolicy | null;
  /**
   * Skip records that cannot be encrypted (no usable id; NDJSON lines that are not JSON objects; CSV
   * rows of the wrong width) and hand each here instead of failing the whole run. Only what was
   * written is sealed (count and digest). The reject holds the original record in clear.
   */
  onReject?: (reject: EncryptReject) => void | Promise<void>;
  /** Records written so far, called after each batch (for a progress bar). */
  onProgress?: (records: number) => void;
}

/** A record `encryptDataset` skipped (with `onReject`): where, why, and the record as it was read. */
export interface EncryptReject {
  /** 1-based line (CSV: where the record ends); 0 if unknown. */
  line: number;
  /** `record_id`, `json`, `record`, `utf8` or `csv`. */
  reason: string;
  message: string;
  /** The record as read (CSV: the row, header name -> cell), when it parsed. */
  record?: Record<string, unknown>;
  /** The record's original text, when it did not parse. */
  raw?: string;
}

const NUMERIC_RE = /^\s*-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;
const SEGMENT_RE = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/**
 * The schema: every leaf field path and its type, from the plaintext records. CSV carries every
 * value as text, so a column whose non-empty values are all decimal numbers is a number there.
 */
class SchemaBuilder {
  readonly types = new Map<string, FieldType>();
  constructor(private readonly csv: boolean) {}
  add(record: Record<string, unknown>): void {
    this.#walk(record, '', 0);
  }
  #set(path: string, t: FieldType): void {
    const cur = this.types.get(path);
    if (cur === undefined) {
      if (this.types.size >= MAX_SCHEMA_FIELDS)
        throw new ToolkitError('ERR_DATASET_INVALID', `the records have more than ${MAX_SCHEMA_FIELDS} distinct field paths`, { reason: 'schema' });
      this.types.set(path, t);
    } else if (cur !== t) this.types.set(path, 'mixed');
  }
  #walk(o: Record<string, unknown>, prefix: string, depth: number): void {
    for (const [k, v] of Object.entries(o)) {
      // Names a query cannot express are not part of the schema (they cannot be asked for).
      if (!SEGMENT_RE.test(k) || k === '__proto__' || k === 'constructor' || k === 'prototype') continue;
      const path = prefix ? `${prefix}.${k}` : k;
      if (v === null || v === undefined) continue;
      if (typeof v === 'object' && !Array.isArray(v)) {
        if (depth < 7) this.#walk(v as Record<string, unknown>, path, depth + 1);
        else this.#set(path, 'mixed');
      } else if (typeof v === 'number') this.#set(path, 'number');
      else if (typeof v === 'boolean') this.#set(path, 'boolean');
      else if (typeof v === 'string') {
        if (this.csv && v === '') continue;
        this.#set(path, this.csv && v.length <= 64 && NUMERIC_RE.test(v) ? 'number' : 'string');
      } else this.#set(path, 'mixed');
    }
  }
  build(): Record<string, FieldType> {
    return Object.fromEntries([...this.types].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
  }
}

/** A CSV cell as csv-parse hands it back after csv-stringify wrote it. */
function csvCell(v: unknown): string {
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : String(v);
}

export const DEFAULT_ROTATE_AFTER = 1_000_000;
const BATCH = 512;

class KeySlot {
  ref = '';
  key: Uint8Array | undefined;
  ko: KeyObject | undefined;
  used = 0;
  wipe(): void {
    this.key?.fill(0);
    this.key = undefined;
    this.ko = undefined;
  }
}

class IvPool {
  #pool: Uint8Array = new Uint8Array(0);
  #off = 0;
  constructor(private readonly rand: (n: number) => Uint8Array) {}
  next(): Uint8Array {
    if (this.#off + 12 > this.#pool.length) {
      this.#pool = this.rand(12 * 1024);
      if (!(this.#pool instanceof Uint8Array) || this.#pool.length < 12) throw new RangeError('randomBytes returned too few bytes');
      this.#off = 0;
    }
    const iv = this.#pool.subarray(this.#off, this.#off + 12);
    this.#off += 12;
    return iv;
  }
}

async function writeAll(out: Writable, data: string): Promise<void> {
  if (!out.write(data)) await once(out, 'drain');
}

function endStream(out: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    out.once('error', reject);
    out.end(() => resolve());
  });
}

/** Encrypt a dataset's fields; resolves to the key manifest once every byte is written. */
export async function encryptDataset(opts: EncryptDatasetOptions): Promise<KeyManifest> {
  const policy = opts.policy === undefined || opts.policy === null ? null : validateReleasePolicy(opts.policy);
  if (!isValidDatasetId(opts.datasetId)) throw new TypeError('"datasetId" expected [A-Za-z0-9][A-Za-z0-9._:-]{0,127}');
  if (!isValidFieldPath(opts.idField)) throw new TypeError('"idField" expected a field path');
  if (!Array.isArray(opts.fields) || opts.fields.length === 0) throw new TypeError('"fields" expected at least one field path');
  for (const f of opts.fields) if (!isValidFieldPath(f)) throw new TypeError(`"fields": "${f}" is not a field path`);
  const rotateAfter = opts.rotateAfter ?? DEFAULT_ROTATE_AFTER;
  if (!Number.isSafeInteger(rotateAfter) || rotateAfter < 1) throw new RangeError('"rotateAfter" expected a positive integer');
  if (typeof opts.keyId !== 'string' || opts.keyId.length === 0) throw new TypeError('"keyId" expected a KMS key id');
  // Validate the manifest shape before any KMS call (duplicate or overlapping fields, id among fields).
  validateManifestBody({
    version: 2, datasetId: opts.datasetId, idField: opts.idField, fields: opts.fields,
    schema: Object.fromEntries(opts.fields.map((f) => [f, 'mixed'])),
    keys: { k0: { keyId: 'arn:aws:kms:us-east-1:111122223333:key/x', ciphertextBlob: 'AA==', encryptionContext: keyEncryptionContext(opts.datasetId, 'k0') } },
    records: 0, digest: '0'.repeat(96), policy,
  });

  const csv = opts.format === 'csv';
  // A field path means the same in both formats: CSV rows are read flat (to keep the header) and
  // nested by their dotted headers (`address.city` is address -> city), as `run` and the enclave read them.
  const fieldSegs = opts.fields.map((f) => f.split('.'));
  const idSegs = opts.idField.split('.');
  const keys: Record<string, ManifestKey> = {};
  const slot = new KeySlot();
  const ivs = new IvPool(opts.randomBytes ?? ((n) => randomBytes(n)));
  let keyCount = 0;
  /** Seal keys (HKDF of each data key): kept to seal the manifest at the end, wiped after. */
  const sealKeys = new Map<string, Uint8Array>();
  const schema = new SchemaBuilder(csv);
  const digest = new DatasetDigest(opts.datasetId);

  const newKey = async (): Promise<void> => {
    slot.wipe();
    const ref = `k${keyCount++}`;
    const ctx = keyEncryptionContext(opts.datasetId, ref);
    const dk = await opts.kms.generateDataKey(opts.keyId, ctx);
    if (!(dk.plaintext instanceof Uint8Array) || dk.plaintext.length !== 32) {
      dk.plaintext?.fill?.(0);
      throw new ToolkitError('ERR_KMS_REQUEST', 'the data key source returned a key that is not 32 bytes', { reason: 'response' });
    }
    if (!/^arn:aws[a-z-]*:kms:/.test(dk.keyId)) {
      dk.plaintext.fill(0);
      throw new ToolkitError('ERR_KMS_REQUEST', `KMS named the key "${dk.keyId.slice(0, 200)}", not a key ARN`, { reason: 'response' });
    }
    sealKeys.set(ref, deriveSealKey(dk.plaintext));
    slot.ref = ref;
    slot.key = dk.plaintext;
    slot.ko = createSecretKey(dk.plaintext);
    slot.used = 0;
    keys[ref] = { keyId: dk.keyId, ciphertextBlob: Buffer.from(dk.ciphertextBlob).toString('base64'), encryptionContext: ctx };
  };

  const toPath = typeof opts.output === 'string' ? opts.output : undefined;
  const partial = toPath ? `${toPath}.partial` : undefined;
  const out: Writable = partial ? createWriteStream(partial) : (opts.output as Writable);
  let header: string[] | undefined;
  let lines: string[] = [];
  let rows: unknown[][] = [];

  const flush = async (): Promise<void> => {
    if (csv) {
      if (rows.length === 0) return;
      const text = stringifyCsv(rows);
      rows = [];
      await writeAll(out, text);
    } else {
      if (lines.length === 0) return;
      const text = lines.join('');
      lines = [];
      await writeAll(out, text);
    }
  };

  // A mistyped field name must not leave a column in clear while the manifest claims it encrypted.
  const present = new Array<boolean>(opts.fields.length).fill(false);
  try {
    await newKey();
    const unreadable: EncryptReject[] = [];
    const onReject = opts.onReject;
    const readOpts = {
      format: opts.format,
      nest: false,
      ...(opts.maxLineBytes === undefined ? {} : { maxLineBytes: opts.maxLineBytes }),
      ...(onReject ? { onInvalid: (e: ToolkitError, text: string, line: number) => void unreadable.push({ line, reason: e.reason ?? 'invalid', message: e.message, raw: text }) } : {}),
    };
    const drainUnreadable = async (): Promise<void> => {
      while (unreadable.length > 0) await onReject!(unreadable.shift()!);
    };
    for await (const { record: raw, line } of readDataset(opts.input, readOpts)) {
      await drainUnreadable();
      let record = raw;
      if (csv) {
        if (!header) {
          header = Object.keys(raw);
          const missing = opts.fields.filter((f) => !header!.includes(f));
          if (missing.length > 0) throw datasetError(1, 'field_absent', `no column named ${missing.map((f) => `"${f}"`).join(', ')}`);
          rows.push(header);
        }
        try {
          record = nestRow(raw);
        } catch (e) {
          throw datasetError(line, 'header', (e as Error).message);
        }
      }
      const recordId = recordIdOf(getPath(record, idSegs));
      if (recordId === undefined) {
        const e = datasetError(line, 'record_id', `no usable id in field "${opts.idField}" (a non-empty string or an integer)`);
        if (!onReject) throw e;
        await onReject({ line, reason: 'record_id', message: e.message, record: raw });
        continue;
      }
      schema.add(record);
      for (let i = 0; i < fieldSegs.length; i++) {
        const segs = fieldSegs[i]!;
        const v = getPath(record, segs);
        if (v !== undefined) present[i] = true;
        if (v === undefined || v === null) continue;
        if (slot.used >= rotateAfter) await newKey();
        slot.used++;
        const iv = ivs.next();
        const c = createCipheriv('aes-256-gcm', slot.ko!, iv, { authTagLength: 16 });
        c.setAAD(fieldAad(opts.datasetId, recordId, opts.fields[i]!, slot.ref));
        const ct = Buffer.concat([c.update(JSON.stringify(v), 'utf8'), c.final(), c.getAuthTag()]);
        setPath(record, segs, formatField(slot.ref, iv, ct));
      }
      if (csv) {
        const row = header!.map((h) => csvCell(getPath(record, h.split('.'))));
        // The digest is over the record as a reader of the written file will see it (digest.ts).
        const seen: Record<string, unknown> = {};
        header!.forEach((h, i) => (seen[h] = row[i]));
        digest.add(nestRow(seen));
        rows.push(row);
        if (rows.length >= BATCH) {
          await flush();
          opts.onProgress?.(digest.count);
        }
      } else {
        const text = JSON.stringify(record);
        digest.add(JSON.parse(text));
        lines.push(text + '\n');
        if (lines.length >= BATCH) {
          await flush();
          opts.onProgress?.(digest.count);
        }
      }
    }
    if (onReject) await drainUnreadable();
    await flush();
    opts.onProgress?.(digest.count);
    const absent = opts.fields.filter((_, i) => !present[i]);
    if (absent.length > 0) throw datasetError(0, 'field_absent', `no record has the field(s) ${absent.map((f) => `"${f}"`).join(', ')}`);
    const types = schema.build();
    for (const f of opts.fields) if (!(f in types)) types[f] = 'mixed';
    const body: ManifestBody = validateManifestBody({
      version: 2,
      datasetId: opts.datasetId,
      idField: opts.idField,
      fields: [...opts.fields],
      schema: types,
      keys,
      records: digest.count,
      digest: Buffer.from(digest.digest()).toString('hex'),
      policy,
    });
    const manifest = validateManifest(sealManifest(body, sealKeys));
    if (partial) {
      await endStream(out);
      await rename(partial, toPath!);
    }
    return manifest;
  } catch (e) {
    if (partial) {
      // Wait for the stream to close: a file still being opened would otherwise reappear after rm.
      if (!out.closed) {
        const closed = once(out, 'close').catch(() => undefined);
        out.destroy();
        await closed;
      }
      await rm(partial, { force: true });
    }
    throw e;
  } finally {
    slot.wipe();
    for (const k of sealKeys.values()) k.fill(0);
    sealKeys.clear();
  }
}
