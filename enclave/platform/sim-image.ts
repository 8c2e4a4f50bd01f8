/**
 * The simulated image identity, from the worker's side: the formulas live in
 * attestation/sim/image.ts (the host derives the same values from there); this file only reads the
 * bundle's files.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { SIM_DEFAULT_INSTANCE_ID, simBootPcrs, simImageIdFromDigests, type SimImageIdentity } from '../../attestation/sim/image.js';

export const DEFAULT_INSTANCE_ID = SIM_DEFAULT_INSTANCE_ID;
export type { SimImageIdentity };
/** No files at all is a valid (empty) image: the default identity of a simulator not told otherwise. */
export const imageIdFromDigests = simImageIdFromDigests;
export const simulatedBootPcrs = simBootPcrs;

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

/** Files are hashed in the order given, content only (renaming a file keeps the id). */
export async function imageIdFromFiles(paths: readonly string[]): Promise<Uint8Array> {
  const digests: Uint8Array[] = [];
  for (const p of paths) digests.push(await digestFile(p));
  return simImageIdFromDigests(digests);
}
