/**
 * SEV-SNP verification: the AMD chain (pinned ARK -> ASK or ASVK -> VCEK or VLEK, RSASSA-PSS SHA-384
 * salt 48 on every link, validity at `now`), the report's ECDSA P-384 signature, the binding of the
 * leaf to the report (TCB extensions == REPORTED_TCB in the product's layout, hwID == CHIP_ID, cspID
 * for a VLEK), optional CRL, then the policy (policy.ts). Returns a frozen VerifiedSnpReport or throws.
 *
 * Verified chains are cached (keyed by leaf, intermediate and anchor bytes, valid until the earliest
 * notAfter), so a warm verification costs the report's own ECDSA signature check.
 */
import { AttestationError } from '../errors.js';
import { equalBytes, isAllZero, toHex } from '../bytes.js';
import type { CryptoProvider } from '../crypto/provider.js';
import { nobleCrypto } from '../crypto/noble.js';
import {
  decodeTcb,
  parseSnpReport,
  platformInfoFlags,
  policyFlags,
  productFromCpuid,
  SNP_PRODUCTS,
  type SnpProduct,
  type SnpReport,
  type SnpSigningKey,
  type SnpTcb,
} from './abi.js';
import { certBytes, normSerial, parseAmdCert, parseAmdCrl, type AmdCert } from './cert.js';
import { parseSnpCertTable } from './certtable.js';
import { checkSnpPolicy, type SnpPolicy } from './policy.js';
import { amdRoots } from './roots.js';

/** Each certificate is DER or PEM. */
export interface SnpCerts {
  vcek?: Uint8Array;
  vlek?: Uint8Array;
  /** The ASK (VCEK path). Default: the built-in one for the product. */
  ask?: Uint8Array;
  /** The ASVK (VLEK path). Default: the built-in one for the product. */
  asvk?: Uint8Array;
  /** If given, it must be byte-identical to a trusted root; it never adds trust. */
  ark?: Uint8Array;
  /** The extended-report certificate table (SNP_GET_EXT_REPORT / configfs-tsm auxblob). Explicit
   * certificates above take precedence over its entries. */
  certTable?: Uint8Array;
}

export interface SnpVerifyOptions {
  /** Verification time (default: the clock at the call). */
  now?: Date;
  /** Trusted ARKs, DER. Default: AMD's pinned Milan, Genoa and Turin ARKs. Replaces them when given. */
  roots?: readonly Uint8Array[];
  /** Simulator ARKs, trusted only when passed here; reports under them get `platform: 'simulator'`. */
  simulatorRoots?: readonly Uint8Array[];
  /** Crypto backend (default: node:crypto from `enclavekit/attestation`, noble from `/pure`). */
  crypto?: CryptoProvider;
  policy?: SnpPolicy;
  /** The product, when the caller knows it; must agree with the CPUID bytes and the leaf. */
  product?: SnpProduct;
  /** AMD's DER CRL(s) for the product, verified under the ARK; a revoked ASK/ASVK fails. */
  crl?: Uint8Array | readonly Uint8Array[];
  /** Accepted cspID values for a VLEK (e.g. "CN=cc-us-east-2.amazonaws.com"); any when absent. */
  allowedCspIds?: readonly string[];
  /** Verified-chain cache; `false` disables it. Default: a shared in-memory cache. */
  cache?: SnpChainCache | false;
}

export interface SnpTcbClaims {
  readonly reported: SnpTcb;
  readonly current: SnpTcb;
  readonly committed: SnpTcb;
  readonly launch: SnpTcb;
}

declare const verifiedSnpBrand: unique symbol;

export interface VerifiedSnpReport {
  /** Only verifySevSnp constructs this type. */
  readonly [verifiedSnpBrand]: true;
  readonly format: 'sev-snp';
  readonly platform: 'sev-snp' | 'simulator';
  readonly product: SnpProduct;
  readonly version: number;
  readonly signingKey: SnpSigningKey;
  readonly measurement: Uint8Array;
  readonly reportData: Uint8Array;
  readonly hostData: Uint8Array;
  readonly chipId: Uint8Array;
  readonly vmpl: number;
  readonly guestSvn: number;
  readonly policy: bigint;
  readonly policyFlags: Readonly<Record<string, boolean | number>>;
  readonly platformInfo: bigint;
  readonly platformInfoFlags: Readonly<Record<string, boolean>>;
  readonly tcb: SnpTcbClaims;
  readonly currentVersion: SnpReport['currentVersion'];
  readonly committedVersion: SnpReport['committedVersion'];
  /** VLEK only. */
  readonly cspId?: string;
  /** The leaf's public key (SPKI DER). */
  readonly signingKeySpki: Uint8Array;
  /** The earliest notAfter on the chain. */
  readonly validUntil: Date;
  /** The whole parsed report. */
  readonly report: SnpReport;
}

