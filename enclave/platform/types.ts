/**
 * The one interface the worker uses for its TEE, whichever it is: a real Nitro enclave (NSM), a real
 * SEV-SNP guest (configfs-tsm or /dev/sev-guest), or a simulator of either.
 *
 * The worker never branches on the platform except through `evidenceFormat` (what the bytes from
 * `attest` are) and `kind` (what a result must say about where it was computed).
 */

export type PlatformKind = 'nitro' | 'sev-snp' | 'simulator';
export type EvidenceFormat = 'nitro' | 'sev-snp';

export interface AttestOptions {
  /** Nitro `user_data`; up to 512 bytes (the NSM spec's limit, which real hardware exceeds). */
  userData?: Uint8Array;
  /** Nitro `nonce`; up to 512 bytes. */
  nonce?: Uint8Array;
  /** Nitro `public_key`, e.g. the DER SPKI of the worker's RSA key for KMS Recipient; up to 1024 bytes. */
  publicKey?: Uint8Array;
}

export interface PcrDescription {
  index: number;
  locked: boolean;
  /** 48 bytes (SHA-384 bank). */
  value: Uint8Array;
}

export interface Platform {
  readonly kind: PlatformKind;
  readonly evidenceFormat: EvidenceFormat;
  /**
   * Fresh evidence binding the given values. Nitro: a COSE_Sign1 attestation document.
   * SEV-SNP: the 1184-byte report followed by its certificate table (see `sev-snp-binding.ts`
   * for how public key, user data and nonce are folded into REPORT_DATA).
   */
  attest(options?: AttestOptions): Promise<Uint8Array>;
  describePcr(index: number): Promise<PcrDescription>;
  /** PCR <- SHA-384(PCR || data); returns the new value. Locked PCRs refuse. */
  extendPcr(index: number, data: Uint8Array): Promise<Uint8Array>;
  lockPcr(index: number): Promise<void>;
  /** Locks PCRs [0, range). */
  lockPcrs(range: number): Promise<void>;
  /** Hardware (or simulated) randomness; `n` in 1..256 as the NSM allows. */
  random(n: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Producer-side limits from the NSM API spec (attestation_process.md); see nitro.md §1.2. */
export const MAX_USER_DATA = 512;
export const MAX_NONCE = 512;
export const MAX_PUBLIC_KEY = 1024;
export const MAX_RANDOM = 256;
export const PCR_COUNT = 32;
/** PCRs 0..15 are measured at boot and locked; 16..31 belong to the application. */
export const FIRST_APP_PCR = 16;

/** Caller misuse (not untrusted input): TypeError/RangeError, noble `abytes` style. */
export function checkAttestOptions(o: AttestOptions | undefined): AttestOptions {
  const out: AttestOptions = {};
  if (o === undefined) return out;
  if (typeof o !== 'object' || o === null) throw new TypeError('"options" expected an object');
  const check = (v: unknown, label: string, max: number): Uint8Array | undefined => {
    if (v === undefined) return undefined;
    if (!(v instanceof Uint8Array)) throw new TypeError(`"${label}" expected Uint8Array, got ${typeof v}`);
    if (v.length > max) throw new RangeError(`"${label}" expected at most ${max} bytes, got length=${v.length}`);
    return v;
  };
  const userData = check(o.userData, 'userData', MAX_USER_DATA);
  const nonce = check(o.nonce, 'nonce', MAX_NONCE);
  const publicKey = check(o.publicKey, 'publicKey', MAX_PUBLIC_KEY);
  if (userData !== undefined) out.userData = userData;
  if (nonce !== undefined) out.nonce = nonce;
  if (publicKey !== undefined) out.publicKey = publicKey;
  return out;
}

export function checkPcrIndex(index: unknown): number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= PCR_COUNT)
    throw new RangeError(`"index" expected an integer in [0, ${PCR_COUNT}), got ${String(index)}`);
  return index;
}

export function checkRandomLength(n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_RANDOM)
    throw new RangeError(`"n" expected an integer in [1, ${MAX_RANDOM}], got ${String(n)}`);
  return n;
}
