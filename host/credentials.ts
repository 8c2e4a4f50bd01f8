/**
 * The parent instance's AWS credentials, for the enclave's KMS requests.
 *
 * An enclave has no environment of its own (`nitro-cli run-enclave` passes none), no network and so
 * no instance metadata service. The host resolves the parent's credentials with the AWS SDK's own
 * default provider chain (`fromNodeProviderChain` of `@aws-sdk/credential-providers`: environment,
 * SSO, shared files, web identity, ECS, and on EC2 the instance profile through IMDSv2; IMDS can be
 * pointed elsewhere with the SDK's documented `AWS_EC2_METADATA_SERVICE_ENDPOINT`), and `runJob`
 * hands them to an attested worker in a `credentials` message: once per job, and again before they
 * expire while a job runs. The worker signs its KMS requests with them (SigV4).
 *
 * Credentials are secrets of the parent's role: nothing here logs, writes or echoes them. Errors
 * carry the SDK's own failure text (which names providers and endpoints, never a key) or only the
 * error's name where the text could quote a response body. Short-lived credentials only by default
 * (with a session token): long-term access keys of an IAM user would outlive the enclave.
 */
import { ToolkitError } from '../attestation/errors.js';

/** AWS credentials as the SDK gives them. */
export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

/** Resolves the credentials to hand over; `forceRefresh` asks the source for new ones. */
export type CredentialProvider = (options?: { forceRefresh?: boolean }) => Promise<AwsCredentials>;

/** The wire form (enclave/protocol `credentials` message, without `t` and `id`). */
export interface CredentialsPayload {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: string;
}