const verifiedSet = new WeakSet<object>();
/** True only for objects returned by verifySevSnp in this module instance (a KMS gate should require it). */
export function isVerifiedSnpReport(x: unknown): x is VerifiedSnpReport {
  return typeof x === 'object' && x !== null && verifiedSet.has(x);
}

interface ChainEntry {
  readonly product: SnpProduct;
  readonly platform: 'sev-snp' | 'simulator';
  readonly leaf: AmdCert;
  readonly intermediate: AmdCert;
  readonly ark: AmdCert;
  readonly notBefore: number;
  readonly notAfter: number;
}

/** A bounded map of verified chains. Entries are only ever added after a full verification. */
export class SnpChainCache {
  readonly #max: number;
  readonly #map = new Map<string, ChainEntry>();
  /** ARKs whose self-signature this cache has seen verified (DER hash + provider name). */
  readonly #anchors = new Set<string>();
  /** @internal */ anchorVerified(key: string): boolean {
    return this.#anchors.has(key);
  }
  /** @internal */ addAnchor(key: string): void {
    if (this.#anchors.size >= 64) this.#anchors.clear();
    this.#anchors.add(key);
  }
  constructor(maxEntries = 256) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('"maxEntries" expected a positive integer');
    this.#max = maxEntries;
  }
  /** @internal */ get(key: string): ChainEntry | undefined {
    const e = this.#map.get(key);
    if (e !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, e);
    }
    return e;
  }
  /** @internal */ set(key: string, e: ChainEntry): void {
    this.#map.delete(key);
    if (this.#map.size >= this.#max) this.#map.delete(this.#map.keys().next().value!);
    this.#map.set(key, e);
  }
  get size(): number {
    return this.#map.size;
  }
  clear(): void {
    this.#map.clear();
    this.#anchors.clear();
  }
}

const defaultCache = new SnpChainCache();

/**
 * Cache entries mean "this provider verified these signatures", so they are keyed by the provider
 * object, not its `name`: a test double or a broken provider called "node" must not fill the shared
 * cache with chains the real one then takes as verified.
 */
const providerIds = new WeakMap<CryptoProvider, number>();
let lastProviderId = 0;
function providerKey(crypto: CryptoProvider): string {
  let id = providerIds.get(crypto);
  if (id === undefined) providerIds.set(crypto, (id = ++lastProviderId));
  return `${crypto.name}#${id}`;
}

function chainError(reason: string, message: string, cause?: unknown): AttestationError {
  return new AttestationError('ERR_SNP_CHAIN_INVALID', `SEV-SNP chain: ${message}`, { reason, cause });
}
function bindError(reason: string, message: string): AttestationError {
  return new AttestationError('ERR_SNP_BINDING_INVALID', `SEV-SNP binding: ${message}`, { reason });
}

function productFromName(name: string | undefined, what: string): SnpProduct | undefined {
  if (name === undefined) return undefined;
  // Milan B1 parts still say "Milan-B0"; the stepping suffix does not change the chain.
  const base = name.split('-')[0]!;
  if ((SNP_PRODUCTS as readonly string[]).includes(base)) return base as SnpProduct;
  throw chainError('product_name', `${what} names an unknown product "${name}"`);
}

function arkProduct(ark: AmdCert): SnpProduct | undefined {
  const cn = ark.subjectCN ?? '';
  return cn.startsWith('ARK-') ? productFromName(cn.slice(4), 'ARK') : undefined;
}

