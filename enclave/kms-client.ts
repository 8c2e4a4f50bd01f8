/**
 * The enclave's KMS client: Decrypt with a Recipient through the real `@aws-sdk/client-kms`.
 *
 * The SDK's NodeHttpHandler is given agents whose `createConnection` does not dial TCP: it asks the
 * caller's `connect()` for a byte stream (a vsock or Unix stream to the host's KMS proxy, or TCP in
 * tests) and, for an https endpoint, runs TLS over that stream itself, with SNI and certificate
 * checks for the KMS hostname. The host's proxy only ever sees ciphertext.
 *
 * Every Decrypt carries `Recipient: { RSAES_OAEP_SHA_256, AttestationDocument }`, the document
 * being fresh (new nonce) and binding the worker's RSA public key. KMS answers with
 * `CiphertextForRecipient`, which is opened here with the worker's private key. A response that
 * carries `Plaintext` despite the Recipient is refused: it means something between us and KMS (or a
 * misconfigured endpoint) saw the data key.
 *
 * Credentials: an enclave has no environment of its own (`nitro-cli run-enclave` passes none) and no
 * route to the instance metadata service, so the host hands in the parent role's short-lived
 * credentials in a `credentials` message (enclave/server.ts) and each call gets them: `credentials`
 * per call (`loadKeys(refs, { credentials })`) or for the client, as a value or a provider function
 * read at each call. There is no implicit fallback to the SDK's default chain. Before anything is
 * sent, missing credentials fail with `ERR_KMS_REQUEST` / `no_credentials` and expired ones with
 * `ERR_KMS_REQUEST` / `credentials_expired`. The SDK signs each request with them (SigV4); every call
 * uses a client of its own, so one session's credentials never sign another's request.
 * Tests against a fake KMS that checks no signature may set `simulatorPlaceholderCredentials` (with
 * a plain-http endpoint and `allowPlainHttp` only): fixed placeholder credentials then sign a call
 * that has none. The worker never sets it: the KMS simulator checks SigV4 like AWS.
 *
 * Plain http is refused unless `allowPlainHttp` is set, and that option is refused on a platform whose
 * kind is known and is not `simulator`: the host carries the KMS traffic, so over plain http it can
 * play KMS and wrap a data key of its choosing to the enclave's public key (which is in every
 * attestation document). Every answer must also name, as `KeyId`, exactly the key ARN the reference
 * names (when it names one): a genuine KMS answer for another key (the host's own, say) is refused.
 *
 * Nothing here logs. Errors name the key reference and KMS's error name, never key bytes.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import tls from 'node:tls';
import { ToolkitError } from '../attestation/errors.js';
import { openCiphertextForRecipient } from './cms.js';
import { DataKeyCache, type RecipientKeyPair } from './keys.js';
import type { Platform } from './platform/types.js';
import type { KeyManifest } from './protocol/manifest.js';
import { kmsEndpointUrl } from './protocol/kms-endpoint.js';

type KmsModule = typeof import('@aws-sdk/client-kms');
let kmsModule: Promise<KmsModule> | undefined;
function loadKms(): Promise<KmsModule> {
  // Set when the SDK is first needed (not at import): its Node-version notice is not ours to print
  // inside a worker whose stderr leaves the enclave.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return (kmsModule ??= import('@aws-sdk/client-kms'));
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 20_000;
const MAX_CIPHERTEXT_BLOB = 6144;

export interface KmsKeyReference {
  /** The manifest's key reference (named in errors). */
  ref: string;
  /** KMS `CiphertextBlob` of the data key. */
  ciphertextBlob: Uint8Array;
  /** Key id or ARN; optional for symmetric keys (KMS reads it from the blob). */
  keyId?: string;
  encryptionContext?: Record<string, string>;
}

/** AWS credentials as the SDK takes them; `expiration` is checked before any request. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

/** Credentials as a value, or a function read at each call (undefined: none yet). */
export type CredentialSource = AwsCredentials | (() => AwsCredentials | undefined | Promise<AwsCredentials | undefined>);

