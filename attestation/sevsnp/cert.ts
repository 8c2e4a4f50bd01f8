/**
 * Parsing of AMD's SEV-SNP certificates (ARK, ASK, ASVK, VCEK, VLEK) and CRLs. Parsing only: which
 * rules apply to which certificate, and every signature, is decided in verify.ts. @peculiar/asn1-x509
 * decodes; every throw from it becomes `ERR_CERT_INVALID`. The signed TBS bytes are the original
 * bytes from the input, never a re-encoding.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  BasicConstraints,
  Certificate,
  CertificateList,
  KeyUsage,
  KeyUsageFlags,
  type Extension,
  type Name,
} from '@peculiar/asn1-x509';
import { RsaSaPssParams } from '@peculiar/asn1-rsa';
import { AttestationError } from '../errors.js';
import { toHex } from '../bytes.js';

const OID_RSA_PSS = '1.2.840.113549.1.1.10';
const OID_MGF1 = '1.2.840.113549.1.1.8';
const OID_SHA384 = '2.16.840.1.101.3.4.2.2';
const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const OID_SECP384R1_DER = '06052b81040022';
const OID_RSA = '1.2.840.113549.1.1.1';
const OID_CN = '2.5.4.3';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';

export const AMD_OID = Object.freeze({
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSPL: '1.3.6.1.4.1.3704.1.3.1',
  teeSPL: '1.3.6.1.4.1.3704.1.3.2',
  snpSPL: '1.3.6.1.4.1.3704.1.3.3',
  spl4: '1.3.6.1.4.1.3704.1.3.4',
  spl5: '1.3.6.1.4.1.3704.1.3.5',
  spl6: '1.3.6.1.4.1.3704.1.3.6',
  spl7: '1.3.6.1.4.1.3704.1.3.7',
  ucodeSPL: '1.3.6.1.4.1.3704.1.3.8',
  fmcSPL: '1.3.6.1.4.1.3704.1.3.9',
  hwID: '1.3.6.1.4.1.3704.1.4',
  cspID: '1.3.6.1.4.1.3704.1.5',
});

/** Upper bound on one certificate or CRL: AMD's are ~1.3-2 KB; refuse anything absurd before decoding. */
export const MAX_CERT_BYTES = 64 * 1024;

export interface AmdExtensions {
  structVersion?: number;
  productName?: string;
  blSPL?: number;
  teeSPL?: number;
  snpSPL?: number;
  spl4?: number;
  spl5?: number;
  spl6?: number;
  spl7?: number;
  ucodeSPL?: number;
  fmcSPL?: number;
  hwID?: Uint8Array;
  cspID?: string;
}

export interface AmdCert {
  readonly der: Uint8Array;
  readonly tbs: Uint8Array;
  readonly signature: Uint8Array;
  /** true when both signature algorithm fields are RSASSA-PSS SHA-384 / MGF1-SHA-384 / salt 48. */
  readonly pssSha384: boolean;
  readonly version: number;
  readonly serialHex: string;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly issuerCN: string | undefined;
  readonly subjectCN: string | undefined;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Uint8Array;
  readonly keyType: 'rsa' | 'ec-p384' | 'other';
  readonly ca: boolean | undefined;
  readonly keyCertSign: boolean | undefined;
  readonly amd: Readonly<AmdExtensions>;
}

function certError(reason: string, message: string, cause?: unknown): AttestationError {
  return new AttestationError('ERR_CERT_INVALID', message, { reason, cause });
}

const ab = (x: ArrayBuffer | ArrayBufferView): Uint8Array =>
  x instanceof ArrayBuffer ? new Uint8Array(x.slice(0)) : new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));

/** Strict definite-length DER header read; returns the full TLV span. */
function tlv(b: Uint8Array, off: number): { tag: number; start: number; end: number } {
  if (off + 2 > b.length) throw certError('der', 'DER: truncated header');
  const tag = b[off]!;
  let len = b[off + 1]!;
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || p + n > b.length) throw certError('der', 'DER: unsupported length encoding');
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | b[p + i]!;
    if (len < 0x80 || (n > 1 && b[p] === 0)) throw certError('der', 'DER: non-minimal length');
    p += n;
  }
  if (p + len > b.length) throw certError('der', 'DER: length beyond end of input');
  return { tag, start: p, end: p + len };
}

/**
 * The certificate (or CRL) must be exactly one SEQUENCE { SEQUENCE tbs, AlgorithmIdentifier, BIT STRING }
 * with nothing after it. Returns the original TBS bytes, and whether the outer signature algorithm is
 * byte-identical to the one inside the TBS (compared raw, so a re-encoding cannot hide a change).
 */