/** Parsed-certificate memo: certificates repeat across reports, and parsing is most of a cold run. */
const parsedMemo = new Map<string, AmdCert>();
function parseMemo(der: Uint8Array, label: string, crypto: CryptoProvider): AmdCert {
  const key = toHex(crypto.sha256(der));
  let c = parsedMemo.get(key);
  if (c === undefined) {
    c = parseAmdCert(der, label);
    if (parsedMemo.size >= 512) parsedMemo.delete(parsedMemo.keys().next().value!);
    parsedMemo.set(key, c);
  }
  return c;
}

function checkValidity(c: AmdCert, now: Date, label: string): void {
  const t = now.getTime();
  if (t < c.notBefore.getTime()) throw chainError('not_yet_valid', `${label} is not valid before ${c.notBefore.toISOString()}`);
  if (t > c.notAfter.getTime()) throw chainError('expired', `${label} expired at ${c.notAfter.toISOString()}`);
}

function verifyLink(child: AmdCert, issuer: AmdCert, crypto: CryptoProvider, label: string): void {
  if (child.version !== 3) throw chainError('cert_version', `${label} is not an X.509 v3 certificate`);
  if (!child.pssSha384) throw chainError('signature_algorithm', `${label} is not signed with RSASSA-PSS SHA-384 salt 48`);
  if (issuer.keyType !== 'rsa') throw chainError('issuer_key', `${label}'s issuer key is not RSA`);
  if (!equalBytes(child.issuer, issuer.subject))
    throw chainError('issuer_name', `${label}'s issuer name does not match ${issuer.subjectCN ?? 'its issuer'}`);
  let ok: boolean;
  try {
    ok = crypto.verifyRsaPssSha384(issuer.spki, child.tbs, child.signature);
  } catch (cause) {
    throw chainError('issuer_key', `${label}'s issuer key cannot be used`, cause);
  }
  if (!ok) throw chainError('signature', `${label}'s signature does not verify under ${issuer.subjectCN ?? 'its issuer'}`);
}

function checkCa(c: AmdCert, label: string): void {
  if (c.ca !== true) throw chainError('not_ca', `${label} is not a CA certificate (basicConstraints)`);
  if (c.keyCertSign === false) throw chainError('key_usage', `${label} may not sign certificates (keyUsage)`);
}

function anchorsKey(roots: readonly Uint8Array[] | undefined, sims: readonly Uint8Array[] | undefined, crypto: CryptoProvider): string {
  if (roots === undefined && (sims === undefined || sims.length === 0)) return 'amd';
  const parts: string[] = [];
  for (const r of roots ?? []) parts.push('r' + toHex(crypto.sha256(r)));
  for (const r of sims ?? []) parts.push('s' + toHex(crypto.sha256(r)));
  return parts.join(',');
}

interface Anchor {
  cert: AmdCert;
  product: SnpProduct;
  platform: 'sev-snp' | 'simulator';
}


function loadAnchors(opts: SnpVerifyOptions, crypto: CryptoProvider): Anchor[] {
  const out: Anchor[] = [];
  const add = (der: Uint8Array, platform: Anchor['platform'], i: number) => {
    if (!(der instanceof Uint8Array)) throw new TypeError(`"roots[${i}]" expected Uint8Array`);
    const cert = parseMemo(der, `root ${i}`, crypto);
    const product = arkProduct(cert);
    if (product === undefined) throw chainError('root_name', `root ${i} (${cert.subjectCN ?? 'no CN'}) is not an ARK-<product> certificate`);
    out.push({ cert, product, platform });
  };
  const roots = opts.roots ?? SNP_PRODUCTS.map((p) => amdRoots()[p].ark);
  roots.forEach((r, i) => add(r, 'sev-snp', i));
  (opts.simulatorRoots ?? []).forEach((r, i) => add(r, 'simulator', i));
  return out;
}

function checkAnchor(a: Anchor, now: Date, crypto: CryptoProvider, cache: SnpChainCache | undefined): void {
  const c = a.cert;
  checkValidity(c, now, `ARK-${a.product}`);
  const key = toHex(crypto.sha256(c.der)) + providerKey(crypto);
  if (cache?.anchorVerified(key)) return;
  checkCa(c, `ARK-${a.product}`);
  verifyLink(c, c, crypto, `ARK-${a.product}`);
  cache?.addAnchor(key);
}

