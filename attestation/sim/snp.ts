/**
 * Simulator signer for SEV-SNP: a throwaway chain shaped like AMD's (ARK -> ASK -> VCEK and
 * ARK -> ASVK -> VLEK, RSASSA-PSS SHA-384 salt 48 on every link, AMD's VCEK extensions) that issues
 * reports byte-for-byte in the firmware's ATTESTATION_REPORT layout, signed by the VCEK/VLEK key.
 * Every certificate can be overridden so each chain and binding rule has a negative test.
 *
 * The simulator ARK is never trusted by default: a verifier accepts these reports only when the caller
 * passes `chain.ark.der` in `simulatorRoots` (or `roots`). WebCrypto only, no `node:` imports.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { fromHex, toHex } from '../bytes.js';
import { AttestationError } from '../errors.js';
import { encodeTcb, SNP_REPORT_SIZE, SNP_SIGNED_LENGTH, type SnpProduct } from '../sevsnp/abi.js';
import { AMD_OID } from '../sevsnp/cert.js';

// Spelled out: the project compiles without the DOM lib, and attestation/ may not import `node:`.
type WebCrypto = typeof globalThis.crypto;
type Subtle = WebCrypto['subtle'];
type CryptoKey = Awaited<ReturnType<Subtle['importKey']>>;
interface CryptoKeyPair { publicKey: CryptoKey; privateKey: CryptoKey }
interface RsaHashedKeyGenParams { name: 'RSA-PSS'; modulusLength: number; publicExponent: Uint8Array; hash: string }
type Algorithm = { name: string; saltLength?: number; hash?: string; namedCurve?: string };

export type SnpSimCertName = 'ark' | 'ask' | 'asvk' | 'vcek' | 'vlek';
export const SNP_SIM_CERTS: readonly SnpSimCertName[] = ['ark', 'ask', 'asvk', 'vcek', 'vlek'];

export interface SnpSimTcb {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  fmc?: number;
}

/** Per-certificate overrides (go-sev-guest's CertOverride idea). `null` omits the item. */
export interface SnpSimCertOverride {
  notBefore?: Date;
  notAfter?: Date;
  subject?: string;
  /** Issuer name written into the certificate (the issuer's key still signs it). */
  issuer?: string;
  /** Hex serial; AMD's leaves use 0. */
  serial?: string;
  /** basicConstraints cA for ARK/ASK/ASVK; `null` omits basicConstraints. */
  ca?: boolean | null;
  /** Sign with RSASSA-PKCS1-v1_5 instead of PSS, or PSS with another salt length. */
  signature?: { scheme: 'pss'; saltLength: number } | { scheme: 'pkcs1' };
  /** Flip one bit of the certificate's signature. */
  corruptSignature?: boolean;
  /** Leaf key curve (default P-384). */
  curve?: 'P-256' | 'P-384';
  /** Sign this certificate with another certificate's key (e.g. a VCEK signed by the ASVK). */
  signedBy?: SnpSimCertName;
  /** AMD extension values; `null` omits one. */
  productName?: string | null;
  structVersion?: number | null;
  tcb?: Partial<Record<'blSPL' | 'teeSPL' | 'snpSPL' | 'ucodeSPL' | 'fmcSPL', number | null>>;
  hwId?: Uint8Array | null;
  /** Encode hwID as a DER OCTET STRING instead of AMD's raw bytes. */
  hwIdAsOctetString?: boolean;
  cspId?: string | null;
}

export interface CreateSnpSimChainOptions {
  /** Certificates are valid from `now` minus a day. */
  now: Date;
  product?: SnpProduct;
  /** 64 bytes; on Turin only the first 8 are used and the rest must be zero. Random if absent. */
  chipId?: Uint8Array;
  /** The TCB the VCEK/VLEK is issued for (REPORTED_TCB). */
  tcb?: SnpSimTcb;
  cspId?: string;
  /** RSA modulus for ARK/ASK/ASVK: AMD uses 4096; 2048 keeps tests fast. */
  rsaBits?: 2048 | 3072 | 4096;
  overrides?: Partial<Record<SnpSimCertName, SnpSimCertOverride>>;
  /** Key pairs to use instead of generating them (RSA-PSS SHA-384 for ARK/ASK/ASVK, ECDSA for the
   * leaves): RSA key generation dominates the cost, so tests re-issue certificates over one set of keys. */
  keys?: Partial<Record<SnpSimCertName, CryptoKeyPair>>;
}

