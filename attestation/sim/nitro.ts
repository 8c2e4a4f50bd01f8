/**
 * Simulator signer for Nitro attestation documents: a throwaway CA chain shaped like AWS's
 * (root -> regional -> zonal -> instance -> leaf) that issues documents byte-for-byte in the NSM's
 * format. Every certificate can be overridden so each path-validation rule gets a negative test.
 *
 * The simulator root is never trusted by default: a verifier accepts these documents only when the
 * caller passes `ca.rootDer` in `simulatorRoots` (or `roots`). WebCrypto only, no `node:` imports.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { concatBytes } from '../bytes.js';
import { ToolkitError } from '../errors.js';
import { cborBstr, cborHead, cborTstr, cborUint64, PROTECTED_ES384, sigStructure } from '../nitro/cose.js';

// Spelled out here: the project compiles without the DOM lib, and attestation/ may not import `node:`.
type WebCrypto = typeof globalThis.crypto;
type Subtle = WebCrypto['subtle'];
type CryptoKey = Awaited<ReturnType<Subtle['importKey']>>;
interface CryptoKeyPair { publicKey: CryptoKey; privateKey: CryptoKey }
interface EcKeyGenParams { name: 'ECDSA'; namedCurve: 'P-256' | 'P-384' | 'P-521' }
interface RsaHashedKeyGenParams { name: 'RSASSA-PKCS1-v1_5' | 'RSA-PSS'; modulusLength: number; publicExponent: Uint8Array; hash: string }
type KeyAlg = EcKeyGenParams | RsaHashedKeyGenParams;
type SignAlg = { name: string; hash?: string; saltLength?: number };

/** Per-certificate overrides. `null` omits the extension entirely. */
export interface NitroSimCertOverride {
  notBefore?: Date;
  notAfter?: Date;
  /** basicConstraints cA; `null` omits basicConstraints. */
  ca?: boolean | null;
  /** basicConstraints pathLenConstraint; `null` = absent. */
  pathLen?: number | null;
  basicConstraintsCritical?: boolean;
  /** x509.KeyUsageFlags bit set; `null` omits keyUsage. */
  keyUsage?: number | null;
  keyUsageCritical?: boolean;
  /** Key of this certificate (default ECDSA P-384). */
  keyAlgorithm?: KeyAlg;
  /** Hash the issuer signs this certificate with (default SHA-384). */
  signatureHash?: 'SHA-256' | 'SHA-384' | 'SHA-512';
  subject?: string;
  /** Issuer name written into the certificate (the issuer's key still signs it). */
  issuer?: string;
  serial?: string;
  /** Flip one bit of the certificate's signature. */
  corruptSignature?: boolean;
}

export type NitroSimLevel = 'root' | 'regional' | 'zonal' | 'instance';
export const NITRO_SIM_LEVELS: readonly NitroSimLevel[] = ['root', 'regional', 'zonal', 'instance'];

interface SimCert {
  der: Uint8Array;
  keys: CryptoKeyPair;
  keyAlgorithm: KeyAlg;
  subject: string;
  notBefore: Date;
  notAfter: Date;
}

export interface NitroSimCa {
  readonly rootDer: Uint8Array;
  /** DER of root, regional, zonal, instance: the document's `cabundle`, root first. */
  readonly bundle: readonly Uint8Array[];
  /** @internal */ readonly certs: Record<NitroSimLevel, SimCert>;
  /** The current leaf, reused across documents like the NSM does. */
  leaf?: SimCert;
}

export interface NitroSimDocument {
  moduleId: string;
  timestamp: Date;
  pcrs: Map<number, Uint8Array>;
  publicKey?: Uint8Array | null;
  userData?: Uint8Array | null;
  nonce?: Uint8Array | null;
  digest?: string;
}