/**
 * Verify an SEV-SNP report with its leaf certificate (and optionally intermediates, an ARK that must
 * be pinned, or the extended-report certificate table). Throws `ERR_SNP_REPORT_INVALID`,
 * `ERR_SNP_SIGNATURE_INVALID`, `ERR_SNP_CHAIN_INVALID`, `ERR_SNP_BINDING_INVALID`, `ERR_CERT_INVALID`,
 * `ERR_SNP_CERT_TABLE_INVALID` or `ERR_ATTESTATION_POLICY`.
 */
export function verifySevSnpWith(
  report: Uint8Array,
  certs: SnpCerts,
  options: SnpVerifyOptions = {},
  defaultCrypto: CryptoProvider = nobleCrypto,
): VerifiedSnpReport {
  if (typeof certs !== 'object' || certs === null) throw new TypeError('"certs" expected an object');
  const now = options.now ?? new Date();
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new TypeError('"now" expected a valid Date');
  const crypto = options.crypto ?? defaultCrypto;
  const r = parseSnpReport(report);

  const pemOrDer = (c: Uint8Array | undefined, label: string) => {
    if (c === undefined) return undefined;
    if (!(c instanceof Uint8Array)) throw new TypeError(`"certs.${label}" expected Uint8Array`);
    return certBytes(c, label);
  };
  let vcek = pemOrDer(certs.vcek, 'vcek');
  let vlek = pemOrDer(certs.vlek, 'vlek');
  let ask = pemOrDer(certs.ask, 'ask');
  let asvk = pemOrDer(certs.asvk, 'asvk');
  let ark = pemOrDer(certs.ark, 'ark');
  let tableCpuid: { family: number; model: number } | undefined;
  if (certs.certTable !== undefined) {
    const t = parseSnpCertTable(certs.certTable);
    if (t.cpuidEax !== undefined) {
      // CPUID(1).EAX: family = base (11:8) + extended (27:20); model = extended (19:16) << 4 | base (7:4).
      const e = t.cpuidEax;
      tableCpuid = { family: ((e >>> 8) & 0xf) + ((e >>> 20) & 0xff), model: (((e >>> 16) & 0xf) << 4) | ((e >>> 4) & 0xf) };
    }
    vcek ??= t.vcek;
    vlek ??= t.vlek;
    ark ??= t.ark;
    if (r.signingKey === 'VCEK') ask ??= t.ask;
    else asvk ??= t.ask;
  }
  const isVcek = r.signingKey === 'VCEK';
  const leafDer = isVcek ? vcek : vlek;
  if (leafDer === undefined)
    throw chainError('leaf_missing', `the report is signed by a ${r.signingKey} but no ${r.signingKey} certificate was given`);
  const interGiven = isVcek ? ask : asvk;
  const interName = isVcek ? 'ASK' : 'ASVK';

  // A v2 report has no CPUID bytes; go-sev-guest's extra-platform-info table entry may supply them.
  // It is host-supplied, so it only ever narrows: every product source still has to agree.
  const cpuidSrc = r.cpuid ?? tableCpuid;
  const cpuidProduct = cpuidSrc ? productFromCpuid(cpuidSrc.family, cpuidSrc.model) : undefined;
  if (options.product !== undefined && !(SNP_PRODUCTS as readonly string[]).includes(options.product))
    throw new TypeError(`"product" expected one of ${SNP_PRODUCTS.join(', ')}`);

  const cache = options.cache === false ? undefined : (options.cache ?? defaultCache);
  let cacheKey: string | undefined;
  let entry: ChainEntry | undefined;
  if (cache) {
    cacheKey = [
      toHex(crypto.sha256(leafDer)),
      interGiven ? toHex(crypto.sha256(interGiven)) : 'builtin',
      anchorsKey(options.roots, options.simulatorRoots, crypto),
      options.product ?? '',
      (options.allowedCspIds ?? []).join('\n'),
      providerKey(crypto),
    ].join('|');
    entry = cache.get(cacheKey);
    const t = now.getTime();
    if (entry && (t < entry.notBefore || t > entry.notAfter)) entry = undefined;
    // Product rules are re-decided by the full path whenever this report's CPUID says anything else.
    if (entry && cpuidProduct !== entry.product && (cpuidProduct !== undefined || r.cpuid !== undefined)) entry = undefined;
    if (entry && ark !== undefined && !equalBytes(ark, entry.ark.der)) entry = undefined;
  }

  if (!entry) {
    entry = verifyChain(r, leafDer, interGiven, interName, ark, cpuidProduct, now, crypto, options, cache);
    if (cache && cacheKey) cache.set(cacheKey, entry);
  }
  const { leaf, product } = entry;

  if (options.crl !== undefined) checkCrl(options.crl, entry, now, crypto);

  // The report's own signature: the only check a warm verification repeats.
  let sigOk: boolean;
  try {
    sigOk = crypto.verifyEcdsaP384(leaf.spki, r.signedBytes, r.signatureP1363);
  } catch (cause) {
    throw chainError('leaf_key', `${r.signingKey} key cannot be used`, cause);
  }
  if (!sigOk)
    throw new AttestationError('ERR_SNP_SIGNATURE_INVALID', `SEV-SNP report signature does not verify under the ${r.signingKey}`, {
      reason: 'signature',
    });

  bind(r, leaf, product, options);
  checkSnpPolicy(r, product, options.policy);

  const tcb: SnpTcbClaims = Object.freeze({
    reported: decodeTcb(r.reportedTcb, product),
    current: decodeTcb(r.currentTcb, product),
    committed: decodeTcb(r.committedTcb, product),
    launch: decodeTcb(r.launchTcb, product),
  });
  const out = Object.freeze({
    format: 'sev-snp' as const,
    platform: entry.platform,
    product,
    version: r.version,
    signingKey: r.signingKey,
    measurement: r.measurement.slice(),
    reportData: r.reportData.slice(),
    hostData: r.hostData.slice(),
    chipId: r.chipId.slice(),
    vmpl: r.vmpl,
    guestSvn: r.guestSvn,
    policy: r.policy,
    policyFlags: Object.freeze(policyFlags(r.policy)),
    platformInfo: r.platformInfo,
    platformInfoFlags: Object.freeze(platformInfoFlags(r.platformInfo)),
    tcb,
    currentVersion: r.currentVersion,
    committedVersion: r.committedVersion,
    ...(leaf.amd.cspID !== undefined && !isVcek ? { cspId: leaf.amd.cspID } : {}),
    signingKeySpki: leaf.spki.slice(),
    validUntil: new Date(entry.notAfter),
    report: Object.freeze(r),
  }) as VerifiedSnpReport;
  verifiedSet.add(out);
  return out;
}