interface SimCert {
  der: Uint8Array;
  /** Private key; never leaves the simulator except through exportSnpSimChain. */
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

export interface SnpSimChain {
  readonly product: SnpProduct;
  readonly chipId: Uint8Array;
  readonly tcb: Readonly<SnpSimTcb>;
  readonly cspId: string;
  readonly ark: SimCert;
  readonly ask: SimCert;
  readonly asvk: SimCert;
  readonly vcek: SimCert;
  readonly vlek: SimCert;
}

const subtle = (): Subtle => globalThis.crypto.subtle;
const RSA_PSS = (bits: number): RsaHashedKeyGenParams => ({
  name: 'RSA-PSS',
  hash: 'SHA-384',
  modulusLength: bits,
  publicExponent: new Uint8Array([1, 0, 1]),
});
const AMD_DN = 'OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices';
// The same OIDs the verifier parses: one table, so issuer and parser cannot drift apart.
const OID = AMD_OID;

const CPUID: Record<SnpProduct, [number, number, number]> = {
  Milan: [0x19, 0x01, 1],
  Genoa: [0x19, 0x11, 1],
  Turin: [0x1a, 0x02, 1],
};

function derInteger(n: number): Uint8Array {
  if (n < 0x80) return new Uint8Array([0x02, 0x01, n]);
  // A value with the top bit set needs a leading zero byte to stay positive (AMD writes 02 02 00 DB).
  if (n < 0x8000) return new Uint8Array([0x02, 0x02, n >> 8, n & 0xff]);
  throw new RangeError('simulator extension integer too large');
}

function derIa5(s: string): Uint8Array {
  const b = new TextEncoder().encode(s);
  if (b.length > 127) throw new RangeError('simulator IA5String too long');
  return new Uint8Array([0x16, b.length, ...b]);
}

function ext(oid: string, value: Uint8Array): x509.Extension {
  return new x509.Extension(oid, false, value);
}

function amdLeafExtensions(
  name: 'vcek' | 'vlek',
  product: SnpProduct,
  tcb: SnpSimTcb,
  chipId: Uint8Array,
  cspId: string,
  o: SnpSimCertOverride,
): x509.Extension[] {
  const out: x509.Extension[] = [];
  const sv = o.structVersion === undefined ? (product === 'Turin' ? 1 : 0) : o.structVersion;
  if (sv !== null) out.push(ext(OID.structVersion, derInteger(sv)));
  const pn = o.productName === undefined ? (product === 'Milan' && name === 'vcek' ? 'Milan-B0' : product) : o.productName;
  if (pn !== null) out.push(ext(OID.productName, derIa5(pn)));
  const spl = (key: 'blSPL' | 'teeSPL' | 'snpSPL' | 'ucodeSPL' | 'fmcSPL', v: number) => {
    const ov = o.tcb?.[key];
    const val = ov === undefined ? v : ov;
    if (val !== null) out.push(ext(OID[key], derInteger(val)));
  };
  spl('blSPL', tcb.bootloader);
  spl('teeSPL', tcb.tee);
  spl('snpSPL', tcb.snp);
  if (product !== 'Turin') out.push(ext(OID.spl4, derInteger(0)));
  out.push(ext(OID.spl5, derInteger(0)), ext(OID.spl6, derInteger(0)), ext(OID.spl7, derInteger(0)));
  spl('ucodeSPL', tcb.microcode);
  if (product === 'Turin' || o.tcb?.fmcSPL !== undefined) spl('fmcSPL', tcb.fmc ?? 0);
  if (name === 'vcek') {
    const hw = o.hwId === undefined ? (product === 'Turin' ? chipId.slice(0, 8) : chipId.slice()) : o.hwId;
    if (hw !== null) out.push(ext(OID.hwID, o.hwIdAsOctetString ? new Uint8Array([0x04, hw.length, ...hw]) : hw));
  } else {
    const csp = o.cspId === undefined ? cspId : o.cspId;
    if (csp !== null) out.push(ext(OID.cspID, derIa5(csp)));
  }
  return out;
}

async function makeCert(params: {
  subject: string;
  issuer: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  publicKey: CryptoKey;
  signer: CryptoKey;
  extensions: x509.Extension[];
  o: SnpSimCertOverride;
}): Promise<Uint8Array> {
  const { o } = params;
  let signer = params.signer;
  let signingAlgorithm: Algorithm & { saltLength?: number } = { name: 'RSA-PSS', saltLength: 48 };
  if (o.signature?.scheme === 'pss') signingAlgorithm = { name: 'RSA-PSS', saltLength: o.signature.saltLength };
  if (o.signature?.scheme === 'pkcs1') {
    // Re-import the PSS key for PKCS#1 v1.5 so the wrong-algorithm case is really signed.
    const pk = await subtle().exportKey('pkcs8', signer);
    signer = await subtle().importKey('pkcs8', pk, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-384' }, false, ['sign']);
    signingAlgorithm = { name: 'RSASSA-PKCS1-v1_5' };
  }
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: o.serial ?? params.serial,
      subject: o.subject ?? params.subject,
      issuer: o.issuer ?? params.issuer,
      notBefore: o.notBefore ?? params.notBefore,
      notAfter: o.notAfter ?? params.notAfter,
      publicKey: params.publicKey,
      signingKey: signer,
      signingAlgorithm,
      extensions: params.extensions,
    },
    globalThis.crypto,
  );
  let der: Uint8Array = new Uint8Array(cert.rawData);
  const serial = o.serial ?? params.serial;
  // @peculiar/x509 replaces an all-zero serial with a random one, but every real VCEK/VLEK has serial 0.
  if (/^0+$/.test(serial)) der = await resignWithSerialZero(der, signer, signingAlgorithm);
  if (o.corruptSignature) der[der.length - 5]! ^= 0x01;
  return der;
}

