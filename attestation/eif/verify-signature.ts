/**
 * Check an EIF signature the way `nitro-cli describe-eif` does (EifReader::get_certificate_info): the
 * COSE_Sign1 verifies under the public key of the signing certificate, and its payload is exactly the
 * PcrInfo of the image's PCR0. Like describe-eif, the certificate's validity period is reported, not
 * enforced, and no chain is built: PCR8 pins the certificate itself.
 */
import { p256, p521 } from '@noble/curves/nist.js';
import type { CryptoProvider } from '../crypto/provider.js';
import { equalBytes, toHex } from '../bytes.js';
import { isToolkitError } from '../errors.js';
import { children, readTlv } from '../x509/der.js';
import { decodeOid, parseCertificate, type CertFacts } from '../x509/cert.js';
import { sigStructure } from '../nitro/cose.js';
import { decodeCoseSign1, pcrInfoPayload, sigInvalid, type CoseAlg, type EifSignatureEntry } from './signature.js';

const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const CURVE_ALG: Readonly<Record<string, { alg: CoseAlg; name: string; point: number }>> = {
  '1.2.840.10045.3.1.7': { alg: 'ES256', name: 'P-256', point: 65 },
  '1.3.132.0.34': { alg: 'ES384', name: 'P-384', point: 97 },
  '1.3.132.0.35': { alg: 'ES512', name: 'P-521', point: 133 },
};

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The DER of the first CERTIFICATE block of PEM text (what openssl's X509::from_pem reads). */
export function firstPemCertificate(pem: Uint8Array): Uint8Array {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(pem);
  } catch (cause) {
    throw sigInvalid('certificate', 'signing_certificate is not UTF-8 PEM text', cause);
  }
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(text);
  if (!m) throw sigInvalid('certificate', 'signing_certificate holds no PEM CERTIFICATE block');
  const body = m[1]!.replace(/\s+/g, '');
  if (body.length === 0 || body.length % 4 !== 0 || !B64.test(body)) throw sigInvalid('certificate', 'bad base64 in the PEM CERTIFICATE block');
  const bin = atob(body);
  const der = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) der[i] = bin.charCodeAt(i);
  return der;
}

/** Curve and uncompressed point of an EC SubjectPublicKeyInfo. */
export function ecPublicKey(spki: Uint8Array): { alg: CoseAlg; curve: string; point: Uint8Array } {
  try {
    const top = readTlv(spki, 0);
    if (top.tag !== 0x30 || top.end !== spki.length) throw new Error('shape');
    const [algId, bits, extra] = children(spki, top);
    if (algId?.tag !== 0x30 || bits?.tag !== 0x03 || extra !== undefined) throw new Error('shape');
    const [oid, curveOid, more] = children(spki, algId);
    if (oid?.tag !== 0x06 || curveOid?.tag !== 0x06 || more !== undefined) throw new Error('not EC');
    if (decodeOid(spki.subarray(oid.valueStart, oid.end)) !== OID_EC_PUBLIC_KEY) throw new Error('not EC');
    const c = CURVE_ALG[decodeOid(spki.subarray(curveOid.valueStart, curveOid.end))];
    if (c === undefined) throw new Error('curve');
    const point = spki.subarray(bits.valueStart + 1, bits.end);
    if (spki[bits.valueStart] !== 0 || point.length !== c.point || point[0] !== 4) throw new Error('point');
    return { alg: c.alg, curve: c.name, point };
  } catch (cause) {
    throw sigInvalid('certificate_key', 'the signing certificate does not hold an EC P-256, P-384 or P-521 public key', cause);
  }
}

export interface EifSignatureCheck {
  algorithm: CoseAlg;
  curve: string;
  /** The PCR the signature covers (always 0 for what AWS writes). */
  pcrIndex: number;
  certificateDer: Uint8Array;
  certificate: Pick<CertFacts, 'subject' | 'issuer' | 'serial' | 'notBefore' | 'notAfter'>;
}

/**
 * Decode the signing certificate (the DER that PCR8 measures) from a signature entry. Throws
 * ERR_EIF_SIGNATURE_INVALID when it is not a certificate.
 */
export function signingCertificate(entry: EifSignatureEntry): { der: Uint8Array; facts: CertFacts } {
  const der = firstPemCertificate(entry.certificatePem);
  try {
    return { der, facts: parseCertificate(der) };
  } catch (cause) {
    throw sigInvalid('certificate', `signing_certificate is not an X.509 certificate (${(cause as Error).message})`, cause);
  }
}

/** Verify the signature over PCR0. Throws ERR_EIF_SIGNATURE_INVALID with a `reason` on any failure. */
export function verifyEifSignature(entry: EifSignatureEntry, pcr0: Uint8Array, crypto: CryptoProvider): EifSignatureCheck {
  const { der, facts } = signingCertificate(entry);
  const key = ecPublicKey(facts.spki);
  const cose = decodeCoseSign1(entry.coseSign1);
  if (cose.alg !== key.alg) throw sigInvalid('cose_alg', `COSE alg ${cose.alg} does not match the certificate's ${key.curve} key`);
  if (!equalBytes(cose.payload, pcrInfoPayload(0, pcr0)))
    throw sigInvalid('pcr_mismatch', `the signed payload is not PcrInfo{register_index: 0, register_value: PCR0 ${toHex(pcr0)}}`);
  const tbs = sigStructure(cose.protectedHeader, cose.payload);
  let ok: boolean;
  try {
    if (cose.alg === 'ES384') ok = crypto.verifyEcdsaP384(facts.spki, tbs, cose.signature);
    else if (cose.alg === 'ES256') ok = p256.verify(cose.signature, tbs, key.point, { lowS: false });
    else ok = p521.verify(cose.signature, tbs, key.point, { lowS: false });
  } catch (cause) {
    if (isToolkitError(cause)) throw sigInvalid('certificate_key', cause.message, cause);
    ok = false;
  }
  if (!ok) throw sigInvalid('signature', `the ${cose.alg} signature does not verify under the signing certificate`);
  return {
    algorithm: cose.alg,
    curve: key.curve,
    pcrIndex: 0,
    certificateDer: der,
    certificate: { subject: facts.subject, issuer: facts.issuer, serial: facts.serial, notBefore: facts.notBefore, notAfter: facts.notAfter },
  };
}