function verifyChain(
  r: SnpReport,
  leafDer: Uint8Array,
  interGiven: Uint8Array | undefined,
  interName: 'ASK' | 'ASVK',
  arkGiven: Uint8Array | undefined,
  cpuidProduct: SnpProduct | undefined,
  now: Date,
  crypto: CryptoProvider,
  options: SnpVerifyOptions,
  cache: SnpChainCache | undefined,
): ChainEntry {
  const isVcek = r.signingKey === 'VCEK';
  const leaf = parseMemo(leafDer, r.signingKey, crypto);

  // Product: every source present must agree (CPUID v3+, the leaf's productName, the caller's option).
  if (r.cpuid && cpuidProduct === undefined && options.product === undefined)
    throw chainError(
      'product_unknown',
      `CPUID family 0x${r.cpuid.family.toString(16)} model 0x${r.cpuid.model.toString(16)} is not a supported product`,
    );
  const leafProduct = productFromName(leaf.amd.productName, r.signingKey);
  const sources: [string, SnpProduct | undefined][] = [
    ['CPUID', cpuidProduct],
    [`${r.signingKey} productName`, leafProduct],
    ['option product', options.product],
  ];
  let product: SnpProduct | undefined;
  for (const [src, p] of sources) {
    if (p === undefined) continue;
    if (product !== undefined && p !== product)
      throw chainError('product_mismatch', `${src} says ${p} but ${sources.find(([, q]) => q === product)![0]} says ${product}`);
    product ??= p;
  }
  if (product === undefined)
    throw chainError('product_unknown', 'cannot tell the product: v2 report, no productName in the leaf and no product option');

  const anchors = loadAnchors(options, crypto).filter((a) => a.product === product);
  if (anchors.length === 0) throw chainError('no_root', `no trusted ARK for ${product}`);
  let candidates = anchors;
  if (arkGiven !== undefined) {
    candidates = anchors.filter((a) => equalBytes(a.cert.der, arkGiven));
    if (candidates.length === 0) throw chainError('ark_not_trusted', `the given ARK is not a trusted ARK-${product}`);
  }

  // The intermediate: the caller's, or the built-in one (only meaningful under AMD's own ARK).
  const interDer = interGiven ?? (isVcek ? amdRoots()[product].ask : amdRoots()[product].asvk);
  const inter = parseMemo(interDer, interName, crypto);
  const wantInterCN = isVcek ? `SEV-${product}` : `SEV-VLEK-${product}`;
  if (inter.subjectCN !== wantInterCN)
    throw chainError('intermediate_name', `${interName} subject CN is "${inter.subjectCN ?? ''}", expected "${wantInterCN}"`);
  if (inter.keyType !== 'rsa') throw chainError('intermediate_key', `${interName} key is not RSA`);
  checkCa(inter, interName);

  let anchor: Anchor | undefined;
  let lastErr: unknown;
  for (const a of candidates) {
    try {
      checkAnchor(a, now, crypto, cache);
      verifyLink(inter, a.cert, crypto, interName);
      anchor = a;
      break;
    } catch (e) {
      lastErr = e;
    }
  }
  if (!anchor) {
    if (lastErr instanceof AttestationError) throw lastErr;
    throw chainError('signature', `${interName} does not chain to a trusted ARK-${product}`, lastErr);
  }
  checkValidity(inter, now, interName);

  const wantLeafCN = isVcek ? 'SEV-VCEK' : 'SEV-VLEK';
  if (leaf.subjectCN !== wantLeafCN)
    throw chainError('leaf_name', `${r.signingKey} subject CN is "${leaf.subjectCN ?? ''}", expected "${wantLeafCN}"`);
  if (leaf.keyType !== 'ec-p384') throw chainError('leaf_key', `${r.signingKey} key is not ECDSA P-384`);
  if (leaf.ca === true) throw chainError('leaf_is_ca', `${r.signingKey} is marked as a CA`);
  verifyLink(leaf, inter, crypto, r.signingKey);
  checkValidity(leaf, now, r.signingKey);

  const notBefore = Math.max(anchor.cert.notBefore.getTime(), inter.notBefore.getTime(), leaf.notBefore.getTime());
  const notAfter = Math.min(anchor.cert.notAfter.getTime(), inter.notAfter.getTime(), leaf.notAfter.getTime());
  return Object.freeze({ product, platform: anchor.platform, leaf, intermediate: inter, ark: anchor.cert, notBefore, notAfter });
}

