/**
 * One error base for the whole toolkit, one subclass per failure kind, each with a stable `code`.
 * Codes are API: tests and callers switch on `code`, never on message text.
 *
 * This module lives in `attestation/` because that folder imports nothing of ours; `enclave/` and
 * `host/` import it from here. `native/` keeps its own small error type (it may import nothing of ours)
 * with the same `code` convention.
 */

export type ToolkitErrorCode =
  // evidence: Nitro
  | 'ERR_NITRO_DOC_INVALID'
  | 'ERR_NITRO_SIGNATURE_INVALID'
  | 'ERR_NITRO_CHAIN_INVALID'
  // evidence: SEV-SNP
  | 'ERR_SNP_REPORT_INVALID'
  | 'ERR_SNP_SIGNATURE_INVALID'
  | 'ERR_SNP_CHAIN_INVALID'
  | 'ERR_SNP_BINDING_INVALID'
  | 'ERR_SNP_CERT_TABLE_INVALID'
  | 'ERR_SNP_VCEK_FETCH'
  // reference values: EIF images and ramdisks, SEV-SNP launch digests
  | 'ERR_EIF_INVALID'
  | 'ERR_EIF_CRC'
  | 'ERR_EIF_SIGNATURE_INVALID'
  | 'ERR_IMAGE_INVALID'
  | 'ERR_SNP_MEASURE'
  // evidence: both
  | 'ERR_EVIDENCE_FORMAT'
  | 'ERR_CERT_INVALID'
  | 'ERR_ATTESTATION_POLICY'
  | 'ERR_POLICY_INVALID'
  | 'ERR_INPUT_ENCODING'
  // keys, KMS, fields
  | 'ERR_KMS_RECIPIENT'
  | 'ERR_KMS_REQUEST'
  | 'ERR_KMS_UNREACHABLE'
  | 'ERR_CMS_INVALID'
  | 'ERR_FIELD_FORMAT'
  | 'ERR_FIELD_DECRYPT'
  | 'ERR_MANIFEST_INVALID'
  // pipeline
  | 'ERR_PROTOCOL'
  | 'ERR_FRAME_TOO_LARGE'
  | 'ERR_QUERY_INVALID'
  | 'ERR_QUERY_REFUSED'
  | 'ERR_JOB_REFUSED'
  | 'ERR_SEAL_INVALID'
  | 'ERR_PRIVACY_BUDGET'
  | 'ERR_JOB_FAILED'
  | 'ERR_RESULT_INVALID'
  | 'ERR_AUDIT_INVALID'
  | 'ERR_DATASET_INVALID'
  | 'ERR_CONFIG_INVALID'
  | 'ERR_PLATFORM_UNAVAILABLE'
  | 'ERR_NSM'
  | 'ERR_SIMULATOR_STATE';

export interface ToolkitErrorOptions {
  cause?: unknown;
  /** A short machine-readable sub-reason, e.g. `pcr_index`; stable like `code`. */
  reason?: string;
}

export class ToolkitError extends Error {
  readonly code: ToolkitErrorCode;
  readonly reason: string | undefined;

  constructor(code: ToolkitErrorCode, message: string, options: ToolkitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.reason = options.reason;
  }
}

/** Evidence (a Nitro document, an SNP report, a certificate) is malformed, unsigned or untrusted. */
export class AttestationError extends ToolkitError {}

export interface PolicyViolation {
  /** The spec name of the field: `PCR0`, `MEASUREMENT`, `REPORT_DATA`, `nonce`, `timestamp`... */
  field: string;
  expected: string;
  actual: string;
}

/** Evidence verified, but its claims break the caller's policy. Every violation is listed. */
export class AttestationPolicyError extends AttestationError {
  readonly violations: readonly PolicyViolation[];

  constructor(violations: readonly PolicyViolation[], message?: string) {
    super(
      'ERR_ATTESTATION_POLICY',
      message ??
        `attestation policy violated: ${violations.map((v) => `${v.field} expected ${v.expected}, got ${v.actual}`).join('; ')}`,
      { reason: 'policy' },
    );
    this.violations = Object.freeze(violations.map((v) => Object.freeze({ ...v })));
  }
}

export function isToolkitError(e: unknown): e is ToolkitError {
  return e instanceof ToolkitError;
}

/**
 * Run `fn`, turning any foreign throw (a library's TypeError, RangeError, ...) into our error.
 * Used around every call that touches untrusted bytes through a third-party decoder.
 */
export function wrapForeign<T>(
  fn: () => T,
  make: (cause: unknown) => ToolkitError,
): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ToolkitError) throw e;
    throw make(e);
  }
}