export interface NitroSimIssueOptions {
  /** Overrides for a fresh leaf (forces a new leaf, not kept for reuse). */
  leafOverride?: NitroSimCertOverride;
  /** Wrap in CBOR tag 18 (RFC 8152); the NSM never does. */
  tagged?: boolean;
  /** Encode the payload as an indefinite-length map, as 2026 documents do. */
  indefiniteMap?: boolean;
  /** Leaf lifetime (default 3 h 0 min 3 s, as AWS). */
  leafValidityMs?: number;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const LEAF_VALIDITY_MS = 3 * HOUR + 3_000;
/** Reuse a leaf until it is this old: AWS documents show leaves reused for up to ~2 h. */
const LEAF_REUSE_MS = 2 * HOUR;
const P384: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-384' };

const subtle = (): Subtle => globalThis.crypto.subtle;
const webcrypto = (): WebCrypto => globalThis.crypto;

function defaultSubject(level: NitroSimLevel | 'leaf', tag: string): string {
  const base = 'C=US, O=enclavekit simulator, OU=AWS';
  switch (level) {
    case 'root':
      return `${base}, CN=sim.nitro-enclaves`;
    case 'regional':
      return `${base}, CN=${tag}.us-east-1.sim.nitro-enclaves`;
    case 'zonal':
      return `${base}, CN=${tag}.zonal.us-east-1.sim.nitro-enclaves`;
    case 'instance':
      return `${base}, CN=i-${tag}.us-east-1.sim.nitro-enclaves`;
    case 'leaf':
      return `${base}, CN=i-${tag}-enc${tag}.us-east-1.sim`;
  }
}

function randomHex(bytes: number): string {
  const b = webcrypto().getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x: number) => x.toString(16).padStart(2, '0')).join('');
}

function signingAlgorithm(issuer: CryptoKey, hash: string): SignAlg {
  const name = issuer.algorithm.name;
  if (name === 'ECDSA') return { name, hash };
  if (name === 'RSA-PSS') return { name, saltLength: 32 };
  return { name };
}

const DEFAULTS: Record<NitroSimLevel | 'leaf', { ca: boolean; pathLen: number | null; ku: number; kuCritical: boolean }> = {
  root: { ca: true, pathLen: null, ku: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, kuCritical: true },
  regional: { ca: true, pathLen: 2, ku: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, kuCritical: true },
  zonal: { ca: true, pathLen: 1, ku: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, kuCritical: true },
  instance: { ca: true, pathLen: 0, ku: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, kuCritical: true },
  leaf: { ca: false, pathLen: null, ku: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation, kuCritical: false },
};

async function makeCert(
  level: NitroSimLevel | 'leaf',
  window: { notBefore: Date; notAfter: Date },
  issuer: SimCert | undefined,
  o: NitroSimCertOverride = {},
): Promise<SimCert> {
  const keyAlgorithm = o.keyAlgorithm ?? P384;
  const keys = (await subtle().generateKey(keyAlgorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
  const d = DEFAULTS[level];
  const subject = o.subject ?? defaultSubject(level, randomHex(8));
  const extensions: x509.Extension[] = [];
  const ca = o.ca === undefined ? d.ca : o.ca;
  if (ca !== null) {
    const pathLen = o.pathLen === undefined ? d.pathLen : o.pathLen;
    extensions.push(new x509.BasicConstraintsExtension(ca, pathLen ?? undefined, o.basicConstraintsCritical ?? true));
  }
  const ku = o.keyUsage === undefined ? d.ku : o.keyUsage;
  if (ku !== null) extensions.push(new x509.KeyUsagesExtension(ku, o.keyUsageCritical ?? d.kuCritical));
  const signer = issuer?.keys ?? keys;
  const notBefore = o.notBefore ?? window.notBefore;
  const notAfter = o.notAfter ?? window.notAfter;
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: o.serial ?? '01' + randomHex(15),
      subject,
      issuer: o.issuer ?? issuer?.subject ?? subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: signer.privateKey,
      signingAlgorithm: signingAlgorithm(signer.privateKey, o.signatureHash ?? 'SHA-384'),
      extensions,
    },
    webcrypto(),
  );
  let der = new Uint8Array(cert.rawData);
  if (o.corruptSignature) {
    der = der.slice();
    der[der.length - 2] = der[der.length - 2]! ^ 0x01;
  }
  return { der, keys, keyAlgorithm, subject, notBefore, notAfter };
}

/**
 * A fresh simulator CA chain valid around `now`: root 30 years, regional 20 days, zonal 6 days,
 * instance 1 day (AWS's shape), each starting one hour before `now`.
 */
