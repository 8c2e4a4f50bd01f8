/**
 * The worker's key material: one RSA key pair per worker process (its public half goes into every
 * attestation sent to KMS as the Recipient key), and the per-job cache of data keys.
 *
 * RSA-2048 is the default: it is what AWS's own enclave SDK and enclaver use, and KMS accepts it.
 * Measured (`npm run bench -- recipient-key`, 2 busy cores): RSA-4096 generation is ~12x slower
 * (about 4 s against 0.3 s, paid at every worker start) and each unwrap ~3x slower, for no gain
 * that matters here: the key lives for one worker process and only wraps 32-byte data keys.
 * RSA-4096 stays available for deployments whose policy demands it.
 */
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';

const generateKeyPairAsync = promisify(generateKeyPair);

export type RecipientKeyBits = 2048 | 3072 | 4096;

export interface RecipientKeyPair {
  /** DER SubjectPublicKeyInfo: what goes into the attestation's `public_key`. */
  readonly publicKeySpki: Uint8Array;
  /** Never exported: the private half lives only in this process, as a KeyObject. */
  readonly privateKey: KeyObject;
  readonly bits: RecipientKeyBits;
}

export async function generateRecipientKeyPair(bits: RecipientKeyBits = 2048): Promise<RecipientKeyPair> {
  if (bits !== 2048 && bits !== 3072 && bits !== 4096) throw new RangeError('"bits" expected 2048, 3072 or 4096');
  const { publicKey, privateKey } = await generateKeyPairAsync('rsa', { modulusLength: bits, publicExponent: 0x10001 });
  const publicKeySpki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  return Object.freeze({ publicKeySpki, privateKey, bits });
}

/**
 * Data keys of one job, by key reference. `wipe()` zeroes every key it handed out and forgets them:
 * callers must not keep copies beyond the job. (JS cannot promise that no copy exists elsewhere in
 * the heap, e.g. inside the SDK's response buffers; zeroing what we own is the part we control.)
 */
export class DataKeyCache {
  readonly #keys = new Map<string, Uint8Array>();
  #wiped = false;

  get size(): number {
    return this.#keys.size;
  }

  has(ref: string): boolean {
    return this.#keys.has(ref);
  }

  /** The cached key (not a copy, so that `wipe()` reaches it); undefined if absent. */
  get(ref: string): Uint8Array | undefined {
    return this.#keys.get(ref);
  }

  /** Takes ownership of `key`. */
  set(ref: string, key: Uint8Array): void {
    if (this.#wiped) {
      key.fill(0);
      throw new Error('data key cache already wiped');
    }
    const old = this.#keys.get(ref);
    if (old !== undefined && old !== key) old.fill(0);
    this.#keys.set(ref, key);
  }

  refs(): string[] {
    return [...this.#keys.keys()];
  }

  wipe(): void {
    for (const k of this.#keys.values()) k.fill(0);
    this.#keys.clear();
    this.#wiped = true;
  }
}