async function resignWithSerialZero(der: Uint8Array, signer: CryptoKey, alg: Algorithm): Promise<Uint8Array> {
  const cert = AsnConvert.parse(der, Certificate);
  cert.tbsCertificate.serialNumber = new Uint8Array([0]).buffer;
  const tbs = AsnConvert.serialize(cert.tbsCertificate);
  cert.signatureValue = await subtle().sign(alg, signer, tbs);
  return new Uint8Array(AsnConvert.serialize(cert));
}

function randomChipId(product: SnpProduct): Uint8Array {
  const c = globalThis.crypto.getRandomValues(new Uint8Array(64));
  if (product === 'Turin') c.fill(0, 8);
  return c;
}

/** Build a fresh ARK -> ASK -> VCEK and ARK -> ASVK -> VLEK chain. Slow-ish: RSA key generation. */
export async function createSnpSimChain(options: CreateSnpSimChainOptions): Promise<SnpSimChain> {
  const now = options.now;
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new TypeError('"now" expected a valid Date');
  const product = options.product ?? 'Milan';
  const bits = options.rsaBits ?? 2048;
  const chipId = options.chipId ? options.chipId.slice() : randomChipId(product);
  if (chipId.length !== 64) throw new RangeError('"chipId" expected Uint8Array of length 64');
  const tcb: SnpSimTcb =
    options.tcb ?? (product === 'Turin' ? { fmc: 0, bootloader: 1, tee: 0, snp: 2, microcode: 71 } : { bootloader: 4, tee: 0, snp: 24, microcode: 219 });
  const cspId = options.cspId ?? 'CN=sim.enclavekit.invalid';
  const ov = options.overrides ?? {};
  const nb = new Date(now.getTime() - 86_400_000);
  const years = (n: number) => new Date(now.getTime() + n * 365 * 86_400_000);

  const rsa = async () => subtle().generateKey(RSA_PSS(bits), true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
  const ec = async (curve: 'P-256' | 'P-384') =>
    subtle().generateKey({ name: 'ECDSA', namedCurve: curve }, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
  const given = options.keys ?? {};
  const leafKey = (n: 'vcek' | 'vlek') =>
    given[n] && ov[n]?.curve === undefined ? Promise.resolve(given[n]) : ec(ov[n]?.curve ?? 'P-384');
  const [arkK, askK, asvkK, vcekK, vlekK] = await Promise.all([
    given.ark ? Promise.resolve(given.ark) : rsa(),
    given.ask ? Promise.resolve(given.ask) : rsa(),
    given.asvk ? Promise.resolve(given.asvk) : rsa(),
    leafKey('vcek'),
    leafKey('vlek'),
  ]);
  const keys: Record<SnpSimCertName, CryptoKeyPair> = { ark: arkK, ask: askK, asvk: asvkK, vcek: vcekK, vlek: vlekK };
  const signerOf = (name: SnpSimCertName, dflt: SnpSimCertName) => keys[ov[name]?.signedBy ?? dflt].privateKey;
  const caExts = (name: SnpSimCertName, pathLen: number | undefined) => {
    const o = ov[name] ?? {};
    const out: x509.Extension[] = [new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)];
    if (o.ca !== null) out.push(new x509.BasicConstraintsExtension(o.ca ?? true, o.ca === false ? undefined : pathLen, true));
    return out;
  };
  const arkName = `${AMD_DN}, CN=ARK-${product}`;
  const askName = `${AMD_DN}, CN=SEV-${product}`;
  const asvkName = `${AMD_DN}, CN=SEV-VLEK-${product}`;
  const serialBase = { Milan: 1, Genoa: 2, Turin: 3 }[product];

  const arkDer = await makeCert({
    subject: arkName, issuer: arkName, serial: `0${serialBase}0000`, notBefore: nb, notAfter: years(25),
    publicKey: arkK.publicKey, signer: signerOf('ark', 'ark'), extensions: caExts('ark', undefined), o: ov.ark ?? {},
  });
  const askDer = await makeCert({
    subject: askName, issuer: arkName, serial: `0${serialBase}0001`, notBefore: nb, notAfter: years(25),
    publicKey: askK.publicKey, signer: signerOf('ask', 'ark'), extensions: caExts('ask', 0), o: ov.ask ?? {},
  });
  const asvkDer = await makeCert({
    subject: asvkName, issuer: arkName, serial: `0${serialBase}0101`, notBefore: nb, notAfter: years(25),
    publicKey: asvkK.publicKey, signer: signerOf('asvk', 'ark'), extensions: caExts('asvk', 0), o: ov.asvk ?? {},
  });
  const vcekDer = await makeCert({
    subject: `${AMD_DN}, CN=SEV-VCEK`, issuer: askName, serial: '00', notBefore: nb, notAfter: years(7),
    publicKey: vcekK.publicKey, signer: signerOf('vcek', 'ask'),
    extensions: amdLeafExtensions('vcek', product, tcb, chipId, cspId, ov.vcek ?? {}), o: ov.vcek ?? {},
  });
  const vlekDer = await makeCert({
    subject: `${AMD_DN}, CN=SEV-VLEK`, issuer: asvkName, serial: '00', notBefore: nb, notAfter: years(1),
    publicKey: vlekK.publicKey, signer: signerOf('vlek', 'asvk'),
    extensions: amdLeafExtensions('vlek', product, tcb, chipId, cspId, ov.vlek ?? {}), o: ov.vlek ?? {},
  });
  const c = (der: Uint8Array, k: CryptoKeyPair): SimCert => ({ der, privateKey: k.privateKey, publicKey: k.publicKey });
  return {
    product,
    chipId,
    tcb: Object.freeze({ ...tcb }),
    cspId,
    ark: c(arkDer, arkK),
    ask: c(askDer, askK),
    asvk: c(asvkDer, asvkK),
    vcek: c(vcekDer, vcekK),
    vlek: c(vlekDer, vlekK),
  };
}

/** The key pairs of a chain, to pass as `keys` when building variants of it. */
export function snpSimChainKeys(chain: SnpSimChain): Record<SnpSimCertName, CryptoKeyPair> {
  const k = (c: SimCert): CryptoKeyPair => ({ publicKey: c.publicKey, privateKey: c.privateKey });
  return { ark: k(chain.ark), ask: k(chain.ask), asvk: k(chain.asvk), vcek: k(chain.vcek), vlek: k(chain.vlek) };
}

export interface IssueSnpReportOptions {
  /** 2..5 (default 5). v2 has no CPUID bytes; v5 adds the mitigation vectors. */
  version?: number;
  signingKey?: 'VCEK' | 'VLEK';
  measurement: Uint8Array;
  reportData: Uint8Array;
  hostData?: Uint8Array;
  /** Guest POLICY (default 0x30000: SMT allowed, reserved bit 17). */
  policy?: bigint;
  /** REPORTED_TCB (default: the chain's TCB). CURRENT/COMMITTED/LAUNCH default to it too. */
  tcb?: SnpSimTcb;
  currentTcb?: SnpSimTcb;
  committedTcb?: SnpSimTcb;
  launchTcb?: SnpSimTcb;
  /** Default: the chain's chip id for a VCEK, zeros for a VLEK (hosts mask it). */
  chipId?: Uint8Array;
  vmpl?: number;
  guestSvn?: number;
  familyId?: Uint8Array;
  imageId?: Uint8Array;
  idKeyDigest?: Uint8Array;
  authorKeyDigest?: Uint8Array;
  authorKeyEn?: boolean;
  reportId?: Uint8Array;
  reportIdMa?: Uint8Array;
  platformInfo?: bigint;
  /** Firmware version (default 1.55.40). */
  currentVersion?: { major: number; minor: number; build: number };
  committedVersion?: { major: number; minor: number; build: number };
  launchMitVector?: bigint;
  currentMitVector?: bigint;
  /** Change bytes before signing (for negative tests of the parser). */
  mutate?: (bytes: Uint8Array) => void;
}

function put(b: Uint8Array, off: number, v: Uint8Array | undefined, len: number, label: string): void {
  if (v === undefined) return;
  if (!(v instanceof Uint8Array) || v.length !== len) throw new RangeError(`"${label}" expected Uint8Array of length ${len}`);
  b.set(v, off);
}

function putU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

function putU64(b: Uint8Array, off: number, v: bigint): void {
  for (let i = 0; i < 8; i++) b[off + i] = Number((v >> BigInt(8 * i)) & 0xffn);
}

/** Issue a report in the firmware's layout, signed with the chain's VCEK (or VLEK) key. */
export async function issueSnpReport(chain: SnpSimChain, o: IssueSnpReportOptions): Promise<Uint8Array> {
  const version = o.version ?? 5;
  const signer = o.signingKey ?? 'VCEK';
  const b = new Uint8Array(SNP_REPORT_SIZE);
  const tcb = o.tcb ?? chain.tcb;
  const enc = (t: SnpSimTcb | undefined) => encodeTcb(t ?? tcb, chain.product);
  putU32(b, 0x000, version);
  putU32(b, 0x004, o.guestSvn ?? 0);
  putU64(b, 0x008, o.policy ?? 0x30000n);
  put(b, 0x010, o.familyId, 16, 'familyId');
  put(b, 0x020, o.imageId, 16, 'imageId');
  putU32(b, 0x030, o.vmpl ?? 0);
  putU32(b, 0x034, 1);
  b.set(enc(o.currentTcb), 0x038);
  putU64(b, 0x040, o.platformInfo ?? 0x25n);
  putU32(b, 0x048, (o.authorKeyEn ? 1 : 0) | ((signer === 'VLEK' ? 1 : 0) << 2));
  put(b, 0x050, o.reportData, 64, 'reportData');
  put(b, 0x090, o.measurement, 48, 'measurement');
  put(b, 0x0c0, o.hostData, 32, 'hostData');
  put(b, 0x0e0, o.idKeyDigest, 48, 'idKeyDigest');
  put(b, 0x110, o.authorKeyDigest, 48, 'authorKeyDigest');
  put(b, 0x140, o.reportId ?? globalThis.crypto.getRandomValues(new Uint8Array(32)), 32, 'reportId');
  put(b, 0x160, o.reportIdMa ?? new Uint8Array(32).fill(0xff), 32, 'reportIdMa');
  b.set(enc(tcb), 0x180);
  if (version >= 3) b.set(CPUID[chain.product], 0x188);
  put(b, 0x1a0, o.chipId ?? (signer === 'VCEK' ? chain.chipId : new Uint8Array(64)), 64, 'chipId');
  b.set(enc(o.committedTcb), 0x1e0);
  const cv = o.currentVersion ?? { major: 1, minor: 55, build: 40 };
  const mv = o.committedVersion ?? cv;
  b.set([cv.build, cv.minor, cv.major], 0x1e8);
  b.set([mv.build, mv.minor, mv.major], 0x1ec);
  b.set(enc(o.launchTcb), 0x1f0);
  if (version >= 5) {
    putU64(b, 0x1f8, o.launchMitVector ?? 0n);
    putU64(b, 0x200, o.currentMitVector ?? 0n);
  }
  o.mutate?.(b);
  const key = signer === 'VCEK' ? chain.vcek.privateKey : chain.vlek.privateKey;
  const sig = new Uint8Array(
    await subtle().sign({ name: 'ECDSA', hash: 'SHA-384' }, key, b.subarray(0, SNP_SIGNED_LENGTH)),
  );
  const half = sig.length / 2;
  // AMD stores r and s little-endian in 72-byte slots.
  for (let i = 0; i < half; i++) {
    b[0x2a0 + i] = sig[half - 1 - i]!;
    b[0x2e8 + i] = sig[2 * half - 1 - i]!;
  }
  return b;
}

/** Rewrite the signature of already-built report bytes (for tests that edit signed fields). */
export async function resignSnpReport(chain: SnpSimChain, report: Uint8Array, signer: 'VCEK' | 'VLEK' = 'VCEK'): Promise<Uint8Array> {
  const b = report.slice();
  b.fill(0, 0x2a0, 0x330);
  const key = signer === 'VCEK' ? chain.vcek.privateKey : chain.vlek.privateKey;
  const sig = new Uint8Array(await subtle().sign({ name: 'ECDSA', hash: 'SHA-384' }, key, b.subarray(0, SNP_SIGNED_LENGTH)));
  for (let i = 0; i < 48; i++) {
    b[0x2a0 + i] = sig[47 - i]!;
    b[0x2e8 + i] = sig[95 - i]!;
  }
  return b;
}

const b64 = (b: Uint8Array) => {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return btoa(s);
};
const unb64 = (s: unknown, label: string): Uint8Array => {
  if (typeof s !== 'string') throw stateError(`${label} missing`);
  try {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch (cause) {
    throw stateError(`${label} is not base64`, cause);
  }
};

function stateError(msg: string, cause?: unknown): AttestationError {
  return new AttestationError('ERR_SIMULATOR_STATE', `SEV-SNP simulator chain: ${msg}`, { reason: 'snp_chain', cause });
}

/** JSON form for a simulator state folder. Contains private keys (PKCS#8): simulator use only. */
export interface SnpSimChainJson {
  format: 'enclavekit-snp-sim-chain';
  version: 1;
  product: SnpProduct;
  chipId: string;
  tcb: SnpSimTcb;
  cspId: string;
  certs: Record<SnpSimCertName, string>;
  keys: Record<SnpSimCertName, string>;
}

export async function exportSnpSimChain(chain: SnpSimChain): Promise<SnpSimChainJson> {
  const certs = {} as Record<SnpSimCertName, string>;
  const keys = {} as Record<SnpSimCertName, string>;
  for (const n of SNP_SIM_CERTS) {
    certs[n] = b64(chain[n].der);
    keys[n] = b64(new Uint8Array(await subtle().exportKey('pkcs8', chain[n].privateKey)));
  }
  return {
    format: 'enclavekit-snp-sim-chain',
    version: 1,
    product: chain.product,
    chipId: toHex(chain.chipId),
    tcb: { ...chain.tcb },
    cspId: chain.cspId,
    certs,
    keys,
  };
}

export async function importSnpSimChain(json: unknown): Promise<SnpSimChain> {
  if (typeof json !== 'object' || json === null) throw stateError('not an object');
  const j = json as Partial<SnpSimChainJson>;
  if (j.format !== 'enclavekit-snp-sim-chain' || j.version !== 1) throw stateError('unknown format or version');
  if (j.product !== 'Milan' && j.product !== 'Genoa' && j.product !== 'Turin') throw stateError('bad product');
  if (typeof j.chipId !== 'string' || j.chipId.length !== 128) throw stateError('bad chipId');
  const t = j.tcb as Partial<SnpSimTcb> | undefined;
  const okN = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255;
  if (!t || !okN(t.bootloader) || !okN(t.tee) || !okN(t.snp) || !okN(t.microcode) || (t.fmc !== undefined && !okN(t.fmc)))
    throw stateError('bad tcb');
  if (typeof j.cspId !== 'string') throw stateError('bad cspId');
  if (typeof j.certs !== 'object' || j.certs === null || typeof j.keys !== 'object' || j.keys === null)
    throw stateError('certs/keys missing');
  let chipId: Uint8Array;
  try {
    chipId = fromHex(j.chipId);
  } catch (cause) {
    throw stateError('bad chipId', cause);
  }
  const out: Partial<Record<SnpSimCertName, SimCert>> = {};
  for (const n of SNP_SIM_CERTS) {
    const der = unb64(j.certs[n], `certs.${n}`);
    const pk8 = unb64(j.keys[n], `keys.${n}`);
    const isLeaf = n === 'vcek' || n === 'vlek';
    let privateKey: CryptoKey;
    let publicKey: CryptoKey;
    try {
      const cert = new x509.X509Certificate(der);
      const alg: Algorithm = isLeaf
        ? { name: 'ECDSA', namedCurve: (cert.publicKey.algorithm as { namedCurve?: string }).namedCurve ?? 'P-384' }
        : { name: 'RSA-PSS', hash: 'SHA-384' };
      privateKey = await subtle().importKey('pkcs8', pk8, alg, true, ['sign']);
      publicKey = await subtle().importKey('spki', cert.publicKey.rawData, alg, true, ['verify']);
    } catch (cause) {
      throw stateError(`${n} certificate or key cannot be imported`, cause);
    }
    out[n] = { der, privateKey, publicKey };
  }
  return {
    product: j.product,
    chipId,
    tcb: Object.freeze({ ...(t as SnpSimTcb) }),
    cspId: j.cspId,
    ark: out.ark!,
    ask: out.ask!,
    asvk: out.asvk!,
    vcek: out.vcek!,
    vlek: out.vlek!,
  };
}

/** A DER CRL like AMD's `/crl` (signed by the ARK with RSASSA-PSS), revoking the named intermediates. */
export async function issueSnpSimCrl(
  chain: SnpSimChain,
  o: { thisUpdate: Date; nextUpdate?: Date; revoke?: readonly ('ask' | 'asvk')[]; signedBy?: SnpSimCertName; saltLength?: number },
): Promise<Uint8Array> {
  const ark = new x509.X509Certificate(chain.ark.der);
  const entries = (o.revoke ?? []).map((n) => ({
    serialNumber: new x509.X509Certificate(chain[n].der).serialNumber,
    revocationDate: o.thisUpdate,
  }));
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: ark.subjectName,
      thisUpdate: o.thisUpdate,
      ...(o.nextUpdate ? { nextUpdate: o.nextUpdate } : {}),
      entries,
      signingKey: chain[o.signedBy ?? 'ark'].privateKey,
      signingAlgorithm: { name: 'RSA-PSS', saltLength: o.saltLength ?? 48 } as Algorithm,
    },
    globalThis.crypto,
  );
  return new Uint8Array(crl.rawData);
}
