/**
 * Pure-JS backend: @noble/curves for ECDSA P-384, @noble/hashes for SHA-2, BigInt for the RSA public
 * operation (verification only: no secret is involved, so constant time is not a concern here).
 */
import { p384 } from '@noble/curves/nist.js';
import { sha256, sha384 } from '@noble/hashes/sha2.js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { RSAPublicKey } from '@peculiar/asn1-rsa';
import { AttestationError } from '../errors.js';
import { equalBytes } from '../bytes.js';
import type { CryptoProvider } from './provider.js';

const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
// namedCurve secp384r1 (1.3.132.0.34) as it appears, DER-encoded, in the algorithm parameters.
const DER_OID_SECP384R1 = new Uint8Array([0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]);
const OID_RSA = '1.2.840.113549.1.1.1';
const OID_RSA_PSS = '1.2.840.113549.1.1.10';

function parseSpki(spki: Uint8Array): SubjectPublicKeyInfo {
  try {
    return AsnConvert.parse(spki, SubjectPublicKeyInfo);
  } catch (cause) {
    throw new AttestationError('ERR_CERT_INVALID', 'public key is not a valid SubjectPublicKeyInfo', {
      cause,
      reason: 'public_key',
    });
  }
}

function ecPoint(spki: Uint8Array): Uint8Array {
  const info = parseSpki(spki);
  const params = info.algorithm.parameters;
  const point = new Uint8Array(info.subjectPublicKey);
  const isP384 = params !== null && params !== undefined && equalBytes(new Uint8Array(params), DER_OID_SECP384R1);
  if (info.algorithm.algorithm !== OID_EC_PUBLIC_KEY || !isP384 || point.length !== 97 || point[0] !== 4)
    throw new AttestationError('ERR_CERT_INVALID', 'public key is not ECDSA P-384', { reason: 'public_key_type' });
  return point;
}


function bytesToBigInt(b: Uint8Array): bigint {
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n;
}

function bigIntToBytes(n: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let result = 1n;
  base %= mod;
  while (exp > 0n) {
    if (exp & 1n) result = (result * base) % mod;
    base = (base * base) % mod;
    exp >>= 1n;
  }
  return result;
}

function rsaKey(spki: Uint8Array): { n: bigint; e: bigint; bits: number } {
  const info = parseSpki(spki);
  const alg = info.algorithm.algorithm;
  if (alg !== OID_RSA && alg !== OID_RSA_PSS)
    throw new AttestationError('ERR_CERT_INVALID', 'public key is not RSA', { reason: 'public_key_type' });
  let key: RSAPublicKey;
  try {
    key = AsnConvert.parse(info.subjectPublicKey, RSAPublicKey);
  } catch (cause) {
    throw new AttestationError('ERR_CERT_INVALID', 'RSA public key is malformed', { cause, reason: 'public_key' });
  }
  let mod = new Uint8Array(key.modulus);
  while (mod.length > 0 && mod[0] === 0) mod = mod.subarray(1);
  const n = bytesToBigInt(mod);
  const e = bytesToBigInt(new Uint8Array(key.publicExponent));
  if (n === 0n || e < 3n) throw new AttestationError('ERR_CERT_INVALID', 'RSA public key is malformed', { reason: 'public_key' });
  return { n, e, bits: n.toString(2).length };
}

function mgf1Sha384(seed: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(len);
  const buf = new Uint8Array(seed.length + 4);
  buf.set(seed);
  for (let counter = 0, off = 0; off < len; counter++, off += 48) {
    buf[seed.length] = counter >>> 24;
    buf[seed.length + 1] = (counter >>> 16) & 0xff;
    buf[seed.length + 2] = (counter >>> 8) & 0xff;
    buf[seed.length + 3] = counter & 0xff;
    const h = sha384(buf);
    out.set(h.subarray(0, Math.min(48, len - off)), off);
  }
  return out;
}

/** EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with SHA-384 and a fixed 48-byte salt. */
function pssVerify(mHash: Uint8Array, em: Uint8Array, emBits: number): boolean {
  const hLen = 48;
  const sLen = 48;
  const emLen = em.length;
  if (emLen < hLen + sLen + 2) return false;
  if (em[emLen - 1] !== 0xbc) return false;
  const maskedDB = em.subarray(0, emLen - hLen - 1);
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const zeroBits = 8 * emLen - emBits;
  const topMask = (0xff << (8 - zeroBits)) & 0xff;
  if ((maskedDB[0]! & topMask) !== 0) return false;
  const dbMask = mgf1Sha384(h, emLen - hLen - 1);
  const db = new Uint8Array(maskedDB.length);
  for (let i = 0; i < db.length; i++) db[i] = maskedDB[i]! ^ dbMask[i]!;
  db[0] = db[0]! & (0xff >>> zeroBits);
  const psLen = emLen - hLen - sLen - 2;
  for (let i = 0; i < psLen; i++) if (db[i] !== 0) return false;
  if (db[psLen] !== 0x01) return false;
  const salt = db.subarray(db.length - sLen);
  const mPrime = new Uint8Array(8 + hLen + sLen);
  mPrime.set(mHash, 8);
  mPrime.set(salt, 8 + hLen);
  return equalBytes(sha384(mPrime), h);
}

export const nobleCrypto: CryptoProvider = Object.freeze({
  name: 'noble',
  sha256: (data: Uint8Array) => sha256(data),
  sha384: (data: Uint8Array) => sha384(data),
  verifyEcdsaP384(spki: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    const point = ecPoint(spki);
    if (signature.length !== 96) return false;
    try {
      return p384.verify(signature, message, point, { lowS: false, prehash: true, format: 'compact' });
    } catch {
      return false;
    }
  },
  verifyRsaPssSha384(spki: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    const { n, e, bits } = rsaKey(spki);
    const k = Math.ceil(bits / 8);
    if (signature.length !== k) return false;
    const s = bytesToBigInt(signature);
    if (s >= n) return false;
    const emBits = bits - 1;
    const emLen = Math.ceil(emBits / 8);
    const m = modPow(s, e, n);
    const full = bigIntToBytes(m, k);
    // When emBits is a multiple of 8 the encoded message is one byte shorter than the modulus.
    if (emLen < k && full[0] !== 0) return false;
    return pssVerify(sha384(message), full.subarray(k - emLen), emBits);
  },
});
