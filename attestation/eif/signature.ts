/**
 * The EIF signature section, byte for byte as AWS's builder writes it (aws-nitro-enclaves-image-format
 * `EifSigner`, serde_cbor 0.11 defaults, aws-nitro-enclaves-cose `CoseSign1`):
 *
 *   section   = [ PcrSignature ]                                  CBOR array (exactly one entry)
 *   PcrSignature = { "signing_certificate": [u8...],              PEM text of the certificate
 *                    "signature": [u8...] }                       the COSE_Sign1 bytes
 *   COSE_Sign1 = [ h'A1 01 <alg>', {}, payload, r‖s ]              untagged (tag 18 is accepted)
 *   payload   = { "register_index": 0, "register_value": [u8 × 48] }   PcrInfo of PCR0
 *
 * serde_cbor writes a `Vec<u8>` as an array of unsigned integers, not a byte string, and a struct as a
 * map with its field names in declaration order. The signature is ECDSA over SHA-256/384/512 by curve
 * (ES256 P-256, ES384 P-384, ES512 P-521), r‖s each padded to the curve size, over the RFC 8152
 * Sig_structure `["Signature1", protected, h'', payload]`.
 *
 * The reader is strict (minimal heads, definite lengths, exact shapes) and bounded: every length is
 * checked against the bytes left before anything is allocated.
 */
import { AttestationError } from '../errors.js';
import { concatBytes, equalBytes } from '../bytes.js';
import { cborBstr, cborHead, cborTstr, sigStructure } from '../nitro/cose.js';

export type CoseAlg = 'ES256' | 'ES384' | 'ES512';
export const COSE_ALG_ID: Readonly<Record<CoseAlg, number>> = { ES256: -7, ES384: -35, ES512: -36 };
/** Bytes of r and of s for each algorithm. */
export const COSE_SIG_HALF: Readonly<Record<CoseAlg, number>> = { ES256: 32, ES384: 48, ES512: 66 };

/** Largest signing certificate (PEM text) and COSE_Sign1 this reader accepts. */
export const MAX_SIGNING_CERT = 64 * 1024;
export const MAX_COSE_SIGN1 = 16 * 1024;

export function sigInvalid(reason: string, message: string, cause?: unknown): AttestationError {
  return new AttestationError('ERR_EIF_SIGNATURE_INVALID', `EIF signature: ${message}`, { reason, ...(cause !== undefined ? { cause } : {}) });
}

// ---------------------------------------------------------------- encoding (serde_cbor shapes)

/** serde_cbor's `Vec<u8>`: an array of unsigned integers. */
export function cborU8Array(b: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [cborHead(4, b.length)];
  const body = new Uint8Array(b.length * 2);
  let n = 0;
  for (const x of b) {
    if (x < 24) body[n++] = x;
    else {
      body[n++] = 0x18;
      body[n++] = x;
    }
  }
  parts.push(body.subarray(0, n));
  return concatBytes(...parts);
}

/** The COSE payload AWS signs: serde_cbor of `PcrInfo { register_index, register_value }`. */
export function pcrInfoPayload(index: number, value: Uint8Array): Uint8Array {
  if (!Number.isInteger(index) || index < 0 || index > 23) throw new RangeError('register_index must be 0..23');
  return concatBytes(Uint8Array.of(0xa2), cborTstr('register_index'), Uint8Array.of(index), cborTstr('register_value'), cborU8Array(value));
}

/** The protected header `{1: alg}` as aws-nitro-enclaves-cose serialises it. */
export function coseProtected(alg: CoseAlg): Uint8Array {
  return concatBytes(Uint8Array.of(0xa1, 0x01), cborInt(COSE_ALG_ID[alg]));
}

function cborInt(n: number): Uint8Array {
  return n >= 0 ? cborHead(0, n) : cborHead(1, -1 - n);
}

/** Bytes to sign for PCR `index` with value `value`: the Sig_structure over the PcrInfo payload. */
export function pcrSignatureToBeSigned(alg: CoseAlg, index: number, value: Uint8Array): { protectedHeader: Uint8Array; payload: Uint8Array; toBeSigned: Uint8Array } {
  const protectedHeader = coseProtected(alg);
  const payload = pcrInfoPayload(index, value);
  return { protectedHeader, payload, toBeSigned: sigStructure(protectedHeader, payload) };
}

/** The untagged COSE_Sign1 `[protected, {}, payload, signature]`. */
export function encodeCoseSign1(protectedHeader: Uint8Array, payload: Uint8Array, signature: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(0x84), cborBstr(protectedHeader), Uint8Array.of(0xa0), cborBstr(payload), cborBstr(signature));
}

/** The signature section: `[ { "signing_certificate": PEM bytes, "signature": COSE_Sign1 bytes } ]`. */
export function encodeSignatureSection(certificatePem: Uint8Array, coseSign1: Uint8Array): Uint8Array {
  return concatBytes(
    Uint8Array.of(0x81, 0xa2),
    cborTstr('signing_certificate'),
    cborU8Array(certificatePem),
    cborTstr('signature'),
    cborU8Array(coseSign1),
  );
}

// ---------------------------------------------------------------- decoding (strict, bounded)

class Reader {
  pos = 0;
  constructor(
    readonly b: Uint8Array,
    readonly where: string,
  ) {}

  fail(message: string): never {
    throw sigInvalid('signature_cbor', `${this.where}: ${message} at byte ${this.pos}`);
  }

