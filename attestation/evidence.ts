/**
 * One entry point for either TEE's evidence: detect whether the bytes are a Nitro attestation
 * document (COSE_Sign1) or an SEV-SNP report, verify with the matching verifier, and return the same
 * shape of verified claims for both, plus the platform-specific result in `details`.
 */
import { AttestationError } from './errors.js';
import type { CryptoProvider } from './crypto/provider.js';
import { verifyNitroWith, type NitroVerifyOptions, type VerifiedNitroDocument } from './nitro/verify.js';
import { SNP_REPORT_SIZE } from './sevsnp/abi.js';
import { verifySevSnpWith, type SnpCerts, type SnpVerifyOptions, type VerifiedSnpReport } from './sevsnp/verify.js';

export type EvidenceFormat = 'nitro' | 'sev-snp';

/** The bytes alone (a Nitro document, or an SNP report whose certificates come in `options.snp.certs`),
 * or the bytes with their SNP certificates. */
export type EvidenceInput = Uint8Array | { evidence: Uint8Array; certs?: SnpCerts; format?: EvidenceFormat };

export interface EvidenceOptions {
  now?: Date;
  crypto?: CryptoProvider;
  /** Options for Nitro documents (roots, simulatorRoots, policy, allowDebug, cache). */
  nitro?: Omit<NitroVerifyOptions, 'now' | 'crypto'>;
  /** Options for SEV-SNP reports (roots, simulatorRoots, policy, product, crl, cache...) and certs. */
  snp?: Omit<SnpVerifyOptions, 'now' | 'crypto'> & { certs?: SnpCerts };
  /** Refuse the other format (e.g. a KMS gate that only serves Nitro enclaves). */
  expect?: EvidenceFormat;
}

export interface VerifiedEvidence {
  readonly format: EvidenceFormat;
  readonly platform: 'nitro' | 'sev-snp' | 'simulator';
  /** Nitro: PCR0..PCRn by name; SEV-SNP: MEASUREMENT. */
  readonly measurements: ReadonlyMap<string, Uint8Array>;
  /** SEV-SNP REPORT_DATA (64 bytes). */
  readonly reportData?: Uint8Array;
  /** Nitro user_data. */
  readonly userData?: Uint8Array;
  /** Nitro nonce; SEV-SNP has none of its own (bind it through REPORT_DATA). */
  readonly nonce?: Uint8Array;
  /** Nitro public_key. */
  readonly publicKey?: Uint8Array;
  readonly validUntil: Date;
  readonly details: VerifiedNitroDocument | VerifiedSnpReport;
}

function formatError(message: string, reason: string): AttestationError {
  return new AttestationError('ERR_EVIDENCE_FORMAT', message, { reason });
}

/**
 * Tell the formats apart from their first bytes: a COSE_Sign1 is a CBOR array of 4 (0x84), possibly
 * under tag 18 (0xD2); an SNP report is exactly 0x4A0 bytes starting with a little-endian version 2..5.
 */
export function detectEvidenceFormat(b: Uint8Array): EvidenceFormat {
  if (!(b instanceof Uint8Array)) throw new TypeError('"evidence" expected Uint8Array');
  if (b.length === 0) throw formatError('evidence is empty', 'empty');
  if (b[0] === 0x84 || b[0] === 0xd2) return 'nitro';
  if (b.length === SNP_REPORT_SIZE && b[0]! >= 2 && b[0]! <= 5 && b[1] === 0 && b[2] === 0 && b[3] === 0) return 'sev-snp';
  throw formatError(
    `evidence is neither a Nitro attestation document nor a ${SNP_REPORT_SIZE}-byte SEV-SNP report (${b.length} bytes)`,
    'unknown',
  );
}

const frozenMap = <K, V>(entries: Iterable<[K, V]>): ReadonlyMap<K, V> => {
  const m = new Map(entries);
  // Object.freeze does not stop Map#set; hand out a read-only view instead.
  return Object.freeze({
    get: (k: K) => m.get(k),
    has: (k: K) => m.has(k),
    get size() {
      return m.size;
    },
    forEach: (cb: (v: V, k: K, map: ReadonlyMap<K, V>) => void) => m.forEach((v, k) => cb(v, k, m)),
    entries: () => m.entries(),
    keys: () => m.keys(),
    values: () => m.values(),
    [Symbol.iterator]: () => m[Symbol.iterator](),
  }) as ReadonlyMap<K, V>;
};

export function verifyEvidenceWith(input: EvidenceInput, options: EvidenceOptions, defaultCrypto: CryptoProvider): VerifiedEvidence {
  const bytes = input instanceof Uint8Array ? input : input?.evidence;
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"input" expected Uint8Array or { evidence: Uint8Array }');
  const format = (input instanceof Uint8Array ? undefined : input.format) ?? detectEvidenceFormat(bytes);
  if (options.expect !== undefined && options.expect !== format)
    throw formatError(`expected ${options.expect} evidence, got ${format}`, 'unexpected_format');
  const common = { ...(options.now ? { now: options.now } : {}), crypto: options.crypto ?? defaultCrypto };

  if (format === 'nitro') {
    const d = verifyNitroWith(bytes, { ...options.nitro, ...common }, defaultCrypto);
    return Object.freeze({
      format,
      platform: d.platform,
      measurements: frozenMap([...d.pcrs].map(([i, v]) => [`PCR${i}`, v.slice()] as [string, Uint8Array])),
      ...(d.userData ? { userData: d.userData.slice() } : {}),
      ...(d.nonce ? { nonce: d.nonce.slice() } : {}),
      ...(d.publicKey ? { publicKey: d.publicKey.slice() } : {}),
      validUntil: d.validUntil,
      details: d,
    });
  }
  const { certs: optCerts, ...snpOpts } = options.snp ?? {};
  const certs = (input instanceof Uint8Array ? undefined : input.certs) ?? optCerts ?? {};
  const r = verifySevSnpWith(bytes, certs, { ...snpOpts, ...common }, defaultCrypto);
  return Object.freeze({
    format,
    platform: r.platform,
    measurements: frozenMap([['MEASUREMENT', r.measurement.slice()] as [string, Uint8Array]]),
    reportData: r.reportData.slice(),
    validUntil: r.validUntil,
    details: r,
  });
}
