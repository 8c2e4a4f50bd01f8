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

export class DatasetDigest {
  #hash: Hash;
  #count = 0;
  #done = false;
  readonly #len = Buffer.alloc(4);

  constructor(datasetId: string) {
    this.#hash = createHash('sha384');
    this.#hash.update(DOMAIN);
    const id = Buffer.from(datasetId, 'utf8');
    this.#len.writeUInt32BE(id.length);
    this.#hash.update(this.#len);
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
      withCanonicalJson(record, (c) => {
        this.#len.writeUInt32BE(c.length);
        this.#hash.update(this.#len);
        this.#hash.update(c);
      });
    } catch (e) {
      if (e instanceof ToolkitError) throw e;
      throw new ToolkitError('ERR_DATASET_INVALID', 'record holds a value that is not JSON', { reason: 'record_value', cause: e });
    }
    this.#count++;
  }

  digest(): Uint8Array {
    if (this.#done) throw new Error('DatasetDigest: already finished');
    this.#done = true;
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
