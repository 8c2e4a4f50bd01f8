/**
 * Certificate facts for path validation, read straight from the DER with the strict TLV reader in
 * der.ts. The exact signed bytes (tbsCertificate), the SubjectPublicKeyInfo and the issuer/subject
 * Names are slices of the original DER, never a re-encoding.
 *
 * Why not @peculiar/asn1-x509 here: profiled at ~0.6 ms per certificate (Name decoding alone
 * ~0.15 ms), which is as much as the ECDSA P-384 check itself and made a cold verification about 1.8x
 * the signature floor. This reader takes only what the rules need and rejects any other shape.
 */
import { children, readTlv, type Tlv } from './der.js';
import { toHex } from '../bytes.js';

export const OID_ECDSA_SHA384 = '1.2.840.10045.4.3.3';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';

/** keyUsage bits as a number: bit i of the BIT STRING (digitalSignature = bit 0) is `1 << i`. */
export const KU_DIGITAL_SIGNATURE = 1;
export const KU_KEY_CERT_SIGN = 32;

export interface CertFacts {
  readonly der: Uint8Array;
  readonly tbs: Uint8Array;
  readonly spki: Uint8Array;
  readonly issuerDer: Uint8Array;
  readonly subjectDer: Uint8Array;
  readonly subject: string;
  readonly issuer: string;
  /** Serial number, lower-case hex, without a DER sign byte. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly version: number;
  /** OID of the signature algorithm, or '' when the outer and TBS AlgorithmIdentifiers differ. */
  readonly signatureAlgorithm: string;
  /** Parameters present on the signature AlgorithmIdentifier (ecdsa-with-SHA384 must have none). */
  readonly signatureParams: boolean;
  /** DER ECDSA-Sig-Value from the signature BIT STRING (undefined if the BIT STRING has unused bits). */
  readonly signature: Uint8Array | undefined;
  readonly basicConstraints: { readonly ca: boolean; readonly pathLen: number | undefined } | undefined;
  readonly keyUsage: number | undefined;
  /** OIDs of critical extensions this validator does not understand. */
  readonly unknownCritical: readonly string[];
}

export class CertParseError extends Error {
  override name = 'CertParseError';
}

const fail = (m: string): never => {
  throw new CertParseError(m);
};

function expect(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined || t.tag !== tag) fail(`${what}: expected tag 0x${tag.toString(16)}`);
  return t!;
}

export function decodeOid(b: Uint8Array): string {
  if (b.length === 0 || b.length > 64) fail('OID length');
  const arcs: number[] = [];
  let v = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (v === 0 && c === 0x80) fail('OID non-minimal');
    v = v * 128 + (c & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) fail('OID arc too large');
    if (!(c & 0x80)) {
      arcs.push(v);
      v = 0;
    }
  }
  if (b[b.length - 1]! & 0x80) fail('OID truncated');
  const first = arcs[0]!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join('.');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

const NAME_KEYS: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.5': 'serialNumber',
  '0.9.2342.19200300.100.1.25': 'DC',
};

/** Name (SEQUENCE OF SET OF AttributeTypeAndValue) -> "C=US, O=Amazon, CN=..." in encoded order. */
function formatName(b: Uint8Array, name: Tlv): string {
  const parts: string[] = [];
  for (const rdn of children(b, name)) {
    expect(rdn, 0x31, 'RDN');
    for (const atv of children(b, rdn)) {
      const [type, value, extra] = children(b, expect(atv, 0x30, 'AttributeTypeAndValue'));
      if (extra !== undefined || value === undefined) fail('AttributeTypeAndValue shape');
      const oid = decodeOid(b.subarray(expect(type, 0x06, 'attribute type').valueStart, type!.end));
      const raw = b.subarray(value!.valueStart, value!.end);
      let s: string;
      // UTF8String, PrintableString, IA5String; anything else is shown as hex.
      if (value!.tag === 0x0c) {
        try {
          s = utf8.decode(raw);
        } catch {
          return fail('invalid UTF8String in Name');
        }
      } else if (value!.tag === 0x13 || value!.tag === 0x16) s = latin1.decode(raw);
      else s = '#' + toHex(raw);
      parts.push(`${NAME_KEYS[oid] ?? oid}=${s}`);
    }
  }
  return parts.join(', ');
}

function digits(b: Uint8Array, from: number, n: number): number {
  let v = 0;
  for (let i = from; i < from + n; i++) {
    const c = b[i]! - 0x30;
    if (c < 0 || c > 9) fail('time: non-digit');
    v = v * 10 + c;
  }
  return v;
}

/** UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ, as RFC 5280 §4.1.2.5 requires. */
function parseTime(b: Uint8Array, t: Tlv): Date {
  const len = t.end - t.valueStart;
  const p = t.valueStart;
  let year: number;
  let q: number;
  if (t.tag === 0x17 && len === 13) {
    const yy = digits(b, p, 2);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    q = p + 2;
  } else if (t.tag === 0x18 && len === 15) {
    year = digits(b, p, 4);
    q = p + 4;
  } else return fail('time: not a UTCTime/GeneralizedTime of the RFC 5280 form');
  if (b[t.end - 1] !== 0x5a) fail('time: not UTC (Z)');
  const mo = digits(b, q, 2);
  const d = digits(b, q + 2, 2);
  const h = digits(b, q + 4, 2);
  const mi = digits(b, q + 6, 2);
  const s = digits(b, q + 8, 2);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) fail('time: field out of range');
  const ms = Date.UTC(year, mo - 1, d, h, mi, s);
  if (new Date(ms).getUTCDate() !== d) fail('time: no such day');
  return new Date(ms);
}

function parseAlg(b: Uint8Array, t: Tlv): { oid: string; params: boolean; raw: Uint8Array } {
  const [oid, params, extra] = children(b, expect(t, 0x30, 'AlgorithmIdentifier'));
  if (extra !== undefined) fail('AlgorithmIdentifier shape');
  expect(oid, 0x06, 'algorithm OID');
  return { oid: decodeOid(b.subarray(oid!.valueStart, oid!.end)), params: params !== undefined, raw: b.subarray(t.start, t.end) };
}

function parseBasicConstraints(b: Uint8Array, t: Tlv): { ca: boolean; pathLen: number | undefined } {
  const seq = readTlv(b, t.valueStart, t.end);
  if (seq.tag !== 0x30 || seq.end !== t.end) fail('basicConstraints shape');
  const kids = children(b, seq);
  let i = 0;
  let ca = false;
  if (kids[i]?.tag === 0x01) {
    const k = kids[i++]!;
    // DER: a BOOLEAN is one byte 0x00/0xff, and the DEFAULT FALSE value must be omitted.
    if (k.end - k.valueStart !== 1 || b[k.valueStart] !== 0xff) fail('basicConstraints cA encoding');
    ca = true;
  }
  let pathLen: number | undefined;
  if (kids[i]?.tag === 0x02) {
    const k = kids[i++]!;
    const n = k.end - k.valueStart;
    if (n < 1 || n > 4 || b[k.valueStart]! & 0x80 || (n > 1 && b[k.valueStart] === 0 && !(b[k.valueStart + 1]! & 0x80)))
      fail('basicConstraints pathLenConstraint encoding');
    pathLen = 0;
    for (let j = k.valueStart; j < k.end; j++) pathLen = pathLen * 256 + b[j]!;
  }
  if (i !== kids.length) fail('basicConstraints shape');
  return { ca, pathLen };
}

function parseKeyUsage(b: Uint8Array, t: Tlv): number {
  const bs = readTlv(b, t.valueStart, t.end);
  const n = bs.end - bs.valueStart;
  if (bs.tag !== 0x03 || bs.end !== t.end || n < 1 || n > 3) fail('keyUsage shape');
  const unused = b[bs.valueStart]!;
  if (unused > 7 || (n === 1 && unused !== 0)) fail('keyUsage unused bits');
  let v = 0;
  for (let i = 1; i < n; i++) {
    const byte = b[bs.valueStart + i]!;
    // BIT STRING bit 0 is the most significant bit of the first byte.
    for (let j = 0; j < 8; j++) if (byte & (0x80 >> j)) v |= 1 << ((i - 1) * 8 + j);
  }
  return v;
}

/** Parse a DER X.509 v3 certificate into the facts path validation needs. Throws CertParseError. */
export function parseCertificate(der: Uint8Array): CertFacts {
  try {
    // A private copy: the facts (spki, tbs, names) are views into it and outlive this call in the
    // chain cache, so they must not alias a buffer the caller may reuse or wipe. (Buffer#slice
    // would be a view, hence the constructor.)
    return parseInner(new Uint8Array(der));
  } catch (e) {
    if (e instanceof CertParseError) throw e;
    throw new CertParseError(`DER: ${(e as Error)?.message ?? 'malformed'}`);
  }
}

