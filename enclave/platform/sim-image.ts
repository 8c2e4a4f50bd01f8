/**
 * The identity of the image a simulator pretends to run, and the PCRs that follow from it.
 *
 * A real EIF gives PCR0 = SHA384(0^48 || SHA384(kernel || cmdline || ramdisks)), PCR1 = the same over
 * kernel+bootstrap, PCR2 = the same over the application ramdisks (nitro.md §5). The simulator has no
 * EIF, so it derives the three from one 48-byte *image id* with a domain prefix each, keeping the
 * real "extend a zero PCR with a digest" shape:
 *
 *   imageId  = SHA384("enclavekit-sim-image-v1\0" || SHA384(file_1) || ... || SHA384(file_n))
 *   PCR<k>   = SHA384(0^48 || SHA384("enclavekit-sim-pcr<k>-v1\0" || imageId))      k = 0, 1, 2
 *   PCR3     = SHA384(0^48 || UTF-8(iamRoleArn))   if a role is configured, else 0^48
 *   PCR4     = SHA384(0^48 || UTF-8(instanceId))   (exactly the real formula, verified in nitro.md)
 *   PCR5..15 = 0^48, PCR8 = 0^48 (unsigned image)
 *
 * Files are hashed in the order given, content only (renaming a file keeps the id). Any change to
 * any byte of the bundle changes PCR0, which is what key policies bind to.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

const ZERO48 = new Uint8Array(48);
export const DEFAULT_INSTANCE_ID = 'i-0e5a51c0de0000000';

function sha384(...parts: (Uint8Array | string)[]): Uint8Array {
  const h = createHash('sha384');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** Digest a file in chunks, so a large bundle never sits in memory at once. */
async function digestFile(path: string): Promise<Uint8Array> {
  const h = createHash('sha384');
  const fh = await open(path, 'r');
  try {
    for await (const chunk of fh.createReadStream({ highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  } finally {
    await fh.close();
  }
  return new Uint8Array(h.digest());
}

/** No files at all is a valid (empty) image: the default identity of a simulator not told otherwise. */
export function imageIdFromDigests(digests: readonly Uint8Array[]): Uint8Array {
  return sha384('enclavekit-sim-image-v1\0', ...digests);
}

export async function imageIdFromFiles(paths: readonly string[]): Promise<Uint8Array> {
  const digests: Uint8Array[] = [];
  for (const p of paths) digests.push(await digestFile(p));
  return imageIdFromDigests(digests);
}

export interface SimImageIdentity {
  /** 48 bytes, from `imageIdFromFiles` or configured directly. */
  imageId: Uint8Array;
  /** Parent instance id, e.g. `i-0123456789abcdef0`; measured into PCR4. */
  instanceId?: string;
  /** IAM role ARN of the parent; measured into PCR3 when given. */
  iamRoleArn?: string;
}

export function simulatedBootPcrs(id: SimImageIdentity): Map<number, Uint8Array> {
  if (!(id.imageId instanceof Uint8Array) || id.imageId.length !== 48)
    throw new RangeError('"imageId" expected Uint8Array of length 48');
  const m = new Map<number, Uint8Array>();
  for (let i = 0; i < 16; i++) m.set(i, new Uint8Array(48));
  for (const k of [0, 1, 2]) m.set(k, sha384(ZERO48, sha384(`enclavekit-sim-pcr${k}-v1\0`, id.imageId)));
  if (id.iamRoleArn !== undefined) m.set(3, sha384(ZERO48, id.iamRoleArn));
  m.set(4, sha384(ZERO48, id.instanceId ?? DEFAULT_INSTANCE_ID));
  return m;
}