function rawTbs(der: Uint8Array, what: string, isCrl = false): { tbs: Uint8Array; algsEqual: boolean } {
  const outer = tlv(der, 0);
  if (outer.tag !== 0x30 || outer.end !== der.length) throw certError('der', `${what}: not a single DER SEQUENCE`);
  const inner = tlv(der, outer.start);
  if (inner.tag !== 0x30) throw certError('der', `${what}: TBS is not a SEQUENCE`);
  const alg = tlv(der, inner.end);
  const sig = tlv(der, alg.end);
  // The signature BIT STRING must be the last element and have no unused bits: otherwise a changed
  // "unused bits" byte would leave the signature bytes, and so the verification, unchanged.
  if (alg.tag !== 0x30 || sig.tag !== 0x03 || sig.end !== outer.end || sig.start >= sig.end || der[sig.start] !== 0)
    throw certError('der', `${what}: malformed signature algorithm or value`);
  // TBSCertificate: [0] version, serial, signature; TBSCertList: version (INTEGER, optional), signature.
  let p = inner.start;
  let f = tlv(der, p);
  if (f.tag === 0xa0 || (isCrl && f.tag === 0x02)) f = tlv(der, (p = f.end));
  if (!isCrl) f = tlv(der, (p = f.end));
  const innerAlg = der.subarray(p, f.end);
  const outerAlg = der.subarray(inner.end, alg.end);
  const algsEqual = innerAlg.length === outerAlg.length && innerAlg.every((x, i) => x === outerAlg[i]);
  return { tbs: der.slice(outer.start, inner.end), algsEqual };
}

function cnOf(name: Name): string | undefined {
  for (const rdn of name) for (const atv of rdn) if (atv.type === OID_CN) return atv.value.toString();
  return undefined;
}

function isPssSha384Salt48(alg: { algorithm: string; parameters?: ArrayBuffer | null }): boolean {
  if (alg.algorithm !== OID_RSA_PSS || !alg.parameters) return false;
  let p: RsaSaPssParams;
  try {
    p = AsnConvert.parse(alg.parameters, RsaSaPssParams);
  } catch {
    return false;
  }
  if (p.hashAlgorithm.algorithm !== OID_SHA384 || p.maskGenAlgorithm.algorithm !== OID_MGF1) return false;
  const mgfParams = p.maskGenAlgorithm.parameters;
  if (!mgfParams) return false;
  try {
    if (AsnConvert.parse(mgfParams, AlgorithmIdentifier).algorithm !== OID_SHA384) return false;
  } catch {
    return false;
  }
  return p.saltLength === 48 && p.trailerField === 1;
}

/** AMD INTEGER extensions hold small SPLs (0..255); anything else is malformed. */
function amdInt(v: Uint8Array, name: string): number {
  if (v.length < 3 || v.length > 4 || v[0] !== 0x02 || v[1] !== v.length - 2)
    throw certError('amd_extension', `AMD extension ${name} is not a small DER INTEGER`);
  if (v[2]! & 0x80) throw certError('amd_extension', `AMD extension ${name} is negative`);
  let n = 0;
  for (let i = 2; i < v.length; i++) n = (n << 8) | v[i]!;
  if (n > 0xff) throw certError('amd_extension', `AMD extension ${name} is out of range`);
  return n;
}

function amdIa5(v: Uint8Array, name: string): string {
  if (v.length < 2 || v[0] !== 0x16 || v[1]! >= 0x80 || v[1] !== v.length - 2)
    throw certError('amd_extension', `AMD extension ${name} is not a short IA5String`);
  let s = '';
  for (let i = 2; i < v.length; i++) {
    if (v[i]! >= 0x80) throw certError('amd_extension', `AMD extension ${name} is not ASCII`);
    s += String.fromCharCode(v[i]!);
  }
  return s;
}

/** hwID is stored as raw bytes (64 or 8), though some tools wrap it in an OCTET STRING; accept both. */
function amdHwId(v: Uint8Array): Uint8Array {
  if (v.length === 64 || v.length === 8) return v.slice();
  if (v[0] === 0x04 && v.length >= 2 && v[1] === v.length - 2 && (v[1] === 64 || v[1] === 8)) return v.slice(2);
  throw certError('amd_extension', `AMD extension hwID has an unexpected length ${v.length}`);
}