/** Fixed placeholder credentials for a KMS simulator that checks no signature. */
export const SIMULATOR_PLACEHOLDER_CREDENTIALS: Readonly<AwsCredentials> = Object.freeze({
  accessKeyId: 'enclavekit-simulator',
  secretAccessKey: 'enclavekit-simulator',
});

/** Credentials expiring within this margin are treated as expired (a request takes time to arrive). */
export const CREDENTIALS_EXPIRY_MARGIN_MS = 10_000;

export interface KmsCallOptions {
  /** Credentials for this call (a session's, handed in by the host); else the client's. */
  credentials?: CredentialSource;
}

export interface EnclaveKmsOptions {
  /** `kind`, when present, gates `allowPlainHttp` (only `simulator` may use it). */
  platform: Pick<Platform, 'attest'> & Partial<Pick<Platform, 'kind'>>;
  keyPair: RecipientKeyPair;
  region: string;
  /** `https://kms.<region>.amazonaws.com` by default; `http://127.0.0.1:PORT` for the simulator. */
  endpoint?: string;
  /**
   * Accept an `http:` endpoint (the loopback KMS simulator). Default false: an `http:` endpoint is then
   * refused (ERR_CONFIG_INVALID / insecure_endpoint). Refused as well when `platform.kind` is given
   * and is not `simulator`.
   */
  allowPlainHttp?: boolean;
  /** A fresh byte stream to the KMS endpoint (through the host's proxy). Called once per connection. */
  connect: () => Promise<Duplex>;
  /** TLS settings for https endpoints: extra CA (tests, private KMS), SNI override. */
  tls?: { ca?: string | Buffer | (string | Buffer)[]; servername?: string };
  /** Credentials for every call that brings none of its own: a value, or a provider read at each call. */
  credentials?: CredentialSource;
  /**
   * With an `http:` endpoint and `allowPlainHttp` only: sign with fixed placeholder credentials when a
   * call has none, for a fake KMS that checks no SigV4. Default false: no credentials, no request.
   */
  simulatorPlaceholderCredentials?: boolean;
  /** Use the FIPS endpoint `https://kms-fips.REGION...` when no `endpoint` is given. */
  fips?: boolean;
  /** Wall clock for the credentials' expiry check and the SigV4 signing time (default: now). */
  clock?: () => Date;
  connectTimeoutMs?: number;
  /** Bound on one whole Decrypt call (all SDK retries included). */
  requestTimeoutMs?: number;
  /** SDK attempts per call (default 3; the time bound above still holds). */
  maxAttempts?: number;
  /** Length every data key must have (default 32, AES-256). */
  dataKeyLength?: number;
  randomBytes?: (n: number) => Uint8Array;
}

/** Marks failures of our own connection path, so they are told apart from KMS's answers. */
class ConnectFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function kmsError(code: 'ERR_KMS_UNREACHABLE' | 'ERR_KMS_REQUEST' | 'ERR_KMS_RECIPIENT', message: string, reason: string, cause?: unknown): ToolkitError {
  return new ToolkitError(code, message, cause === undefined ? { reason } : { reason, cause });
}

/** A plain Duplex (e.g. from the native addon) lacks net.Socket's tuning calls that http uses. */
function socketShims(s: Duplex): Duplex {
  const o = s as Duplex & Record<string, unknown>;
  for (const m of ['setTimeout', 'setNoDelay', 'setKeepAlive', 'ref', 'unref']) {
    if (typeof o[m] !== 'function') o[m] = function (this: Duplex) { return this; };
  }
  return s;
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error, cleanup?: (v: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const t = setTimeout(() => {
      done = true;
      reject(onTimeout());
    }, ms);
    p.then(
      (v) => {
        clearTimeout(t);
        if (done) cleanup?.(v);
        else resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        if (!done) reject(e);
      },
    );
  });
}

const ignore = (): void => undefined;

type ConnCallback = (err: Error | null, socket?: Duplex) => void;

interface DialOptions {
  connect: () => Promise<Duplex>;
  timeoutMs: number;
  tls?: { ca?: string | Buffer | (string | Buffer)[]; servername?: string } | undefined;
}

