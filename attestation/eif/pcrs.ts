/**
 * Nitro PCRs of an EIF, as AWS's builder and `nitro-cli describe-eif` compute them
 * (aws-nitro-enclaves-image-format `EifBuilder::measure`, `get_pcrs`, `EifHasher::tpm_extend_finalize_reset`):
 *
 *   PCR0 = SHA-384(0^48 ‖ SHA-384(kernel ‖ cmdline ‖ ramdisk_0 ‖ … ‖ ramdisk_n))   the whole image
 *   PCR1 = SHA-384(0^48 ‖ SHA-384(kernel ‖ cmdline ‖ ramdisk_0))                  kernel + bootstrap ramdisk
 *   PCR2 = SHA-384(0^48 ‖ SHA-384(ramdisk_1 ‖ … ‖ ramdisk_n))                     the application ramdisks
 *   PCR8 = SHA-384(0^48 ‖ SHA-384(DER of the signing certificate))                signed images only
 *
 * Section data only, in file order: section headers, the metadata and the signature section are not
 * measured. Each PCR is one TPM-style extend of a zero register with the digest of its data.
 */
import { sha384 } from '@noble/hashes/sha2.js';

export interface IncrementalHash {
  update(data: Uint8Array): unknown;
  digest(): Uint8Array;
}
/** A fresh SHA-384. Default: @noble/hashes; host code passes node:crypto's (faster). */
export type HashFactory = () => IncrementalHash;
export const nobleSha384: HashFactory = () => sha384.create();

const ZERO_PCR = new Uint8Array(48);

/** SHA-384(0^48 ‖ digest): extend an all-zero SHA-384 register once. */
export function extendZeroPcr(digest: Uint8Array, hash: HashFactory = nobleSha384): Uint8Array {
  const h = hash();
  h.update(ZERO_PCR);
  h.update(digest);
  return new Uint8Array(h.digest());
}

/** PCR8 from the DER of the signing certificate. */
export function certificatePcr(der: Uint8Array, hash: HashFactory = nobleSha384): Uint8Array {
  const h = hash();
  h.update(der);
  return extendZeroPcr(new Uint8Array(h.digest()), hash);
}

export interface EifPcrs {
  0: Uint8Array;
  1: Uint8Array;
  2: Uint8Array;
  8?: Uint8Array;
}

/**
 * Feed the measured sections in file order: `boot` for the kernel, the cmdline and the first ramdisk,
 * `app` for every later ramdisk. Chunks may be of any size.
 */
export class EifMeasurer {
  readonly #image: IncrementalHash;
  readonly #boot: IncrementalHash;
  readonly #app: IncrementalHash;
  readonly #hash: HashFactory;
  #done = false;

  constructor(hash: HashFactory = nobleSha384) {
    this.#hash = hash;
    this.#image = hash();
    this.#boot = hash();
    this.#app = hash();
  }

  update(part: 'boot' | 'app', chunk: Uint8Array): void {
    if (this.#done) throw new TypeError('EifMeasurer: update after pcrs()');
    this.#image.update(chunk);
    (part === 'boot' ? this.#boot : this.#app).update(chunk);
  }

  /** PCR0, PCR1, PCR2 (and PCR8 when the signing certificate's DER is given). Call once. */
  pcrs(certificateDer?: Uint8Array): EifPcrs {
    if (this.#done) throw new TypeError('EifMeasurer: pcrs() called twice');
    this.#done = true;
    const out: EifPcrs = {
      0: extendZeroPcr(new Uint8Array(this.#image.digest()), this.#hash),
      1: extendZeroPcr(new Uint8Array(this.#boot.digest()), this.#hash),
      2: extendZeroPcr(new Uint8Array(this.#app.digest()), this.#hash),
    };
    if (certificateDer !== undefined) out[8] = certificatePcr(certificateDer, this.#hash);
    return out;
  }
}