function amdExtensions(exts: readonly Extension[]): AmdExtensions {
  const out: AmdExtensions = {};
  const seen = new Set<string>();
  for (const e of exts) {
    if (seen.has(e.extnID)) throw certError('duplicate_extension', `extension ${e.extnID} appears twice`);
    seen.add(e.extnID);
    const v = ab(e.extnValue.buffer);
    switch (e.extnID) {
      case AMD_OID.structVersion: out.structVersion = amdInt(v, 'structVersion'); break;
      case AMD_OID.productName: out.productName = amdIa5(v, 'productName'); break;
      case AMD_OID.blSPL: out.blSPL = amdInt(v, 'blSPL'); break;
      case AMD_OID.teeSPL: out.teeSPL = amdInt(v, 'teeSPL'); break;
      case AMD_OID.snpSPL: out.snpSPL = amdInt(v, 'snpSPL'); break;
      case AMD_OID.spl4: out.spl4 = amdInt(v, 'spl_4'); break;
      case AMD_OID.spl5: out.spl5 = amdInt(v, 'spl_5'); break;
      case AMD_OID.spl6: out.spl6 = amdInt(v, 'spl_6'); break;
      case AMD_OID.spl7: out.spl7 = amdInt(v, 'spl_7'); break;
      case AMD_OID.ucodeSPL: out.ucodeSPL = amdInt(v, 'ucodeSPL'); break;
      case AMD_OID.fmcSPL: out.fmcSPL = amdInt(v, 'fmcSPL'); break;
      case AMD_OID.hwID: out.hwID = amdHwId(v); break;
      case AMD_OID.cspID: out.cspID = amdIa5(v, 'cspID'); break;
      default:
        // Only the leaf profile's AMD extensions matter; standard ones are read below. A critical
        // extension we do not understand must fail closed (RFC 5280 §4.2).
        if (e.critical && e.extnID !== OID_BASIC_CONSTRAINTS && e.extnID !== OID_KEY_USAGE)
          throw certError('critical_extension', `unsupported critical extension ${e.extnID}`);
    }
  }
  return out;
}

function keyTypeOf(spkiAlg: { algorithm: string; parameters?: ArrayBuffer | null }): AmdCert['keyType'] {
  if (spkiAlg.algorithm === OID_RSA || spkiAlg.algorithm === OID_RSA_PSS) return 'rsa';
  if (spkiAlg.algorithm === OID_EC_PUBLIC_KEY && spkiAlg.parameters && toHex(ab(spkiAlg.parameters)) === OID_SECP384R1_DER)
    return 'ec-p384';
  return 'other';
}

/** Parse one DER certificate. Throws `ERR_CERT_INVALID` (reason names the part) on any malformation. */
export function parseAmdCert(input: Uint8Array, label = 'certificate'): AmdCert {
  if (!(input instanceof Uint8Array)) throw new TypeError(`"${label}" expected Uint8Array`);
  if (input.length === 0 || input.length > MAX_CERT_BYTES)
    throw certError('size', `${label}: ${input.length} bytes is not a plausible certificate size`);
  const der = input.slice();
  const { tbs, algsEqual } = rawTbs(der, label);
  let cert: Certificate;
  try {
    cert = AsnConvert.parse(der, Certificate);
  } catch (cause) {
    throw certError('der', `${label}: not a DER X.509 certificate`, cause);
  }
  try {
    const t = cert.tbsCertificate;
    const exts = t.extensions ?? [];
    let ca: boolean | undefined;
    let keyCertSign: boolean | undefined;
    for (const e of exts) {
      if (e.extnID === OID_BASIC_CONSTRAINTS) ca = AsnConvert.parse(e.extnValue.buffer, BasicConstraints).cA;
      if (e.extnID === OID_KEY_USAGE)
        keyCertSign = (AsnConvert.parse(e.extnValue.buffer, KeyUsage).toNumber() & KeyUsageFlags.keyCertSign) !== 0;
    }
    const notBefore = t.validity.notBefore.getTime();
    const notAfter = t.validity.notAfter.getTime();
    if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime()))
      throw certError('validity', `${label}: invalid validity dates`);
    return Object.freeze({
      der,
      tbs,
      signature: ab(cert.signatureValue),
      pssSha384: algsEqual && isPssSha384Salt48(cert.signatureAlgorithm),
      version: t.version + 1,
      serialHex: toHex(ab(t.serialNumber)),
      issuer: ab(AsnConvert.serialize(t.issuer)),
      subject: ab(AsnConvert.serialize(t.subject)),
      issuerCN: cnOf(t.issuer),
      subjectCN: cnOf(t.subject),
      notBefore,
      notAfter,
      spki: ab(AsnConvert.serialize(t.subjectPublicKeyInfo)),
      keyType: keyTypeOf(t.subjectPublicKeyInfo.algorithm),
      ca,
      keyCertSign,
      amd: Object.freeze(amdExtensions(exts)),
    });
  } catch (cause) {
    if (cause instanceof AttestationError) throw cause;
    throw certError('der', `${label}: malformed certificate fields`, cause);
  }
}

