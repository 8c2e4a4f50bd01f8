/**
 * The identity of the image a simulator pretends to run, and the measurements that follow from it.
 * Issuer (enclave/platform) and expecter (host: key policies, `--expect-*` defaults) both derive them
 * here, so the two sides cannot drift apart.
 *
 * A real EIF gives PCR0 = SHA384(0^48 || SHA384(kernel || cmdline || ramdisks)), PCR1 = the same over
 * kernel+bootstrap, PCR2 = the same over the application ramdisks (nitro.md §5). The simulator has no
 * EIF, so it derives the three from one 48-byte *image id* with a domain prefix each, keeping the
 * real "extend a zero PCR with a digest" shape:
 *
 *   imageId     = SHA384("enclavekit-sim-image-v1\0" || SHA384(file_1) || ... || SHA384(file_n))
 *   PCR<k>      = SHA384(0^48 || SHA384("enclavekit-sim-pcr<k>-v1\0" || imageId))      k = 0, 1, 2
 *   PCR3        = SHA384(0^48 || UTF-8(iamRoleArn))   if a role is configured, else 0^48
 *   PCR4        = SHA384(0^48 || UTF-8(instanceId))   (exactly the real formula, verified in nitro.md)
 *   PCR5..15    = 0^48, PCR8 = 0^48 (unsigned image)
 *   MEASUREMENT = SHA384("enclavekit-sim-snp-measurement-v1\0" || imageId)   (simulated SEV-SNP)
 *
 * Files are hashed in the order given, content only (renaming a file keeps the id). Any change to
 * any byte of the bundle changes PCR0 and MEASUREMENT, which is what key policies bind to.
 *
 * Pure (@noble/hashes, no `node:` imports): reading files is the caller's business.
 */
import { sha384 as nobleSha384 } from '@noble/hashes/sha2.js';

const PCR_LEN = 48;
const ZERO48 = new Uint8Array(PCR_LEN);
const utf8 = new TextEncoder();

/** Parent instance id measured into PCR4 when none is configured. */
export const SIM_DEFAULT_INSTANCE_ID = 'i-0e5a51c0de0000000';

function sha384(...parts: (Uint8Array | string)[]): Uint8Array {
  const h = nobleSha384.create();
  for (const p of parts) h.update(typeof p === 'string' ? utf8.encode(p) : p);
  return h.digest();
}

function checkImageId(imageId: Uint8Array): void {
  if (!(imageId instanceof Uint8Array) || imageId.length !== 48) throw new RangeError('"imageId" expected Uint8Array of length 48');
}

/** The NSM's extend: SHA384(current || data). */
export function pcrExtend(current: Uint8Array, data: Uint8Array | string): Uint8Array {
  return sha384(current, data);
}

/** Image id from the SHA-384 digests of the image's files. No files is a valid (empty) image. */
export function simImageIdFromDigests(digests: readonly Uint8Array[]): Uint8Array {
  return sha384('enclavekit-sim-image-v1\0', ...digests);
}

/** Image id from the files' contents held in memory. */
export function simImageIdFromContents(files: readonly Uint8Array[]): Uint8Array {
  return simImageIdFromDigests(files.map((f) => sha384(f)));
}

/** PCR0, PCR1 or PCR2 of a simulated image. */
export function simImagePcr(k: 0 | 1 | 2, imageId: Uint8Array): Uint8Array {
  checkImageId(imageId);
  return pcrExtend(ZERO48, sha384(`enclavekit-sim-pcr${k}-v1\0`, imageId));
}

/** PCR0 of a simulated image: what a key policy for that image binds to. */
export function simPcr0(imageId: Uint8Array): Uint8Array {
  return simImagePcr(0, imageId);
}

export interface SimImageIdentity {
  /** 48 bytes, from an image-id helper or configured directly. */
  imageId: Uint8Array;
  /** Parent instance id, e.g. `i-0123456789abcdef0`; measured into PCR4. */
  instanceId?: string;
  /** IAM role ARN of the parent; measured into PCR3 when given. */
  iamRoleArn?: string;
}

/** The boot PCRs 0..15 of a simulated Nitro enclave. */
export function simBootPcrs(id: SimImageIdentity): Map<number, Uint8Array> {
  checkImageId(id.imageId);
  const m = new Map<number, Uint8Array>();
  for (let i = 0; i < 16; i++) m.set(i, new Uint8Array(PCR_LEN));
  for (const k of [0, 1, 2] as const) m.set(k, simImagePcr(k, id.imageId));
  if (id.iamRoleArn !== undefined) m.set(3, pcrExtend(ZERO48, id.iamRoleArn));
  m.set(4, pcrExtend(ZERO48, id.instanceId ?? SIM_DEFAULT_INSTANCE_ID));
  return m;
}

/** MEASUREMENT of a simulated SEV-SNP guest running this image. */
export function simSnpMeasurement(imageId: Uint8Array): Uint8Array {
  checkImageId(imageId);
  return sha384('enclavekit-sim-snp-measurement-v1\0', imageId);
}
