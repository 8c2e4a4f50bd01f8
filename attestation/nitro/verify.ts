/**
 * Verify step: the chain from the document's leaf through its cabundle to a pinned root, then the
 * COSE_Sign1 ES384 signature over the original bytes, then the caller's policy. Returns a frozen
 * VerifiedNitroDocument or throws an AttestationError; never both.
 */
import type { CryptoProvider } from '../crypto/provider.js';
import { AttestationError, ToolkitError } from '../errors.js';
import { equalBytes } from '../bytes.js';
import { parseNitroDocument } from './parse.js';
import { sigStructure } from './cose.js';
import { awsNitroRootG1 } from './roots.js';
import { checkNitroPolicy, type NitroPolicy } from './policy.js';
import { BoundedChainCache, PathError, validatePath, type NitroChainCache } from '../x509/path.js';
import type { CertFacts } from '../x509/cert.js';

export type { NitroChainCache } from '../x509/path.js';
export { BoundedChainCache } from '../x509/path.js';

export interface NitroVerifyOptions {
  /** Verification time; read when verifyNitro is called (default: the current time then). */
  now?: Date;
  /** Trusted roots, DER. Default: the pinned AWS_NitroEnclaves_Root-G1. Replaces the default when given. */
  roots?: readonly Uint8Array[];
  /** Simulator roots, DER. Default none: a simulator root is never trusted unless passed here. */
  simulatorRoots?: readonly Uint8Array[];
  crypto?: CryptoProvider;
  policy?: NitroPolicy;
  /** Accept debug-mode enclaves (PCR0, PCR1, PCR2 all zero). Default false. */
  allowDebug?: boolean;
  /** Verified-certificate cache; `false` disables it. Default: a bounded cache per crypto provider. */
  cache?: NitroChainCache | false;
}

export interface NitroCertificateFacts {
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Lower-case hex without a sign byte. */
  readonly serial: string;
  readonly isCA: boolean;
  readonly pathLen: number | undefined;
}

declare const verifiedBrand: unique symbol;

export interface VerifiedNitroDocument {
  readonly [verifiedBrand]: true;
  readonly format: 'nitro';
  /** 'simulator' when the anchor was one of `simulatorRoots`. */
  readonly platform: 'nitro' | 'simulator';
  readonly moduleId: string;
  readonly timestamp: Date;
  readonly digest: 'SHA384';
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly publicKey?: Uint8Array;
  readonly userData?: Uint8Array;
  readonly nonce?: Uint8Array;
  /** The leaf (signing) certificate. */
  readonly certificate: NitroCertificateFacts;
  /** Root first, leaf last. */
  readonly chain: readonly NitroCertificateFacts[];
  /** Earliest notAfter in the chain: after this the document no longer verifies. */
  readonly validUntil: Date;
}

/** A Map whose mutators throw: Object.freeze does not stop Map#set. */
const sealed = new WeakSet<object>();
class ReadonlyPcrMap extends Map<number, Uint8Array> {
  constructor(entries: Iterable<[number, Uint8Array]>) {
    // Map's constructor calls this.set, so sealing has to wait until it returns.
    super(entries);
    sealed.add(this);
    Object.freeze(this);
  }
  override set(k: number, v: Uint8Array): this {
    if (sealed.has(this)) throw new TypeError('VerifiedNitroDocument.pcrs is read-only');
    return super.set(k, v);
  }
  override delete(): boolean {
    throw new TypeError('VerifiedNitroDocument.pcrs is read-only');
  }
  override clear(): void {
    throw new TypeError('VerifiedNitroDocument.pcrs is read-only');
  }
}

const defaultCaches = new WeakMap<CryptoProvider, NitroChainCache>();

function cacheFor(option: NitroChainCache | false | undefined, crypto: CryptoProvider): NitroChainCache | undefined {
  if (option === false) return undefined;
  if (option !== undefined) return option;
  // One default per provider: an entry means "this provider verified that signature".
  let c = defaultCaches.get(crypto);
  if (c === undefined) defaultCaches.set(crypto, (c = new BoundedChainCache(512)));
  return c;
}