function parseInner(der: Uint8Array): CertFacts {
  const top = readTlv(der, 0);
  if (top.tag !== 0x30 || top.end !== der.length) fail('not a single DER SEQUENCE');
  const parts = children(der, top);
  if (parts.length !== 3) fail('not a Certificate SEQUENCE { tbs, alg, signature }');
  const tbs = expect(parts[0], 0x30, 'tbsCertificate');
  const outerAlg = parseAlg(der, parts[1]!);
  const sig = expect(parts[2], 0x03, 'signatureValue');

  const f = children(der, tbs);
  const verTlv = expect(f[0], 0xa0, 'version');
  const ver = readTlv(der, verTlv.valueStart, verTlv.end);
  if (ver.tag !== 0x02 || ver.end !== verTlv.end || ver.end - ver.valueStart !== 1 || der[ver.valueStart] !== 2) fail('not an X.509 v3 certificate');
  const serialTlv = expect(f[1], 0x02, 'serialNumber');
  const innerAlg = parseAlg(der, f[2]!);
  const issuer = expect(f[3], 0x30, 'issuer');
  const validity = children(der, expect(f[4], 0x30, 'validity'));
  if (validity.length !== 2) fail('validity shape');
  const subject = expect(f[5], 0x30, 'subject');
  const spki = expect(f[6], 0x30, 'subjectPublicKeyInfo');
  let extensions: Tlv | undefined;
  for (let i = 7; i < f.length; i++) {
    const t = f[i]!;
    // issuerUniqueID [1], subjectUniqueID [2] are tolerated but unused; extensions [3] comes last.
    if (t.tag === 0xa3 && i === f.length - 1) extensions = t;
    else if (t.tag !== 0x81 && t.tag !== 0x82 && t.tag !== 0xa1 && t.tag !== 0xa2) fail('unexpected TBSCertificate field');
  }

  let basicConstraints: CertFacts['basicConstraints'];
  let keyUsage: number | undefined;
  const unknownCritical: string[] = [];
  if (extensions !== undefined) {
    const list = readTlv(der, extensions.valueStart, extensions.end);
    if (list.tag !== 0x30 || list.end !== extensions.end) fail('extensions shape');
    const seen = new Set<string>();
    for (const ext of children(der, list)) {
      const k = children(der, expect(ext, 0x30, 'Extension'));
      const oid = decodeOid(der.subarray(expect(k[0], 0x06, 'extnID').valueStart, k[0]!.end));
      let critical = false;
      let vi = 1;
      if (k[1]?.tag === 0x01) {
        const c = k[1];
        if (c.end - c.valueStart !== 1 || der[c.valueStart] !== 0xff) fail('Extension critical encoding');
        critical = true;
        vi = 2;
      }
      const value = expect(k[vi], 0x04, 'extnValue');
      if (k.length !== vi + 1) fail('Extension shape');
      if (seen.has(oid)) fail(`duplicate extension ${oid}`);
      seen.add(oid);
      if (oid === OID_BASIC_CONSTRAINTS) basicConstraints = parseBasicConstraints(der, value);
      else if (oid === OID_KEY_USAGE) keyUsage = parseKeyUsage(der, value);
      else if (critical) unknownCritical.push(oid);
    }
  }

  const sameAlg = innerAlg.raw.length === outerAlg.raw.length && innerAlg.raw.every((x, i) => x === outerAlg.raw[i]);
  let serial = der.subarray(serialTlv.valueStart, serialTlv.end);
  if (serial.length > 1 && serial[0] === 0) serial = serial.subarray(1);
  return {
    der,
    tbs: der.subarray(tbs.start, tbs.end),
    spki: der.subarray(spki.start, spki.end),
    issuerDer: der.subarray(issuer.start, issuer.end),
    subjectDer: der.subarray(subject.start, subject.end),
    subject: formatName(der, subject),
    issuer: formatName(der, issuer),
    serial: toHex(serial),
    notBefore: parseTime(der, validity[0]!),
    notAfter: parseTime(der, validity[1]!),
    version: 3,
    signatureAlgorithm: sameAlg ? outerAlg.oid : '',
    signatureParams: outerAlg.params,
    signature: sig.end > sig.valueStart && der[sig.valueStart] === 0 ? der.subarray(sig.valueStart + 1, sig.end) : undefined,
    basicConstraints,
    keyUsage,
    unknownCritical,
  };
}