function checkCrl(input: Uint8Array | readonly Uint8Array[], entry: ChainEntry, now: Date, crypto: CryptoProvider): void {
  const list = input instanceof Uint8Array ? [input] : input;
  let matched = 0;
  for (const der of list) {
    const crl = (() => {
      try {
        return parseAmdCrl(der);
      } catch (cause) {
        throw chainError('crl_invalid', 'the CRL cannot be parsed', cause);
      }
    })();
    // A CRL from another product's ARK says nothing about this chain; one under this ARK must verify.
    if (!equalBytes(crl.issuer, entry.ark.subject)) continue;
    matched++;
    if (!crl.pssSha384) throw chainError('crl_signature_algorithm', 'the CRL is not signed with RSASSA-PSS SHA-384 salt 48');
    if (!crypto.verifyRsaPssSha384(entry.ark.spki, crl.tbs, crl.signature))
      throw chainError('crl_signature', 'the CRL signature does not verify under the ARK');
    if (now.getTime() < crl.thisUpdate.getTime()) throw chainError('crl_not_yet_valid', 'the CRL is issued after the verification time');
    if (crl.nextUpdate && now.getTime() > crl.nextUpdate.getTime()) throw chainError('crl_expired', 'the CRL is past its nextUpdate');
    if (crl.revokedSerials.has(normSerial(entry.intermediate.serialHex)))
      throw chainError('revoked', `${entry.intermediate.subjectCN ?? 'the intermediate'} (serial ${entry.intermediate.serialHex}) is revoked`);
  }
  // A CRL was asked for; none from this chain's ARK means revocation was not checked: fail closed.
  if (matched === 0) throw chainError('crl_issuer', `no given CRL is issued by ${entry.ark.subjectCN ?? 'the ARK'}`);
}

