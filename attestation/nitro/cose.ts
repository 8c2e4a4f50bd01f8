/**
 * The few CBOR byte layouts the Nitro format needs, written out by hand so that what is signed is
 * exactly what AWS's NSM signs (serde_cbor: minimal heads, except the timestamp, which is always a
 * full 8-byte uint).
 */
import { concatBytes } from '../bytes.js';

/** A minimal-length CBOR head for major type `major` (0..7) and argument `n`. */
export function cborHead(major: number, n: number): Uint8Array {
  const m = major << 5;
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`CBOR argument out of range: ${n}`);
  if (n < 24) return Uint8Array.of(m | n);
  if (n < 0x100) return Uint8Array.of(m | 24, n);
  if (n < 0x10000) return Uint8Array.of(m | 25, n >>> 8, n & 0xff);
  if (n < 0x100000000) return Uint8Array.of(m | 26, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  return cborUint64(n, m);
}

/** A uint always encoded in the 8-byte form (`1b`), as the NSM writes `timestamp`. */
export function cborUint64(n: number, m = 0): Uint8Array {
  const out = new Uint8Array(9);
  out[0] = m | 27;
  new DataView(out.buffer).setBigUint64(1, BigInt(n));
  return out;
}

export const cborBstr = (b: Uint8Array): Uint8Array => concatBytes(cborHead(2, b.length), b);
export const cborTstr = (s: string): Uint8Array => {
  const b = new TextEncoder().encode(s);
  return concatBytes(cborHead(3, b.length), b);
};

const SIGNATURE1 = cborTstr('Signature1');
const EMPTY_BSTR = Uint8Array.of(0x40);

/**
 * RFC 8152 §4.4 Sig_structure for COSE_Sign1 with empty external AAD:
 * `["Signature1", protected, h'', payload]`, built from the original protected and payload bytes.
 */
export function sigStructure(protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(0x84), SIGNATURE1, cborBstr(protectedBytes), EMPTY_BSTR, cborBstr(payload));
}

/** The protected header every real document carries: `{1: -35}` (alg ES384). */
export const PROTECTED_ES384 = Uint8Array.of(0xa1, 0x01, 0x38, 0x22);
