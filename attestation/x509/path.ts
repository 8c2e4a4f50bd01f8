/**
 * Path validation for AWS-Nitro-shaped chains: leaf <- intermediates <- one pinned anchor, exact order,
 * every rule checked on every call (RFC 5280 §6.1, reduced to what these chains use):
 * validity at `now` with inclusive bounds, basicConstraints cA and pathLenConstraint, keyUsage
 * keyCertSign on CAs and digitalSignature on the leaf (which must not be a CA), issuer/subject byte
 * equality, ecdsa-with-SHA384 over P-384 only, no unknown critical extension. No revocation: AWS
 * publishes no usable CRL for these ("it must be disabled when doing the validation").
 *
 * The cache holds parsed certificates whose signature was verified under a given (anchor, issuer);
 * rule checks are cheap and re-run on every call, so a cache hit skips only parsing and the signature.
 */
import type { CryptoProvider } from '../crypto/provider.js';
import { ToolkitError } from '../errors.js';
import { CertParseError, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, OID_ECDSA_SHA384, parseCertificate, type CertFacts } from './cert.js';
import { derEcdsaToP1363 } from './der.js';

export class PathError extends Error {
  override name = 'PathError';
  constructor(
    readonly reason: string,
    message: string,
    readonly depth: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface ChainCacheEntry {
  readonly facts: CertFacts;
  /** Earliest notAfter (ms) on the path from the anchor to this certificate: when to forget it. */
  readonly expires: number;
}

/** Storage for verified certificates. Keys are opaque strings built from the exact DER bytes. */
export interface NitroChainCache {
  get(key: string, now: number): ChainCacheEntry | undefined;
  set(key: string, entry: ChainCacheEntry): void;
  clear(): void;
  readonly size: number;
}

/** Bounded LRU (insertion-ordered Map); entries past their path's earliest notAfter are dropped on read. */
export class BoundedChainCache implements NitroChainCache {
  readonly #map = new Map<string, ChainCacheEntry>();
  constructor(readonly maxEntries = 512) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new RangeError('"maxEntries" expected a positive integer');
  }
  get(key: string, now: number): ChainCacheEntry | undefined {
    const e = this.#map.get(key);
    if (e === undefined) return undefined;
    this.#map.delete(key);
    if (now > e.expires) return undefined;
    this.#map.set(key, e);
    return e;
  }
  set(key: string, entry: ChainCacheEntry): void {
    this.#map.delete(key);
    while (this.#map.size >= this.maxEntries) this.#map.delete(this.#map.keys().next().value!);
    this.#map.set(key, entry);
  }
  clear(): void {
    this.#map.clear();
  }
  get size(): number {
    return this.#map.size;
  }
}

const latin1 = new TextDecoder('latin1');
/** An exact, injective string form of bytes: a Map key with no hashing (and no collision risk). */
const keyOf = (b: Uint8Array): string => latin1.decode(b);

/** Verify a DER-encoded certificate ECDSA signature through the provider (strict DER -> P1363). */
export function verifyEcdsaP384Der(crypto: CryptoProvider, spki: Uint8Array, message: Uint8Array, derSig: Uint8Array): boolean {
  const raw = derEcdsaToP1363(derSig, 48);
  if (raw === undefined) return false;
  return crypto.verifyEcdsaP384(spki, message, raw);
}

function parse(der: Uint8Array, depth: number): CertFacts {
  try {
    return parseCertificate(der);
  } catch (e) {
    if (e instanceof CertParseError) throw new PathError('cert_parse', `certificate ${depth}: ${e.message}`, depth, { cause: e });
    throw e;
  }
}

function checkSignature(crypto: CryptoProvider, child: CertFacts, issuer: CertFacts, depth: number): void {
  if (child.signatureAlgorithm !== OID_ECDSA_SHA384 || child.signatureParams)
    throw new PathError('signature_algorithm', `certificate ${depth} is not signed with ecdsa-with-SHA384`, depth);
  let ok: boolean;
  try {
    ok = child.signature !== undefined && verifyEcdsaP384Der(crypto, issuer.spki, child.tbs, child.signature);
  } catch (e) {
    if (e instanceof ToolkitError) throw new PathError('public_key', `certificate ${depth - 1}: ${e.message}`, depth - 1, { cause: e });
    throw e;
  }
  if (!ok) throw new PathError('cert_signature', `certificate ${depth} signature does not verify with its issuer's key`, depth);
}

// SubjectPublicKeyInfo header for an uncompressed P-384 key: SEQUENCE(118) { id-ecPublicKey, secp384r1 }, BIT STRING(98) 00 04.
const P384_SPKI_PREFIX = Uint8Array.of(
  0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00, 0x04,
);

function isP384Spki(spki: Uint8Array): boolean {
  return spki.length === 120 && P384_SPKI_PREFIX.every((x, i) => spki[i] === x);
}

/** Rules that depend only on the certificate, its role and `now`; run on every call. */
function checkRules(c: CertFacts, depth: number, role: 'ca' | 'leaf', following: number, now: number): void {
  if (!isP384Spki(c.spki)) throw new PathError('public_key', `certificate ${depth} key is not ECDSA P-384`, depth);
  if (now < c.notBefore.getTime()) throw new PathError('not_yet_valid', `certificate ${depth} is not valid before ${c.notBefore.toISOString()}`, depth);
  if (now > c.notAfter.getTime()) throw new PathError('expired', `certificate ${depth} expired at ${c.notAfter.toISOString()}`, depth);
  if (c.unknownCritical.length > 0) throw new PathError('critical_extension', `certificate ${depth} has an unknown critical extension ${c.unknownCritical[0]}`, depth);
  if (role === 'ca') {
    if (c.basicConstraints?.ca !== true) throw new PathError('basic_constraints', `certificate ${depth} is used as a CA but basicConstraints cA is not set`, depth);
    if (c.keyUsage === undefined || !(c.keyUsage & KU_KEY_CERT_SIGN)) throw new PathError('key_usage', `CA certificate ${depth} lacks keyUsage keyCertSign`, depth);
    const pl = c.basicConstraints.pathLen;
    if (pl !== undefined && following > pl) throw new PathError('path_len', `certificate ${depth} allows ${pl} intermediates below it, the path has ${following}`, depth);
  } else {
    if (c.basicConstraints?.ca === true) throw new PathError('leaf_is_ca', `leaf certificate is a CA`, depth);
    if (c.keyUsage === undefined || !(c.keyUsage & KU_DIGITAL_SIGNATURE)) throw new PathError('key_usage', `leaf certificate lacks keyUsage digitalSignature`, depth);
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface ValidatedPath {
  /** Anchor first, leaf last. */
  readonly chain: readonly CertFacts[];
  /** Earliest notAfter on the path (ms). */
  readonly validUntil: number;
}

/**
 * Validate `path` = [anchor, ...intermediates, leaf], where `path[0]` was already matched byte-for-byte
 * against a trusted root by the caller.
 */
export function validatePath(path: readonly Uint8Array[], now: number, crypto: CryptoProvider, cache: NitroChainCache | undefined): ValidatedPath {
  if (path.length < 2) throw new PathError('chain_length', 'the path needs an anchor and a leaf', 0);
  const anchorKey = keyOf(path[0]!);
  const chain: CertFacts[] = [];
  let expires = Infinity;
  let prevKey = '';
  for (let i = 0; i < path.length; i++) {
    const der = path[i]!;
    const certKey = i === 0 ? anchorKey : keyOf(der);
    const cacheKey = i === 0 ? `A\u0000${anchorKey}` : `C\u0000${anchorKey}\u0000${prevKey}\u0000${certKey}`;
    const hit = cache?.get(cacheKey, now);
    let facts: CertFacts;
    if (hit !== undefined) facts = hit.facts;
    else {
      facts = parse(der, i);
      if (i > 0) {
        const issuer = chain[i - 1]!;
        // Names first: a mismatch says more than a failed signature.
        if (!equal(facts.issuerDer, issuer.subjectDer)) throw new PathError('name_chaining', `certificate ${i} issuer does not match certificate ${i - 1} subject`, i);
        checkSignature(crypto, facts, issuer, i);
      }
    }
    const role = i === path.length - 1 ? 'leaf' : 'ca';
    checkRules(facts, i, role, path.length - 2 - i, now);
    if (i > 0 && !equal(facts.issuerDer, chain[i - 1]!.subjectDer))
      throw new PathError('name_chaining', `certificate ${i} issuer does not match certificate ${i - 1} subject`, i);
    expires = Math.min(expires, facts.notAfter.getTime());
    if (hit === undefined && cache !== undefined) cache.set(cacheKey, { facts, expires });
    chain.push(facts);
    prevKey = certKey;
  }
  return { chain, validUntil: expires };
}