async function dial(o: DialOptions, secure: boolean, host: string | undefined): Promise<Duplex> {
  const raw = await withTimeout(
    o.connect().catch((e: unknown) => {
      throw new ConnectFailure('connect', 'could not open a stream to KMS', { cause: e });
    }),
    o.timeoutMs,
    () => new ConnectFailure('connect_timeout', `no stream to KMS within ${o.timeoutMs} ms`),
    (late) => late.destroy(),
  );
  // Between this stream's hand-over and the HTTP client attaching its own listener an 'error' would
  // be unhandled and kill the worker; the HTTP client still receives every error through its own.
  raw.on('error', ignore);
  if (!secure) return socketShims(raw);
  const servername = o.tls?.servername ?? host;
  const tlsOpts: tls.ConnectionOptions = { socket: raw, rejectUnauthorized: true, ALPNProtocols: ['http/1.1'] };
  if (servername !== undefined && servername.length > 0) tlsOpts.servername = servername;
  if (o.tls?.ca !== undefined) tlsOpts.ca = o.tls.ca;
  const sock = tls.connect(tlsOpts);
  sock.on('error', ignore);
  return withTimeout(
    new Promise<Duplex>((resolve, reject) => {
      sock.once('secureConnect', () => resolve(sock));
      sock.once('error', (e) => reject(new ConnectFailure('tls', 'TLS handshake with KMS failed', { cause: e })));
    }),
    o.timeoutMs,
    () => {
      sock.destroy();
      return new ConnectFailure('connect_timeout', `TLS handshake with KMS did not finish within ${o.timeoutMs} ms`);
    },
  );
}

function makeAgents(o: DialOptions): { httpAgent: http.Agent; httpsAgent: https.Agent } {
  const create = (secure: boolean) =>
    function (this: unknown, options: { host?: string; servername?: string }, cb: ConnCallback): undefined {
      // Asynchronous creation: Node's Agent accepts a callback and no return value.
      dial(o, secure, options.servername ?? options.host).then(
        (s) => cb(null, s),
        (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))),
      );
      return undefined;
    };
  class StreamHttpAgent extends http.Agent {}
  class StreamHttpsAgent extends https.Agent {}
  (StreamHttpAgent.prototype as unknown as { createConnection: unknown }).createConnection = create(false);
  (StreamHttpsAgent.prototype as unknown as { createConnection: unknown }).createConnection = create(true);
  // One stream per request: a vsock stream is cheap and a pooled one could outlive a job.
  return { httpAgent: new StreamHttpAgent({ keepAlive: false }), httpsAgent: new StreamHttpsAgent({ keepAlive: false }) };
}

function findConnectFailure(e: unknown): ConnectFailure | undefined {
  for (let c: unknown = e, i = 0; c !== undefined && c !== null && i < 5; i++) {
    if (c instanceof ConnectFailure) return c;
    c = (c as { cause?: unknown }).cause;
  }
  return undefined;
}