function bind(r: SnpReport, leaf: AmdCert, product: SnpProduct, options: SnpVerifyOptions): void {
  const tcb = decodeTcb(r.reportedTcb, product);
  const x = leaf.amd;
  const expectStruct = product === 'Turin' ? 1 : 0;
  if (x.structVersion !== undefined && x.structVersion !== expectStruct)
    throw bindError('struct_version', `structVersion ${x.structVersion} does not fit ${product} (${expectStruct})`);
  const pairs: [string, number | undefined, number][] = [
    ['blSPL', x.blSPL, tcb.bootloader],
    ['teeSPL', x.teeSPL, tcb.tee],
    ['snpSPL', x.snpSPL, tcb.snp],
    ['ucodeSPL', x.ucodeSPL, tcb.microcode],
  ];
  if (product === 'Turin') pairs.push(['fmcSPL', x.fmcSPL, tcb.fmc!]);
  else if (x.fmcSPL !== undefined) throw bindError('tcb_mismatch', `fmcSPL is present on a ${product} certificate`);
  // The reserved TCB bytes must match too, when the certificate lists them.
  const raw = r.reportedTcb;
  const reserved: [string, number | undefined, number][] =
    product === 'Turin'
      ? [['spl_5', x.spl5, raw[4]!], ['spl_6', x.spl6, raw[5]!], ['spl_7', x.spl7, raw[6]!]]
      : [['spl_4', x.spl4, raw[2]!], ['spl_5', x.spl5, raw[3]!], ['spl_6', x.spl6, raw[4]!], ['spl_7', x.spl7, raw[5]!]];
  for (const [name, certV, repV] of pairs) {
    if (certV === undefined) throw bindError('tcb_missing', `the ${r.signingKey} has no ${name} extension`);
    if (certV !== repV) throw bindError('tcb_mismatch', `${name} ${certV} in the ${r.signingKey} != ${repV} in REPORTED_TCB (${product} layout)`);
  }
  for (const [name, certV, repV] of reserved)
    if (certV !== undefined && certV !== repV) throw bindError('tcb_mismatch', `${name} ${certV} in the ${r.signingKey} != ${repV} in REPORTED_TCB`);

  // The firmware signs with a key derived from REPORTED_TCB, which the host may only set at or below
  // the running TCB (go-sev-guest checks the same): a report claiming more is not from this firmware.
  const cur = decodeTcb(r.currentTcb, product);
  for (const k of ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const) {
    const a = tcb[k];
    const c = cur[k];
    if (a !== undefined && c !== undefined && a > c)
      throw bindError('reported_tcb_above_current', `REPORTED_TCB.${k} ${a} is above CURRENT_TCB.${k} ${c}`);
  }

  if (r.signingKey === 'VCEK') {
    if (isAllZero(r.chipId)) throw bindError('chip_id_masked', 'CHIP_ID is all zero (masked), so a VCEK cannot be bound to it');
    const hw = x.hwID;
    if (hw === undefined) throw bindError('hwid_missing', 'the VCEK has no hwID extension');
    if (product === 'Turin') {
      if (hw.length !== 8) throw bindError('hwid_length', `Turin hwID must be 8 bytes, got ${hw.length}`);
      if (!equalBytes(hw, r.chipId.subarray(0, 8)) || !isAllZero(r.chipId.subarray(8)))
        throw bindError('chip_id_mismatch', 'VCEK hwID != CHIP_ID[0..8] (or CHIP_ID[8..64] is not zero)');
    } else {
      if (hw.length !== 64) throw bindError('hwid_length', `${product} hwID must be 64 bytes, got ${hw.length}`);
      if (!equalBytes(hw, r.chipId)) throw bindError('chip_id_mismatch', 'VCEK hwID != CHIP_ID');
    }
  } else {
    const csp = x.cspID;
    if (csp === undefined) throw bindError('csp_id_missing', 'the VLEK has no cspID extension');
    if (options.allowedCspIds !== undefined && !options.allowedCspIds.includes(csp))
      throw bindError('csp_id', `VLEK cspID "${csp}" is not in the allowed list`);
  }
}
