/**
 * The simulator's CiphertextBlob, version 1:
 *
 *   "EKC" 0x01 | key id (36 ASCII bytes, a UUID) | IV (12) | AES-256-GCM ciphertext | tag (16)
 *
 * The AES-GCM additional data is the 52-byte header followed by the canonical encoding of the
 * encryption context, so a blob opens only under its own key and with exactly its context. The
 * format is the simulator's own (AWS's is not public); only its properties match AWS.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const MAGIC = Buffer.from([0x45, 0x4b, 0x43, 0x01]);
const KEY_ID_LEN = 36;
const HEADER_LEN = MAGIC.length + KEY_ID_LEN + 12;
const TAG_LEN = 16;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type EncryptionContext = Readonly<Record<string, string>>;

/** Sorted by key (UTF-8 byte order), each string length-prefixed: unambiguous and order-free. */
export function canonicalContext(ctx: EncryptionContext): Buffer {
  const entries = Object.entries(ctx)
    .map(([k, v]) => [Buffer.from(k, 'utf8'), Buffer.from(v, 'utf8')] as const)
    .sort((a, b) => Buffer.compare(a[0], b[0]));
  const parts: Buffer[] = [];
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  parts.push(u32(entries.length));
  for (const [k, v] of entries) parts.push(u32(k.length), k, u32(v.length), v);
  return Buffer.concat(parts);
}

export function sealBlob(keyId: string, material: Uint8Array, plaintext: Uint8Array, ctx: EncryptionContext): Uint8Array {
  if (!UUID_RE.test(keyId)) throw new TypeError('"keyId" expected a lower-case UUID');
  const iv = randomBytes(12);
  const header = Buffer.concat([MAGIC, Buffer.from(keyId, 'ascii'), iv]);
  const c = createCipheriv('aes-256-gcm', material, iv);
  c.setAAD(Buffer.concat([header, canonicalContext(ctx)]));
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return new Uint8Array(Buffer.concat([header, ct, c.getAuthTag()]));
}

/** The key id a blob names, or undefined when the bytes are not a version-1 blob. */
export function blobKeyId(blob: Uint8Array): string | undefined {
  if (blob.length < HEADER_LEN + TAG_LEN) return undefined;
  if (!Buffer.from(blob.subarray(0, 4)).equals(MAGIC)) return undefined;
  const id = Buffer.from(blob.subarray(4, 4 + KEY_ID_LEN)).toString('latin1');
  return UUID_RE.test(id) ? id : undefined;
}

/** Returns the plaintext, or undefined on any mismatch (wrong key, wrong context, tampering). */
export function openBlob(blob: Uint8Array, material: Uint8Array, ctx: EncryptionContext): Uint8Array | undefined {
  if (blobKeyId(blob) === undefined) return undefined;
  const header = blob.subarray(0, HEADER_LEN);
  try {
    const d = createDecipheriv('aes-256-gcm', material, blob.subarray(HEADER_LEN - 12, HEADER_LEN));
    d.setAAD(Buffer.concat([header, canonicalContext(ctx)]));
    d.setAuthTag(blob.subarray(blob.length - TAG_LEN));
    return new Uint8Array(Buffer.concat([d.update(blob.subarray(HEADER_LEN, blob.length - TAG_LEN)), d.final()]));
  } catch {
    return undefined;
  }
}