export async function createNitroSimCa(options: {
  now: Date;
  overrides?: Partial<Record<NitroSimLevel, NitroSimCertOverride>>;
}): Promise<NitroSimCa> {
  const t = options.now.getTime();
  if (!Number.isFinite(t)) throw new TypeError('"now" expected a valid Date');
  const ov = options.overrides ?? {};
  const from = new Date(Math.floor(t / 1000) * 1000 - HOUR);
  const root = await makeCert('root', { notBefore: new Date(from.getTime() - DAY), notAfter: new Date(t + 30 * 365 * DAY) }, undefined, ov.root);
  const regional = await makeCert('regional', { notBefore: from, notAfter: new Date(t + 20 * DAY) }, root, ov.regional);
  const zonal = await makeCert('zonal', { notBefore: from, notAfter: new Date(t + 6 * DAY) }, regional, ov.zonal);
  const instance = await makeCert('instance', { notBefore: from, notAfter: new Date(t + DAY) }, zonal, ov.instance);
  const certs = { root, regional, zonal, instance };
  return { rootDer: root.der, bundle: [root.der, regional.der, zonal.der, instance.der], certs };
}

function encodeOptional(b: Uint8Array | null | undefined): Uint8Array {
  return b === undefined || b === null ? Uint8Array.of(0xf6) : cborBstr(b);
}

/** Encode the AttestationDocument payload with AWS's key order and encodings. */
export function encodeNitroPayload(
  doc: NitroSimDocument,
  certificate: Uint8Array,
  cabundle: readonly Uint8Array[],
  indefiniteMap = false,
): Uint8Array {
  const ts = doc.timestamp.getTime();
  if (!Number.isSafeInteger(ts) || ts < 0) throw new RangeError('"timestamp" expected a Date after 1970');
  const pcrKeys = [...doc.pcrs.keys()].sort((a, b) => a - b);
  const pcrs = concatBytes(cborHead(5, pcrKeys.length), ...pcrKeys.flatMap((k) => [cborHead(0, k), cborBstr(doc.pcrs.get(k)!)]));
  const entries = [
    cborTstr('module_id'), cborTstr(doc.moduleId),
    cborTstr('digest'), cborTstr(doc.digest ?? 'SHA384'),
    cborTstr('timestamp'), cborUint64(ts),
    cborTstr('pcrs'), pcrs,
    cborTstr('certificate'), cborBstr(certificate),
    cborTstr('cabundle'), concatBytes(cborHead(4, cabundle.length), ...cabundle.map(cborBstr)),
    cborTstr('public_key'), encodeOptional(doc.publicKey),
    cborTstr('user_data'), encodeOptional(doc.userData),
    cborTstr('nonce'), encodeOptional(doc.nonce),
  ];
  return indefiniteMap
    ? concatBytes(Uint8Array.of(0xbf), ...entries, Uint8Array.of(0xff))
    : concatBytes(cborHead(5, 9), ...entries);
}

/** Assemble a COSE_Sign1 (untagged unless `tagged`) from its parts. */
export function encodeCoseSign1(protectedBytes: Uint8Array, payload: Uint8Array, signature: Uint8Array, tagged = false): Uint8Array {
  return concatBytes(
    tagged ? Uint8Array.of(0xd2) : new Uint8Array(0),
    Uint8Array.of(0x84),
    cborBstr(protectedBytes),
    Uint8Array.of(0xa0),
    cborBstr(payload),
    cborBstr(signature),
  );
}

async function currentLeaf(ca: NitroSimCa, at: Date, o: NitroSimIssueOptions): Promise<SimCert> {
  const t = at.getTime();
  const validity = o.leafValidityMs ?? LEAF_VALIDITY_MS;
  const fresh = () =>
    makeCert('leaf', { notBefore: new Date(Math.floor(t / 1000) * 1000 - 3_000), notAfter: new Date(Math.floor(t / 1000) * 1000 - 3_000 + validity) }, ca.certs.instance, o.leafOverride);
  if (o.leafOverride !== undefined || o.leafValidityMs !== undefined) return fresh();
  const l = ca.leaf;
  if (l !== undefined && t >= l.notBefore.getTime() && t - l.notBefore.getTime() < LEAF_REUSE_MS && t <= l.notAfter.getTime()) return l;
  const leaf = await fresh();
  ca.leaf = leaf;
  return leaf;
}

