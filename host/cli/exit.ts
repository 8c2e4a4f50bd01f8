/**
 * Exit status of every `enclavekit` command, decided in one place (README, "Exit status"):
 *
 *   0  success: the evidence is valid, the job's result verified, the query is allowed, ...
 *   1  a security verdict: invalid evidence, a policy violation, a key denied, a query or job refused
 *   2  usage or input: bad flags, an unreadable or malformed file, an invalid query
 *   3  infrastructure: the worker or KMS unreachable or failing, a timeout
 *
 * `exitCodeOf` maps a thrown error (UsageError, ToolkitError, a Node errno error) or a job's
 * `{ code, reason, stage }` (RunOutcome's `error`) to that status. Anything it does not know is 3:
 * something failed that was not a verdict and not the caller's input.
 */
import { isToolkitError, type ToolkitErrorCode } from '../../attestation/errors.js';

export const EXIT_OK = 0;
/** A security verdict. */
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 2;
export const EXIT_INFRA = 3;

export type ExitCode = typeof EXIT_OK | typeof EXIT_INVALID | typeof EXIT_USAGE | typeof EXIT_INFRA;

/** Each ToolkitError code's status; ERR_KMS_REQUEST and ERR_JOB_FAILED also look at `reason`. */
export const EXIT_BY_CODE: Readonly<Record<ToolkitErrorCode, ExitCode>> = {
  // Evidence that does not verify, or verifies and breaks the expected measurements: a verdict.
  ERR_NITRO_DOC_INVALID: EXIT_INVALID,
  ERR_NITRO_SIGNATURE_INVALID: EXIT_INVALID,
  ERR_NITRO_CHAIN_INVALID: EXIT_INVALID,
  ERR_SNP_REPORT_INVALID: EXIT_INVALID,
  ERR_SNP_SIGNATURE_INVALID: EXIT_INVALID,
  ERR_SNP_CHAIN_INVALID: EXIT_INVALID,
  ERR_SNP_BINDING_INVALID: EXIT_INVALID,
  ERR_SNP_CERT_TABLE_INVALID: EXIT_INVALID,
  ERR_EVIDENCE_FORMAT: EXIT_INVALID,
  ERR_CERT_INVALID: EXIT_INVALID,
  ERR_ATTESTATION_POLICY: EXIT_INVALID,
  ERR_SNP_VCEK_FETCH: EXIT_INFRA,
  // Reference values (issue #12): a CRC or signature that does not check is a verdict; a file that is
  // not an EIF, an image that cannot be read, or launch inputs that cannot be measured are input.
  ERR_EIF_CRC: EXIT_INVALID,
  ERR_EIF_SIGNATURE_INVALID: EXIT_INVALID,
  ERR_EIF_INVALID: EXIT_USAGE,
  ERR_IMAGE_INVALID: EXIT_USAGE,
  ERR_SNP_MEASURE: EXIT_USAGE,
  // A malformed policy file or input encoding is the caller's input.
  ERR_POLICY_INVALID: EXIT_USAGE,
  ERR_INPUT_ENCODING: EXIT_USAGE,
  // Keys: a Recipient answer that is wrong, a CMS envelope or field that does not open: a verdict.
  ERR_KMS_RECIPIENT: EXIT_INVALID,
  ERR_KMS_REQUEST: EXIT_INFRA, // refined by reason below
  ERR_KMS_UNREACHABLE: EXIT_INFRA,
  ERR_CMS_INVALID: EXIT_INVALID,
  ERR_FIELD_FORMAT: EXIT_INVALID,
  ERR_FIELD_DECRYPT: EXIT_INVALID,
  ERR_MANIFEST_INVALID: EXIT_USAGE,
  // Pipeline: a worker that breaks the protocol or a result that does not verify is not to be trusted.
  ERR_PROTOCOL: EXIT_INVALID,
  ERR_FRAME_TOO_LARGE: EXIT_INVALID,
  ERR_QUERY_INVALID: EXIT_USAGE,
  ERR_QUERY_REFUSED: EXIT_INVALID,
  ERR_JOB_REFUSED: EXIT_INVALID,
  ERR_SEAL_INVALID: EXIT_INVALID,
  ERR_PRIVACY_BUDGET: EXIT_INVALID,
  ERR_JOB_FAILED: EXIT_INFRA, // refined by reason below
  ERR_RESULT_INVALID: EXIT_INVALID,
  ERR_AUDIT_INVALID: EXIT_INVALID,
  ERR_DATASET_INVALID: EXIT_USAGE,
  ERR_CONFIG_INVALID: EXIT_USAGE,
  ERR_SIMULATOR_STATE: EXIT_USAGE,
  ERR_PLATFORM_UNAVAILABLE: EXIT_INFRA,
  ERR_NSM: EXIT_INFRA,
};

