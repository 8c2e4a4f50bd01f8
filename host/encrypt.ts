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
  fieldAad, formatField, getPath, isValidDatasetId, isValidFieldPath, keyEncryptionContext, recordIdOf, setPath, validateManifest,
  type KeyManifest, type ManifestKey,
} from '../enclave/protocol/index.js';
import { readDataset, datasetError, type DatasetFormat } from './dataset.js';

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
  if (!isValidDatasetId(opts.datasetId)) throw new TypeError('"datasetId" expected [A-Za-z0-9][A-Za-z0-9._:-]{0,127}');
  if (!isValidFieldPath(opts.idField)) throw new TypeError('"idField" expected a field path');
  if (!Array.isArray(opts.fields) || opts.fields.length === 0) throw new TypeError('"fields" expected at least one field path');
  for (const f of opts.fields) if (!isValidFieldPath(f)) throw new TypeError(`"fields": "${f}" is not a field path`);
  const rotateAfter = opts.rotateAfter ?? DEFAULT_ROTATE_AFTER;
  if (!Number.isSafeInteger(rotateAfter) || rotateAfter < 1) throw new RangeError('"rotateAfter" expected a positive integer');
  if (typeof opts.keyId !== 'string' || opts.keyId.length === 0) throw new TypeError('"keyId" expected a KMS key id');
  // Validate the manifest shape before any KMS call (duplicate or overlapping fields, id among fields).
  validateManifest({ version: 1, datasetId: opts.datasetId, idField: opts.idField, fields: opts.fields, keys: { k0: { keyId: 'x', ciphertextBlob: 'AA==', encryptionContext: {} } } });

  const csv = opts.format === 'csv';
  // CSV rows are flat: a field path names a column. NDJSON records are nested objects.
  const fieldSegs = opts.fields.map((f) => (csv ? [f] : f.split('.')));
  const idSegs = csv ? [opts.idField] : opts.idField.split('.');
  const keys: Record<string, ManifestKey> = {};
  const slot = new KeySlot();
  const ivs = new IvPool(opts.randomBytes ?? ((n) => randomBytes(n)));
  let keyCount = 0;

  const newKey = async (): Promise<void> => {
    slot.wipe();
    const ref = `k${keyCount++}`;
    const ctx = keyEncryptionContext(opts.datasetId, ref);
    const dk = await opts.kms.generateDataKey(opts.keyId, ctx);
    if (!(dk.plaintext instanceof Uint8Array) || dk.plaintext.length !== 32) {
      dk.plaintext?.fill?.(0);
      throw new ToolkitError('ERR_KMS_REQUEST', 'the data key source returned a key that is not 32 bytes', { reason: 'response' });
    }
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
    const readOpts = opts.maxLineBytes === undefined ? { format: opts.format } : { format: opts.format, maxLineBytes: opts.maxLineBytes };
    for await (const { record, line } of readDataset(opts.input, readOpts)) {
      const recordId = recordIdOf(getPath(record, idSegs));
      if (recordId === undefined) throw datasetError(line, 'record_id', `no usable id in field "${opts.idField}" (a non-empty string or an integer)`);
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
        if (!header) {
          header = Object.keys(record);
          const missing = opts.fields.filter((f) => !header!.includes(f));
          if (missing.length > 0) throw datasetError(1, 'field_absent', `no column named ${missing.map((f) => `"${f}"`).join(', ')}`);
          rows.push(header);
        }
        rows.push(header.map((h) => record[h] as unknown));
        if (rows.length >= BATCH) await flush();
      } else {
        lines.push(JSON.stringify(record) + '\n');
        if (lines.length >= BATCH) await flush();
      }
    }
    await flush();
    const absent = opts.fields.filter((_, i) => !present[i]);
    if (absent.length > 0) throw datasetError(0, 'field_absent', `no record has the field(s) ${absent.map((f) => `"${f}"`).join(', ')}`);
    if (partial) {
      await endStream(out);
      await rename(partial, toPath!);
    }
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
  }
  return validateManifest({ version: 1, datasetId: opts.datasetId, idField: opts.idField, fields: [...opts.fields], keys });
}