  /** A head with a definite, minimally encoded argument. */
  head(): { major: number; arg: number } {
    if (this.pos >= this.b.length) this.fail('truncated');
    const ib = this.b[this.pos++]!;
    const major = ib >> 5;
    const ai = ib & 0x1f;
    if (ai < 24) return { major, arg: ai };
    const n = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : ai === 27 ? 8 : 0;
    if (n === 0) this.fail(ai === 31 ? 'indefinite length' : 'reserved additional information');
    if (this.pos + n > this.b.length) this.fail('truncated head');
    let arg = 0;
    for (let i = 0; i < n; i++) {
      arg = arg * 256 + this.b[this.pos + i]!;
      if (arg > Number.MAX_SAFE_INTEGER) this.fail('argument too large');
    }
    this.pos += n;
    const min = n === 1 ? 24 : n === 2 ? 0x100 : n === 4 ? 0x10000 : 0x100000000;
    if (arg < min) this.fail('non-minimal head');
    return { major, arg };
  }

  expect(major: number, what: string): number {
    const h = this.head();
    if (h.major !== major) this.fail(`${what}: expected major type ${major}, got ${h.major}`);
    return h.arg;
  }

  text(): string {
    const n = this.expect(3, 'map key');
    if (n > this.b.length - this.pos) this.fail('text runs past the end');
    let s: string;
    try {
      s = new TextDecoder('utf-8', { fatal: true }).decode(this.b.subarray(this.pos, this.pos + n));
    } catch {
      // TextDecoder's own TypeError must not escape a parser of untrusted bytes.
      return this.fail('text is not UTF-8');
    }
    this.pos += n;
    return s;
  }

  bytes(what: string, max: number): Uint8Array {
    const n = this.expect(2, what);
    if (n > max) this.fail(`${what} is ${n} bytes, at most ${max}`);
    if (n > this.b.length - this.pos) this.fail(`${what} runs past the end`);
    const out = this.b.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** serde_cbor `Vec<u8>`: an array of uints 0..255. The count is checked before allocating. */
  u8Array(what: string, max: number): Uint8Array {
    const n = this.expect(4, what);
    if (n > max) this.fail(`${what} has ${n} elements, at most ${max}`);
    if (n > this.b.length - this.pos) this.fail(`${what} runs past the end`);
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = this.expect(0, `${what}[${i}]`);
      if (v > 255) this.fail(`${what}[${i}] is ${v}, not a byte`);
      out[i] = v;
    }
    return out;
  }

  end(): void {
    if (this.pos !== this.b.length) this.fail(`${this.b.length - this.pos} trailing bytes`);
  }
}

export interface EifSignatureEntry {
  /** The PEM text exactly as stored. */
  certificatePem: Uint8Array;
  coseSign1: Uint8Array;
}

/** Decode the signature section. Exactly one PcrSignature (the only shape AWS writes). */
export function decodeSignatureSection(section: Uint8Array): EifSignatureEntry {
  const r = new Reader(section, 'signature section');
  const n = r.expect(4, 'signature list');
  if (n !== 1) throw sigInvalid('signature_count', `expected exactly one PcrSignature, found ${n}`);
  if (r.expect(5, 'PcrSignature') !== 2) r.fail('PcrSignature must have exactly 2 fields');
  let certificatePem: Uint8Array | undefined;
  let coseSign1: Uint8Array | undefined;
  for (let i = 0; i < 2; i++) {
    const key = r.text();
    if (key === 'signing_certificate' && certificatePem === undefined) certificatePem = r.u8Array('signing_certificate', MAX_SIGNING_CERT);
    else if (key === 'signature' && coseSign1 === undefined) coseSign1 = r.u8Array('signature', MAX_COSE_SIGN1);
    else r.fail(`unexpected or repeated field ${JSON.stringify(key.slice(0, 40))}`);
  }
  r.end();
  if (certificatePem!.length === 0) throw sigInvalid('certificate', 'signing_certificate is empty');
  return { certificatePem: certificatePem!, coseSign1: coseSign1! };
}

export interface DecodedCoseSign1 {
  protectedHeader: Uint8Array;
  alg: CoseAlg;
  payload: Uint8Array;
  signature: Uint8Array;
}

/** Decode a COSE_Sign1 (untagged or tag 18) with `{1: ES256|ES384|ES512}` protected and no other header. */
export function decodeCoseSign1(bytes: Uint8Array): DecodedCoseSign1 {
  const r = new Reader(bytes, 'COSE_Sign1');
  if (bytes[0] === 0xd2) r.pos = 1; // tag 18
  if (r.expect(4, 'COSE_Sign1') !== 4) r.fail('COSE_Sign1 must be an array of 4');
  const protectedHeader = r.bytes('protected', 64);
  const unprotected = r.expect(5, 'unprotected');
  if (unprotected !== 0) r.fail('unprotected header must be empty (AWS writes {})');
  const payload = r.bytes('payload', 1024);
  const signature = r.bytes('signature', 2 * 66);
  r.end();
  let alg: CoseAlg | undefined;
  for (const a of Object.keys(COSE_ALG_ID) as CoseAlg[]) if (equalBytes(protectedHeader, coseProtected(a))) alg = a;
  if (alg === undefined) throw sigInvalid('cose_alg', 'protected header is not {1: ES256|ES384|ES512}');
  if (signature.length !== 2 * COSE_SIG_HALF[alg]) throw sigInvalid('cose_signature', `${alg} signature must be ${2 * COSE_SIG_HALF[alg]} bytes, got ${signature.length}`);
  return { protectedHeader, alg, payload, signature };
}