/**
 * AWS KMS error names (ERR_KMS_REQUEST's `reason`) that are a verdict on the caller: the key policy,
 * the key's state or the credentials say no, or the ciphertext is not the key's. Everything else
 * (ThrottlingException, KMSInternalException, DependencyTimeoutException, a 5xx, `timeout`, a
 * malformed answer) is KMS failing: 3. A key or alias that does not exist is an input error: 2.
 */
const KMS_DENIED = new Set([
  'AccessDeniedException',
  'DisabledException',
  'KMSInvalidStateException',
  'IncorrectKeyException',
  'InvalidCiphertextException',
  'InvalidGrantTokenException',
  'KeyUnavailableException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'IncompleteSignatureException',
  'MissingAuthenticationTokenException',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
]);
const KMS_INPUT = new Set([
  'NotFoundException',
  'ValidationException',
  'InvalidKeyUsageException',
  'InvalidArnException',
  'UnsupportedOperationException',
  // The SDK found no credentials to sign with: configuration, not a verdict.
  'CredentialsProviderError',
]);

/** Node's network errnos: the other end is not there (3). */
const NET_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED']);

export interface ErrorLike {
  code?: unknown;
  reason?: unknown;
  stage?: unknown;
  name?: unknown;
  syscall?: unknown;
}

/** The exit status for one error (thrown, or a RunOutcome's `error`). */
export function exitCodeOf(e: unknown): ExitCode {
  if (e === null || typeof e !== 'object') return EXIT_INFRA;
  const err = e as ErrorLike;
  if (err.name === 'UsageError') return EXIT_USAGE;
  const code = typeof err.code === 'string' ? err.code : undefined;
  const reason = typeof err.reason === 'string' ? err.reason : undefined;
  if (code !== undefined && Object.hasOwn(EXIT_BY_CODE, code)) {
    if (code === 'ERR_KMS_REQUEST' && reason !== undefined) {
      if (KMS_DENIED.has(reason)) return EXIT_INVALID;
      if (KMS_INPUT.has(reason)) return EXIT_USAGE;
      return EXIT_INFRA;
    }
    // The worker's own `error` frame carries its code as the reason: judge by that code.
    if (code === 'ERR_JOB_FAILED' && reason !== undefined && reason !== code && Object.hasOwn(EXIT_BY_CODE, reason))
      return exitCodeOf({ code: reason });
    return EXIT_BY_CODE[code as ToolkitErrorCode];
  }
  if (isToolkitError(e)) return EXIT_INFRA;
  if (code !== undefined && NET_ERRNO.has(code)) return EXIT_INFRA;
  // Any other errno on a file (ENOENT, EACCES, EISDIR, ...) is about the caller's input.
  if (code !== undefined && /^E[A-Z]+$/.test(code) && typeof err.syscall === 'string') return EXIT_USAGE;
  return EXIT_INFRA;
}

/** What the README's exit-status table lists, by status (for the docs test). */
export function codesWithExit(status: ExitCode): ToolkitErrorCode[] {
  return (Object.keys(EXIT_BY_CODE) as ToolkitErrorCode[]).filter((c) => EXIT_BY_CODE[c] === status);
}

export const KMS_DENIED_REASONS: ReadonlySet<string> = KMS_DENIED;
export const KMS_INPUT_REASONS: ReadonlySet<string> = KMS_INPUT;
