/**
 * Strict DER: a TLV reader for slicing certificates into their exact signed bytes, and the
 * ECDSA-Sig-Value -> IEEE P1363 (r||s) converter every certificate signature goes through.
 * As strict as noble's der.ts: minimal lengths, no indefinite form, minimal non-negative INTEGERs,
 * nothing trailing.
 */

export class DerError extends Error {
  override name = 'DerError';
}

export interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the value. */
  valueStart: number;
  /** Offset after the value. */
  end: number;
}

/** Read one TLV at `pos` within `b[..limit)`. Single-byte tags only (all X.509 needs here). */
export function readTlv(b: Uint8Array, pos: number, limit = b.length): Tlv {
  if (pos + 2 > limit) throw new DerError('truncated TLV');
  const tag = b[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tag');
  let len = b[pos + 1]!;
  let p = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('indefinite length');
    if (n > 3) throw new DerError('length too large');
    if (p + n > limit) throw new DerError('truncated length');
    if (b[p] === 0) throw new DerError('non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p + i]!;
    if (len < 0x80) throw new DerError('non-minimal length');
    p += n;
  }
  if (len > limit - p) throw new DerError('value runs past the end');
  return { tag, start: pos, valueStart: p, end: p + len };
}

/** Split a SEQUENCE's value into its child TLVs. */
export function children(b: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let p = parent.valueStart;
  while (p < parent.end) {
    const t = readTlv(b, p, parent.end);
    out.push(t);
    p = t.end;
  }
  return out;
}

function derInteger(b: Uint8Array, pos: number, limit: number, size: number): { value: Uint8Array; end: number } | undefined {
  if (pos + 2 > limit || b[pos] !== 0x02) return undefined;
  const len = b[pos + 1]!;
  // Each integer fits a short-form length for every curve up to P-521's 66 bytes + 1.
  if (len & 0x80 || len === 0) return undefined;
  const start = pos + 2;
  const end = start + len;
  if (end > limit) return undefined;
  if (b[start]! & 0x80) return undefined; // negative
  if (len > 1 && b[start] === 0 && !(b[start + 1]! & 0x80)) return undefined; // needless leading zero
  let v = b.subarray(start, end);
  if (v[0] === 0 && v.length > 1) v = v.subarray(1);
  if (v.length > size) return undefined;
  return { value: v, end };
}

/**
 * DER ECDSA-Sig-Value `SEQUENCE { r INTEGER, s INTEGER }` -> r||s with each left-padded to `size`
 * bytes. Returns undefined for anything that is not the one canonical DER encoding, so the caller
 * treats it as a bad signature.
 */
export function derEcdsaToP1363(sig: Uint8Array, size = 48): Uint8Array | undefined {
  if (sig.length < 8 || sig[0] !== 0x30) return undefined;
  let len = sig[1]!;
  let p = 2;
  if (len & 0x80) {
    // Long form only when the value is >= 128 bytes, one length byte.
    if (len !== 0x81) return undefined;
    len = sig[2]!;
    if (len < 0x80) return undefined;
    p = 3;
  }
  if (p + len !== sig.length) return undefined;
  const r = derInteger(sig, p, sig.length, size);
  if (r === undefined) return undefined;
  const s = derInteger(sig, r.end, sig.length, size);
  if (s === undefined || s.end !== sig.length) return undefined;
  const out = new Uint8Array(2 * size);
  out.set(r.value, size - r.value.length);
  out.set(s.value, 2 * size - s.value.length);
  return out;
}