function facts(c: CertFacts): NitroCertificateFacts {
  return Object.freeze({
    subject: c.subject,
    issuer: c.issuer,
    notBefore: new Date(c.notBefore.getTime()),
    notAfter: new Date(c.notAfter.getTime()),
    serial: c.serial,
    isCA: c.basicConstraints?.ca === true,
    pathLen: c.basicConstraints?.pathLen,
  });
}

const chainError = (reason: string, message: string, cause?: unknown) =>
  new AttestationError('ERR_NITRO_CHAIN_INVALID', `Nitro certificate chain: ${message}`, { reason, cause });

function checkRootList(list: unknown, label: string): readonly Uint8Array[] {
  if (!Array.isArray(list)) throw new TypeError(`"${label}" expected an array of DER Uint8Array`);
  for (const r of list) if (!(r instanceof Uint8Array)) throw new TypeError(`"${label}" expected an array of DER Uint8Array`);
  return list as Uint8Array[];
}

/** verifyNitro with the entry point's default provider (node:crypto or noble). */
export function verifyNitroWith(doc: Uint8Array, options: NitroVerifyOptions, defaultCrypto: CryptoProvider): VerifiedNitroDocument {
  const now = options.now ?? new Date();
  const nowMs = now instanceof Date ? now.getTime() : NaN;
  if (!Number.isFinite(nowMs)) throw new TypeError('"now" expected a valid Date');
  const crypto = options.crypto ?? defaultCrypto;
  const roots = options.roots === undefined ? [awsNitroRootG1()] : checkRootList(options.roots, 'roots');
  const simRoots = options.simulatorRoots === undefined ? [] : checkRootList(options.simulatorRoots, 'simulatorRoots');

  const p = parseNitroDocument(doc);

  // Trust comes from the caller's pins only: cabundle[0] must be one of them byte for byte.
  const first = p.cabundle[0]!;
  let platform: 'nitro' | 'simulator';
  if (roots.some((r) => equalBytes(r, first))) platform = 'nitro';
  else if (simRoots.some((r) => equalBytes(r, first))) platform = 'simulator';
  else throw chainError('untrusted_root', 'cabundle[0] is not a trusted root');

  let validated;
  try {
    validated = validatePath([...p.cabundle, p.certificate], nowMs, crypto, cacheFor(options.cache, crypto));
  } catch (e) {
    if (e instanceof PathError) throw chainError(e.reason, e.message, e);
    throw e;
  }
  const leaf = validated.chain[validated.chain.length - 1]!;

  let ok: boolean;
  try {
    ok = crypto.verifyEcdsaP384(leaf.spki, sigStructure(p.protectedHeader, p.payload), p.signature);
  } catch (e) {
    if (e instanceof ToolkitError) throw chainError('public_key', 'the leaf key is not ECDSA P-384', e);
    throw e;
  }
  if (!ok) throw new AttestationError('ERR_NITRO_SIGNATURE_INVALID', 'Nitro attestation document: COSE_Sign1 signature does not verify with the leaf key', { reason: 'cose_signature' });

  // Plain Uint8Array copies (Buffer#slice would be a view): the caller's buffer must not be able
  // to change a verified result.
  const copy = (b: Uint8Array | undefined) => (b === undefined ? undefined : new Uint8Array(b));
  const pcrs = new ReadonlyPcrMap([...p.pcrs].sort((a, b) => a[0] - b[0]).map(([k, v]) => [k, new Uint8Array(v)] as [number, Uint8Array]));
  const claims = {
    timestamp: new Date(p.timestamp),
    pcrs,
    publicKey: copy(p.publicKey),
    userData: copy(p.userData),
    nonce: copy(p.nonce),
  };
  checkNitroPolicy(claims, options.policy, now, options.allowDebug === true);

  const chain = Object.freeze(validated.chain.map(facts));
  const result: Record<string, unknown> = {
    format: 'nitro',
    platform,
    moduleId: p.moduleId,
    timestamp: Object.freeze(claims.timestamp),
    digest: 'SHA384',
    pcrs,
    certificate: chain[chain.length - 1]!,
    chain,
    validUntil: Object.freeze(new Date(validated.validUntil)),
  };
  if (claims.publicKey !== undefined) result.publicKey = claims.publicKey;
  if (claims.userData !== undefined) result.userData = claims.userData;
  if (claims.nonce !== undefined) result.nonce = claims.nonce;
  return Object.freeze(result) as unknown as VerifiedNitroDocument;
}