export interface AmdCrl {
  readonly tbs: Uint8Array;
  readonly signature: Uint8Array;
  readonly pssSha384: boolean;
  readonly issuer: Uint8Array;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  /** Revoked serial numbers, hex, normalised like AmdCert.serialHex. */
  readonly revokedSerials: ReadonlySet<string>;
}

export function parseAmdCrl(input: Uint8Array): AmdCrl {
  if (!(input instanceof Uint8Array)) throw new TypeError('"crl" expected Uint8Array');
  if (input.length === 0 || input.length > 1024 * 1024) throw certError('crl_size', `CRL: ${input.length} bytes is not plausible`);
  const der = input.slice();
  const { tbs, algsEqual } = rawTbs(der, 'CRL', true);
  try {
    const crl = AsnConvert.parse(der, CertificateList);
    const t = crl.tbsCertList;
    const revoked = revokedSerials(tbs);
    return Object.freeze({
      tbs,
      signature: ab(crl.signature),
      pssSha384: algsEqual && isPssSha384Salt48(crl.signatureAlgorithm),
      issuer: ab(AsnConvert.serialize(t.issuer)),
      thisUpdate: t.thisUpdate.getTime(),
      nextUpdate: t.nextUpdate?.getTime(),
      revokedSerials: revoked,
    });
  } catch (cause) {
    if (cause instanceof AttestationError) throw cause;
    throw certError('crl', 'CRL: not a DER X.509 CRL', cause);
  }
}

/**
 * The revoked serials, read from the TBSCertList with the DER walker: @peculiar/asn1-x509 2.11 drops
 * revokedCertificates when the optional nextUpdate is absent, which would make a CRL silently revoke
 * nothing.
 */
function revokedSerials(tbs: Uint8Array): Set<string> {
  const out = new Set<string>();
  const seq = tlv(tbs, 0);
  let p = seq.start;
  let timesSeen = 0;
  while (p < seq.end) {
    const f = tlv(tbs, p);
    if (f.tag === 0x17 || f.tag === 0x18) timesSeen++;
    else if (f.tag === 0x30 && timesSeen > 0) {
      // revokedCertificates: SEQUENCE OF SEQUENCE { INTEGER serial, Time, [extensions] }
      let q = f.start;
      while (q < f.end) {
        const entry = tlv(tbs, q);
        if (entry.tag !== 0x30) throw certError('crl', 'CRL: revoked entry is not a SEQUENCE');
        const serial = tlv(tbs, entry.start);
        if (serial.tag !== 0x02 || serial.end > entry.end) throw certError('crl', 'CRL: revoked entry has no serial');
        out.add(normSerial(toHex(tbs.subarray(serial.start, serial.end))));
        q = entry.end;
      }
    }
    p = f.end;
  }
  return out;
}

/** Serials compare as integers: drop DER's sign-padding zeros. */
export function normSerial(hex: string): string {
  const s = hex.replace(/^(00)+/, '');
  return s === '' ? '00' : s;
}

/**
 * Split PEM text into DER blocks (CERTIFICATE or X509 CRL). Tolerates CRLF line endings (AMD's Turin
 * cert_chain uses them) and text around the blocks.
 */
export function pemToDer(text: string, label = 'CERTIFICATE'): Uint8Array[] {
  const out: Uint8Array[] = [];
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, 'g');
  for (const m of text.matchAll(re)) {
    const body = m[1]!.replace(/[\r\n\t ]+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0)
      throw new AttestationError('ERR_INPUT_ENCODING', `PEM ${label} block is not base64`, { reason: 'pem' });
    const bin = atob(body);
    const der = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) der[i] = bin.charCodeAt(i);
    out.push(der);
  }
  return out;
}

/** A certificate given as DER or PEM bytes. */
export function certBytes(input: Uint8Array, label: string): Uint8Array {
  if (input.length > 0 && input[0] === 0x30) return input;
  const text = new TextDecoder('utf-8', { fatal: false }).decode(input.subarray(0, Math.min(input.length, 1024 * 1024)));
  const blocks = pemToDer(text);
  if (blocks.length !== 1)
    throw new AttestationError('ERR_INPUT_ENCODING', `${label}: expected one DER or PEM certificate, found ${blocks.length} PEM blocks`, {
      reason: 'pem',
    });
  return blocks[0]!;
}
