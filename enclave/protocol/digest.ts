/**
 * The dataset digest: what the host sent and the enclave received, record by record, in order.
 *
 *   h = SHA-384( "enclavekit-dataset-v1" || u32be(len(datasetId)) || datasetId
 *                || for each record: u32be(len(c)) || c        where c = canonical CBOR of the record
 *                || u64be(record count) )
 *
 * Records are hashed as they travel (encrypted fields still encrypted), so the host computes it
 * without keys. Canonical encoding makes it independent of how records were batched, of key order,
 * and of whether they came from NDJSON, CSV or CBOR frames. The length prefixes and the final count
 * make the record sequence unambiguous; the running hash is the chain.
 */
import { createHash, type Hash } from 'node:crypto';
import { ToolkitError } from '../../attestation/errors.js';
import { withCanonicalJson } from './cbor.js';

const DOMAIN = Buffer.from('enclavekit-dataset-v1', 'latin1');

/** Hash input is gathered here and handed to the hash in large pieces: one update per record is slow. */
const CHUNK = 256 * 1024;

export class DatasetDigest {
  #hash: Hash;
  #count = 0;
  #done = false;
  #buf = Buffer.allocUnsafe(CHUNK);
  #pos = 0;

  constructor(datasetId: string) {
    this.#hash = createHash('sha384');
    this.#hash.update(DOMAIN);
    const id = Buffer.from(datasetId, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(id.length);
    this.#hash.update(len);
    this.#hash.update(id);
  }

  get count(): number {
    return this.#count;
  }

  /**
   * Add one record. A value outside the JSON model (a byte string, a tagged value, NaN) is
   * `ERR_DATASET_INVALID`: it could not have come from a dataset file.
   */
  add(record: unknown): void {
    if (this.#done) throw new Error('DatasetDigest: already finished');
    try {
      withCanonicalJson(record, (c) => this.#append(c, 0, c.length));
    } catch (e) {
      if (e instanceof ToolkitError) throw e;
      throw new ToolkitError('ERR_DATASET_INVALID', 'record holds a value that is not JSON', { reason: 'record_value', cause: e });
    }
    this.#count++;
  }

  /**
   * Add one record given as `bytes[start:end]`, which the caller guarantees IS the canonical encoding
   * of the record (encoded by `CanonicalBuffer.json`, or checked by `decodeCanonicalSpans`). Same
   * digest as `add(record)`, without encoding the record again.
   */
  addEncoded(bytes: Uint8Array, start: number, end: number): void {
    if (this.#done) throw new Error('DatasetDigest: already finished');
    if (!(start >= 0 && start <= end && end <= bytes.length)) throw new RangeError('addEncoded: span outside the bytes');
    this.#append(bytes, start, end);
    this.#count++;
  }

  #append(c: Uint8Array, start: number, end: number): void {
    const n = end - start;
    if (this.#pos + 4 + n > CHUNK) this.#flush();
    if (4 + n > CHUNK) {
      const len = Buffer.allocUnsafe(4);
      len.writeUInt32BE(n);
      this.#hash.update(len);
      this.#hash.update(c.subarray(start, end));
      return;
    }
    const b = this.#buf;
    const p = this.#pos;
    b[p] = n >>> 24;
    b[p + 1] = (n >>> 16) & 0xff;
    b[p + 2] = (n >>> 8) & 0xff;
    b[p + 3] = n & 0xff;
    b.set(c.subarray(start, end), p + 4);
    this.#pos = p + 4 + n;
  }

  #flush(): void {
    if (this.#pos > 0) this.#hash.update(this.#buf.subarray(0, this.#pos));
    this.#pos = 0;
  }

  digest(): Uint8Array {
    if (this.#done) throw new Error('DatasetDigest: already finished');
    this.#done = true;
    this.#flush();
    const n = Buffer.alloc(8);
    n.writeBigUInt64BE(BigInt(this.#count));
    this.#hash.update(n);
    return new Uint8Array(this.#hash.digest());
  }
}

/** SHA-384 of arbitrary bytes (result digests, query digests). */
export function sha384(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha384').update(data).digest());
}