/** Issue a document in exactly the NSM's format, signed ES384 by a leaf under `ca`. */
export async function issueNitroDocument(ca: NitroSimCa, doc: NitroSimDocument, options: NitroSimIssueOptions = {}): Promise<Uint8Array> {
  const leaf = await currentLeaf(ca, doc.timestamp, options);
  const payload = encodeNitroPayload(doc, leaf.der, ca.bundle, options.indefiniteMap);
  const tbs = sigStructure(PROTECTED_ES384, payload);
  const alg = leaf.keys.privateKey.algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-384' } : signingAlgorithm(leaf.keys.privateKey, 'SHA-384');
  const sig = new Uint8Array(await subtle().sign(alg, leaf.keys.privateKey, tbs));
  return encodeCoseSign1(PROTECTED_ES384, payload, sig, options.tagged);
}

const b64 = (b: Uint8Array): string => btoa(String.fromCharCode(...b));
const unb64 = (s: string): Uint8Array => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

interface ExportedCert { der: string; pkcs8: string; keyAlgorithm: KeyAlg; subject: string; notBefore: string; notAfter: string }
export interface NitroSimCaJson { format: 'enclavekit-nitro-sim-ca'; version: 1; certs: Record<NitroSimLevel, ExportedCert>; leaf?: ExportedCert }

async function exportCert(c: SimCert): Promise<ExportedCert> {
  const pkcs8 = new Uint8Array(await subtle().exportKey('pkcs8', c.keys.privateKey));
  return { der: b64(c.der), pkcs8: b64(pkcs8), keyAlgorithm: c.keyAlgorithm, subject: c.subject, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString() };
}

/** JSON-safe export, including the PKCS#8 private keys: store it like a secret. */
export async function exportNitroSimCa(ca: NitroSimCa): Promise<NitroSimCaJson> {
  const certs = {} as Record<NitroSimLevel, ExportedCert>;
  for (const l of NITRO_SIM_LEVELS) certs[l] = await exportCert(ca.certs[l]);
  const out: NitroSimCaJson = { format: 'enclavekit-nitro-sim-ca', version: 1, certs };
  if (ca.leaf) out.leaf = await exportCert(ca.leaf);
  return out;
}

const stateError = (message: string, cause?: unknown) =>
  new ToolkitError('ERR_SIMULATOR_STATE', `Nitro simulator CA: ${message}`, { reason: 'corrupt', cause });

async function importCert(e: unknown, label: string): Promise<SimCert> {
  try {
    return await importCertInner(e, label);
  } catch (cause) {
    if (cause instanceof ToolkitError) throw cause;
    // WebCrypto and x509 failures carry no key material in their messages, but keep them as cause only.
    throw stateError(`"${label}" cannot be imported`, cause);
  }
}

async function importCertInner(e: unknown, label: string): Promise<SimCert> {
  const o = e as Partial<ExportedCert> | null;
  if (typeof o !== 'object' || o === null || typeof o.der !== 'string' || typeof o.pkcs8 !== 'string' || typeof o.subject !== 'string' || typeof o.keyAlgorithm !== 'object' || o.keyAlgorithm === null)
    throw stateError(`"${label}" is malformed`);
  const der = unb64(o.der);
  const keyAlgorithm = o.keyAlgorithm;
  const imp = keyAlgorithm.name === 'ECDSA' ? keyAlgorithm : { name: keyAlgorithm.name, hash: (keyAlgorithm as RsaHashedKeyGenParams).hash };
  const privateKey = await subtle().importKey('pkcs8', unb64(o.pkcs8), imp, true, ['sign']);
  const cert = new x509.X509Certificate(der);
  const publicKey = await cert.publicKey.export(imp, ['verify'], webcrypto());
  return { der, keys: { privateKey, publicKey }, keyAlgorithm, subject: o.subject, notBefore: cert.notBefore, notAfter: cert.notAfter };
}

export async function importNitroSimCa(json: unknown): Promise<NitroSimCa> {
  const j = json as Partial<NitroSimCaJson> | null;
  if (typeof j !== 'object' || j === null || j.format !== 'enclavekit-nitro-sim-ca' || j.version !== 1 || typeof j.certs !== 'object' || j.certs === null)
    throw stateError('unknown format');
  const certs = {} as Record<NitroSimLevel, SimCert>;
  for (const l of NITRO_SIM_LEVELS) certs[l] = await importCert(j.certs[l], l);
  const ca: NitroSimCa = { rootDer: certs.root.der, bundle: NITRO_SIM_LEVELS.map((l) => certs[l].der), certs };
  if (j.leaf !== undefined) ca.leaf = await importCert(j.leaf, 'leaf');
  return ca;
}