function errorName(e: unknown): string {
  const n = (e as { name?: unknown })?.name;
  return typeof n === 'string' && /^[A-Za-z0-9_.:#-]{1,100}$/.test(n) ? n : 'Error';
}

function checkRef(r: unknown): KmsKeyReference {
  const k = r as KmsKeyReference;
  if (typeof k !== 'object' || k === null || typeof k.ref !== 'string' || k.ref.length === 0)
    throw new TypeError('key reference expected { ref: non-empty string, ciphertextBlob: Uint8Array }');
  if (!(k.ciphertextBlob instanceof Uint8Array) || k.ciphertextBlob.length === 0 || k.ciphertextBlob.length > MAX_CIPHERTEXT_BLOB)
    throw new RangeError(`key reference "${k.ref}": ciphertextBlob expected 1..${MAX_CIPHERTEXT_BLOB} bytes`);
  if (k.keyId !== undefined && typeof k.keyId !== 'string') throw new TypeError(`key reference "${k.ref}": keyId expected a string`);
  if (k.encryptionContext !== undefined) {
    if (typeof k.encryptionContext !== 'object' || k.encryptionContext === null)
      throw new TypeError(`key reference "${k.ref}": encryptionContext expected a string map`);
    for (const v of Object.values(k.encryptionContext))
      if (typeof v !== 'string') throw new TypeError(`key reference "${k.ref}": encryptionContext values expected strings`);
  }
  return k;
}

/** Shape check of credentials from a caller (TypeError: misuse). Never echoes a value. */
function checkCredentials(c: unknown): asserts c is AwsCredentials {
  const x = c as Partial<AwsCredentials> | null;
  if (typeof x !== 'object' || x === null) throw new TypeError('credentials expected { accessKeyId, secretAccessKey, sessionToken?, expiration? }');
  if (typeof x.accessKeyId !== 'string' || x.accessKeyId.length === 0) throw new TypeError('credentials.accessKeyId expected a non-empty string');
  if (typeof x.secretAccessKey !== 'string' || x.secretAccessKey.length === 0) throw new TypeError('credentials.secretAccessKey expected a non-empty string');
  if (x.sessionToken !== undefined && (typeof x.sessionToken !== 'string' || x.sessionToken.length === 0))
    throw new TypeError('credentials.sessionToken expected a non-empty string');
  if (x.expiration !== undefined && !(x.expiration instanceof Date && Number.isFinite(x.expiration.getTime())))
    throw new TypeError('credentials.expiration expected a valid Date');
}

/** The key references of a validated manifest (base64 blobs decoded), in manifest order. */
export function keyReferencesFromManifest(manifest: KeyManifest): KmsKeyReference[] {
  return Object.entries(manifest.keys).map(([ref, k]) => ({
    ref,
    ciphertextBlob: new Uint8Array(Buffer.from(k.ciphertextBlob, 'base64')),
    keyId: k.keyId,
    encryptionContext: { ...k.encryptionContext },
  }));
}

export class EnclaveKms {
  readonly #o: EnclaveKmsOptions;
  readonly #random: (n: number) => Uint8Array;
  readonly #connectTimeout: number;
  readonly #requestTimeout: number;
  readonly #endpoint: string;
  /** Clients of calls in flight (each call has its own), destroyed by close(). */
  readonly #live = new Set<{ destroy(): void }>();
  #closed = false;

  constructor(options: EnclaveKmsOptions) {
    if (typeof options?.connect !== 'function') throw new TypeError('"connect" expected a function returning Promise<Duplex>');
    if (typeof options.region !== 'string' || options.region.length === 0) throw new TypeError('"region" expected a non-empty string');
    if (options.endpoint !== undefined) {
      const u = new URL(options.endpoint);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new TypeError('"endpoint" expected an http(s) URL');
      if (u.protocol === 'http:') {
        const kind = options.platform?.kind;
        if (options.allowPlainHttp !== true || (kind !== undefined && kind !== 'simulator'))
          throw new ToolkitError(
            'ERR_CONFIG_INVALID',
            `KMS endpoint ${u.protocol}//${u.host} is plain http: only the simulator platform may use one (allowPlainHttp); use https`,
            { reason: 'insecure_endpoint' },
          );
      }
    }
    if (options.credentials !== undefined && typeof options.credentials !== 'function') checkCredentials(options.credentials);
    this.#o = options;
    this.#endpoint = options.endpoint ?? (() => {
      try {
        return kmsEndpointUrl(options.region, { fips: options.fips === true });
      } catch (e) {
        throw new ToolkitError('ERR_CONFIG_INVALID', (e as Error).message, { reason: 'region' });
      }
    })();
    this.#connectTimeout = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#requestTimeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#random = options.randomBytes ?? ((n) => new Uint8Array(nodeRandomBytes(n)));
  }

  get endpoint(): string {
    return this.#endpoint;
  }

  /**
   * The credentials one call signs with: the call's, else the client's, else (simulator only) the
   * placeholder. Checked before anything is attested or sent.
   */
  async #credentialsFor(call: KmsCallOptions | undefined): Promise<AwsCredentials> {
    const source = call?.credentials ?? this.#o.credentials;
    let c: AwsCredentials | undefined;
    if (typeof source === 'function') {
      try {
        c = await source();
      } catch (e) {
        throw kmsError('ERR_KMS_REQUEST', 'the AWS credentials could not be read', 'no_credentials', e);
      }
    } else c = source;
    if (c === undefined) {
      const plain = new URL(this.#endpoint).protocol === 'http:';
      if (plain && this.#o.allowPlainHttp === true && this.#o.simulatorPlaceholderCredentials === true) return SIMULATOR_PLACEHOLDER_CREDENTIALS;
      throw kmsError(
        'ERR_KMS_REQUEST',
        'no AWS credentials to sign KMS requests with: the host must send the parent role\'s credentials (a credentials message) before job_start',
        'no_credentials',
      );
    }
    checkCredentials(c);
    if (c.expiration !== undefined) {
      const now = (this.#o.clock ?? (() => new Date()))().getTime();
      if (c.expiration.getTime() - CREDENTIALS_EXPIRY_MARGIN_MS <= now)
        throw kmsError(
          'ERR_KMS_REQUEST',
          `the AWS credentials the host handed in expired at ${c.expiration.toISOString()}: the host must send fresh ones (a credentials message) before KMS can be asked`,
          'credentials_expired',
        );
    }
    return c;
  }

  /** A client signing with `credentials`, over fresh agents; the caller destroys it. */
  async #client(credentials: AwsCredentials): Promise<import('@aws-sdk/client-kms').KMSClient> {
    const { KMSClient } = await loadKms();
    const agents = makeAgents({ connect: this.#o.connect, timeoutMs: this.#connectTimeout, tls: this.#o.tls });
    const client = new KMSClient({
      region: this.#o.region,
      endpoint: this.#endpoint,
      // A copy: the SDK keeps what it is given for the client's life, which ends with this call.
      credentials: {
        accessKeyId: credentials.accessKeyId,
        secretAccessKey: credentials.secretAccessKey,
        ...(credentials.sessionToken !== undefined ? { sessionToken: credentials.sessionToken } : {}),
        ...(credentials.expiration !== undefined ? { expiration: credentials.expiration } : {}),
      },
      maxAttempts: this.#o.maxAttempts ?? 3,
      // SigV4 signs with the injected clock too (KMS refuses a date 15 minutes off its own).
      ...(this.#o.clock ? { systemClockOffset: this.#o.clock().getTime() - Date.now() } : {}),
      // Timeouts are ours (dial and one deadline per call), so the handler's own are left unset:
      // two timers racing would make the error depend on which fired first.
      requestHandler: { ...agents },
    });
    this.#live.add(client);
    return client;
  }

  #release(client: { destroy(): void }): void {
    this.#live.delete(client);
    client.destroy();
  }

  /** One KMS Decrypt with a Recipient; returns the data key (caller owns and wipes it). */
  async decryptDataKey(reference: KmsKeyReference, call?: KmsCallOptions): Promise<Uint8Array> {
    if (this.#closed) throw kmsError('ERR_KMS_REQUEST', 'KMS client is closed', 'closed');
    const ref = checkRef(reference);
    const client = await this.#client(await this.#credentialsFor(call));
    try {
      return await this.#decrypt(client, ref);
    } finally {
      this.#release(client);
    }
  }

  async #decrypt(client: import('@aws-sdk/client-kms').KMSClient, ref: KmsKeyReference): Promise<Uint8Array> {
    const { DecryptCommand } = await loadKms();
    const document = await this.#o.platform.attest({ publicKey: this.#o.keyPair.publicKeySpki, nonce: this.#random(32) });
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.#requestTimeout);
    let out;
    try {
      out = await client.send(
        new DecryptCommand({
          CiphertextBlob: ref.ciphertextBlob,
          ...(ref.keyId !== undefined ? { KeyId: ref.keyId } : {}),
          ...(ref.encryptionContext !== undefined ? { EncryptionContext: ref.encryptionContext } : {}),
          Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: document },
        }),
        { abortSignal: abort.signal },
      );
    } catch (e) {
      const cf = findConnectFailure(e);
      if (cf) throw kmsError('ERR_KMS_UNREACHABLE', `KMS unreachable for key "${ref.ref}": ${cf.message}`, cf.reason, e);
      if (abort.signal.aborted)
        throw kmsError('ERR_KMS_REQUEST', `KMS Decrypt for key "${ref.ref}" did not complete within ${this.#requestTimeout} ms`, 'timeout', e);
      const name = errorName(e);
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === undefined) {
        // The SDK renames ECONNRESET/EPIPE to TimeoutError; the errno says what really happened.
        const code = (e as { code?: unknown }).code;
        if (typeof code === 'string' && /^E[A-Z]+$/.test(code) && code !== 'ETIMEDOUT')
          throw kmsError('ERR_KMS_UNREACHABLE', `KMS connection failed for key "${ref.ref}" (${code})`, 'connection', e);
        if (name === 'TimeoutError' || code === 'ETIMEDOUT')
          throw kmsError('ERR_KMS_REQUEST', `KMS Decrypt for key "${ref.ref}" timed out`, 'timeout', e);
      }
      throw kmsError('ERR_KMS_REQUEST', `KMS Decrypt refused key "${ref.ref}": ${name}`, name, e);
    } finally {
      clearTimeout(timer);
    }
    if (out.Plaintext !== undefined && out.Plaintext !== null && out.Plaintext.length > 0) {
      out.Plaintext.fill(0);
      throw kmsError('ERR_KMS_RECIPIENT', `KMS returned a plaintext data key for "${ref.ref}" although a Recipient was sent`, 'plaintext_returned');
    }
    // AWS names the key it used by its ARN; the manifest names the owner's key by its ARN. Anything
    // else (another key, another spelling, no key) is an answer about some other key.
    if (ref.keyId !== undefined && out.KeyId !== ref.keyId)
      throw kmsError('ERR_KMS_RECIPIENT', `KMS response for "${ref.ref}" does not name the key the reference names`, 'key_id');
    const cfr = out.CiphertextForRecipient;
    if (!(cfr instanceof Uint8Array) || cfr.length === 0)
      throw kmsError('ERR_KMS_RECIPIENT', `KMS response for "${ref.ref}" has no CiphertextForRecipient`, 'missing');
    let key: Uint8Array;
    try {
      key = openCiphertextForRecipient(cfr, this.#o.keyPair.privateKey);
    } catch (e) {
      throw kmsError('ERR_KMS_RECIPIENT', `CiphertextForRecipient for "${ref.ref}" could not be opened`, 'unwrap', e);
    }
    const want = this.#o.dataKeyLength ?? 32;
    if (key.length !== want) {
      key.fill(0);
      // The same words as a failed unwrap: this message reaches the host in the error frame, and a
      // different one (or the length) for good CBC padding would be a padding oracle on the envelope.
      throw kmsError('ERR_KMS_RECIPIENT', `CiphertextForRecipient for "${ref.ref}" could not be opened`, 'key_length');
    }
    return key;
  }

  /**
   * Fetch every key of a job into a fresh cache (sequentially: a job has few keys, and KMS quotas
   * are per account). On any failure the keys already fetched are wiped before the error propagates.
   */
  async loadKeys(references: Iterable<KmsKeyReference>, call?: KmsCallOptions): Promise<DataKeyCache> {
    if (this.#closed) throw kmsError('ERR_KMS_REQUEST', 'KMS client is closed', 'closed');
    const refs = [...references].map(checkRef);
    // Credentials first, once per job: with none (or expired ones) nothing is attested or sent.
    const credentials = await this.#credentialsFor(call);
    const cache = new DataKeyCache();
    try {
      for (const r of refs) {
        if (cache.has(r.ref)) continue;
        cache.set(r.ref, await this.decryptDataKey(r, { credentials }));
      }
      return cache;
    } catch (e) {
      cache.wipe();
      throw e;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const c of [...this.#live]) this.#release(c);
  }
}