export interface ParentCredentialOptions {
  /** Shared-config profile (else AWS_PROFILE, else default). */
  profile?: string;
  /** Accept credentials without a session token (an IAM user's access keys). Default false. */
  allowLongTerm?: boolean;
  /** Hand over nothing that expires sooner than this (default 120 s): a fresher set is fetched first. */
  minValidityMs?: number;
  /** IMDS / container metadata: per-request timeout (default 1000 ms, the SDK's) and retries (default 2). */
  metadataTimeoutMs?: number;
  metadataRetries?: number;
  /** The SDK's own warnings (for example IMDS outages), as one-line text; never credential values. */
  log?: (line: string) => void;
  /** Wall clock (default: now). */
  now?: () => Date;
  /**
   * An injected environment (the CLI's): AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (with
   * AWS_SESSION_TOKEN, AWS_CREDENTIAL_EXPIRATION) in it are used as given, as the chain's first link
   * would use them from process.env; otherwise the SDK's default chain runs.
   */
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_MIN_VALIDITY_MS = 120_000;

function credentialsError(reason: string, message: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_CONFIG_INVALID', message, cause === undefined ? { reason } : { reason, cause });
}

/**
 * One line about a provider failure that cannot carry a secret: the SDK's provider errors have fixed
 * texts (naming providers, endpoints, HTTP status); anything else (a JSON parse error quoting a
 * response, say) is reduced to its name.
 */
function providerFailure(e: unknown): string {
  const err = e as { name?: unknown; message?: unknown; statusCode?: unknown };
  const name = typeof err?.name === 'string' && /^[A-Za-z0-9_]{1,60}$/.test(err.name) ? err.name : 'Error';
  const sdk = name === 'CredentialsProviderError' || name === 'ProviderError' || name === 'TokenProviderError' || name === 'InstanceMetadataV1FallbackError';
  let text = sdk && typeof err.message === 'string' ? err.message.replace(/\s+/g, ' ').slice(0, 240) : name;
  if (typeof err?.statusCode === 'number') text += ` (HTTP ${err.statusCode})`;
  return text;
}

/** The real expiry: the SDK extends stale instance-metadata credentials and keeps the true one aside. */
function trueExpiration(c: AwsCredentials): Date | undefined {
  const original = (c as { originalExpiration?: unknown }).originalExpiration;
  return original instanceof Date ? original : c.expiration;
}

/** Check one set of credentials as the host may hand it over; returns a plain copy. */
export function checkHandoverCredentials(
  c: unknown,
  opts: { allowLongTerm?: boolean; minValidityMs?: number; now?: () => Date } = {},
): AwsCredentials {
  const x = c as Partial<AwsCredentials> | null | undefined;
  if (typeof x !== 'object' || x === null || typeof x.accessKeyId !== 'string' || typeof x.secretAccessKey !== 'string' || x.accessKeyId === '' || x.secretAccessKey === '')
    throw credentialsError('credentials_invalid', 'the credential source returned no access key and secret');
  if (!/^\w{16,128}$/.test(x.accessKeyId) || !/^[\x21-\x7e]{16,256}$/.test(x.secretAccessKey))
    throw credentialsError('credentials_invalid', 'the credential source returned an access key id or secret that is not in AWS\'s format');
  if (x.sessionToken !== undefined && (typeof x.sessionToken !== 'string' || !/^[\x21-\x7e]{16,16384}$/.test(x.sessionToken)))
    throw credentialsError('credentials_invalid', 'the credential source returned a session token that is not in AWS\'s format');
  const exp = trueExpiration(x as AwsCredentials);
  if (exp !== undefined && !(exp instanceof Date && Number.isFinite(exp.getTime())))
    throw credentialsError('credentials_invalid', 'the credential source returned an invalid expiry');
  // Temporary credentials come with a session token (STS, IMDS, SSO); an expiry when the source
  // says it (environment credentials only with AWS_CREDENTIAL_EXPIRATION).
  if (x.sessionToken === undefined && opts.allowLongTerm !== true)
    throw credentialsError(
      'credentials_long_term',
      'the parent\'s credentials are long-term access keys (no session token): only short-lived credentials (an instance profile role, SSO, an assumed role) are handed to the enclave; --allow-long-term-credentials accepts them',
    );
  if (exp !== undefined) {
    const now = (opts.now ?? (() => new Date()))().getTime();
    if (exp.getTime() <= now)
      throw credentialsError(
        'credentials_expired',
        `the parent's AWS credentials expired at ${exp.toISOString()} (the credential source, for example the instance metadata service, serves stale credentials): nothing was sent to the enclave`,
      );
    if (exp.getTime() - now < (opts.minValidityMs ?? DEFAULT_MIN_VALIDITY_MS))
      throw credentialsError('credentials_expiring', `the parent's AWS credentials expire at ${exp.toISOString()}, too soon to hand over`);
  }
  return {
    accessKeyId: x.accessKeyId,
    secretAccessKey: x.secretAccessKey,
    ...(x.sessionToken !== undefined ? { sessionToken: x.sessionToken } : {}),
    ...(exp !== undefined ? { expiration: new Date(exp.getTime()) } : {}),
  };
}

/** The credentials message's fields for a set of credentials. */
export function credentialsPayload(c: AwsCredentials): CredentialsPayload {
  return {
    accessKeyId: c.accessKeyId,
    secretAccessKey: c.secretAccessKey,
    ...(c.sessionToken !== undefined ? { sessionToken: c.sessionToken } : {}),
    ...(c.expiration !== undefined ? { expiration: c.expiration.toISOString() } : {}),
  };
}

/** What a log line may say about credentials: their expiry, never a key. */
export function describeCredentials(c: AwsCredentials, now: Date = new Date()): string {
  if (c.expiration === undefined) return c.sessionToken === undefined ? 'long-term credentials (no expiry)' : 'temporary credentials (expiry not given)';
  const mins = Math.max(0, Math.round((c.expiration.getTime() - now.getTime()) / 60_000));
  return `short-lived credentials valid until ${c.expiration.toISOString()} (${mins} min)`;
}

/**
 * The parent's credentials through the AWS SDK's default Node.js provider chain, checked for
 * hand-over: short-lived unless allowed, not expired (also when the SDK "extends" stale instance
 * metadata credentials), valid for at least `minValidityMs` (else refreshed once, then refused).
 */
export function parentCredentials(opts: ParentCredentialOptions = {}): CredentialProvider {
  const log = opts.log ?? (() => {});
  // The SDK logs to console unless given a logger; these go to our log as one line, first argument only.
  const line = (level: string) => (...args: unknown[]) => {
    const first = args[0];
    if (typeof first === 'string') log(`aws-sdk ${level}: ${first.replace(/\s+/g, ' ').slice(0, 300)}`);
  };
  const logger = { trace: () => {}, debug: () => {}, info: () => {}, warn: line('warning'), error: line('error') };
  let chain: Promise<(o?: { forceRefresh?: boolean }) => Promise<AwsCredentials>> | undefined;
  const load = () =>
    (chain ??= import('@aws-sdk/credential-providers').then(({ fromNodeProviderChain }) =>
      fromNodeProviderChain({
        logger,
        ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
        timeout: opts.metadataTimeoutMs ?? 1000,
        maxRetries: opts.metadataRetries ?? 2,
      }) as (o?: { forceRefresh?: boolean }) => Promise<AwsCredentials>,
    ));
  const check = (c: unknown) => checkHandoverCredentials(c, opts);
  const env = opts.env;
  if (env !== undefined && env !== process.env && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    const exp = env.AWS_CREDENTIAL_EXPIRATION;
    const fromEnv = {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
      ...(exp ? { expiration: new Date(exp) } : {}),
    };
    return async () => check(fromEnv);
  }
  return async (o) => {
    const provider = await load();
    const get = async (forceRefresh: boolean): Promise<unknown> => {
      try {
        return await provider(forceRefresh ? { forceRefresh: true } : undefined);
      } catch (e) {
        throw credentialsError('credentials_unavailable', `no AWS credentials for the parent instance: ${providerFailure(e)}`, e);
      }
    };
    try {
      return check(await get(o?.forceRefresh === true));
    } catch (e) {
      // Close to expiry (the SDK's cache hands out the old set while it refreshes): ask once more.
      if (e instanceof ToolkitError && e.reason === 'credentials_expiring') return check(await get(true));
      throw e;
    }
  };
}

/** Fixed credentials as a provider (tests, or credentials obtained some other way). */
export function staticCredentials(c: AwsCredentials, opts: { allowLongTerm?: boolean; minValidityMs?: number; now?: () => Date } = {}): CredentialProvider {
  return async () => checkHandoverCredentials(c, opts);
}
