/**
 * AWS Signature Version 4 verification for the KMS simulator (header-based `Authorization`, the form
 * every AWS SDK and the AWS CLI send).
 *
 * The signature is recomputed with `@smithy/signature-v4` (the AWS SDK's own signer) over exactly what
 * the client says it signed: the method, the path and query as received, the headers the
 * `SignedHeaders` list names (and only those), `x-amz-date`, `x-amz-security-token` when signed, and the
 * SHA-256 of the body actually received. It is compared with the client's in constant time.
 *
 * Checks, in order, each answered as AWS answers it:
 *  1. an `Authorization` header:                    MissingAuthenticationTokenException
 *  2. `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`, an `X-Amz-Date` in ISO-8601
 *     basic format, `host` and `x-amz-date` among the signed headers:    IncompleteSignatureException
 *  3. the credential scope `DATE/REGION/kms/aws4_request`: this region, this service, the terminator,
 *     and DATE equal to the X-Amz-Date day:                              InvalidSignatureException
 *  4. a known access key:                                                UnrecognizedClientException
 *  5. the session token: present, signed and equal for temporary credentials, absent for long-term
 *     keys:                                                              UnrecognizedClientException
 *  6. `x-amz-content-sha256`, when sent, equals the body's SHA-256 (so `UNSIGNED-PAYLOAD` or a stale
 *     hash cannot leave the body unauthenticated):                       InvalidSignatureException
 *  7. the signature:                                                     InvalidSignatureException
 *  8. X-Amz-Date within `maxSkewMs` (15 minutes) of the server's clock:  InvalidSignatureException
 *     ("Signature expired: ..." / "Signature not yet current: ...")
 *  9. temporary credentials not past their expiry:                       ExpiredTokenException
 *
 * Presigned (query-string) authentication and `Date` instead of `X-Amz-Date` are not supported. No
 * message quotes a secret, a token or a signature.
 */
import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { fault, type KmsFault } from './errors.js';
import { secretsEqual, type StoredPrincipal } from './principals.js';

export const DEFAULT_MAX_SKEW_MS = 15 * 60_000;
const MAX_AUTHORIZATION = 4096;
const MAX_SIGNED_HEADERS = 64;
const MAX_QUERY_PARAMS = 64;

export const SIGNATURE_MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';
export const INVALID_TOKEN = 'The security token included in the request is invalid.';
export const EXPIRED_TOKEN = 'The security token included in the request is expired';

/** The authenticated caller of one request. */
export interface Caller {
  readonly principal: string;
  readonly account: string;
  readonly accessKeyId: string;
}

export interface SigV4Request {
  method: string;
  /** The request target as received (`/path?query`). */
  url: string;
  /** Every header, lower-case name -> all its values (node's `headersDistinct`). */
  headers: Readonly<Record<string, readonly string[] | undefined>>;
  body: Uint8Array;
}

export interface SigV4Options {
  region: string;
  service: string;
  now: Date;
  maxSkewMs?: number;
  lookup: (accessKeyId: string) => Promise<StoredPrincipal | undefined>;
}

/** `@smithy/signature-v4`'s hash interface over node:crypto: SHA-256, or HMAC-SHA-256 with a secret. */
class NodeSha256 {
  readonly #secret: Buffer | undefined;
  #h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#secret =
      secret === undefined
        ? undefined
        : typeof secret === 'string'
          ? Buffer.from(secret, 'utf8')
          : ArrayBuffer.isView(secret)
            ? Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength)
            : Buffer.from(secret);
    this.#h = this.#fresh();
  }
  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', this.#secret);
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    if (typeof data === 'string') this.#h.update(data, 'utf8');
    else if (ArrayBuffer.isView(data)) this.#h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    else this.#h.update(new Uint8Array(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#h.digest());
  }
  reset(): void {
    this.#h = this.#fresh();
  }
}

const incomplete = (message: string): KmsFault => fault('IncompleteSignatureException', message);
const invalidSignature = (message = SIGNATURE_MISMATCH): KmsFault => fault('InvalidSignatureException', message);

function single(headers: SigV4Request['headers'], name: string): string | undefined {
  const v = headers[name];
  if (v === undefined || v.length === 0) return undefined;
  return v.length === 1 ? v[0] : '\u0000multiple';
}

/** `YYYYMMDDTHHMMSSZ` -> Date, or undefined when it is not a real instant in that exact form. */
export function parseAmzDate(s: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  const d = new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
  return formatAmzDate(d) === s ? d : undefined;
}

export const formatAmzDate = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');

interface ParsedAuthorization {
  accessKeyId: string;
  scopeDate: string;
  scopeRegion: string;
  scopeService: string;
  scopeTerminator: string;
  signedHeaders: string;
  signedHeaderList: string[];
  signature: string;
}

function parseAuthorization(value: string): ParsedAuthorization {
  if (value.length > MAX_AUTHORIZATION) throw incomplete('Authorization header is too long.');
  const m = /^(\S+)\s+(.*)$/s.exec(value.trim());
  if (!m) throw incomplete("Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.");
  if (m[1] !== 'AWS4-HMAC-SHA256') throw incomplete("Unsupported AWS 'algorithm': only AWS4-HMAC-SHA256 is supported.");
  const params = new Map<string, string>();
  for (const part of m[2]!.split(',')) {
    const p = part.trim();
    if (p.length === 0) continue;
    const eq = p.indexOf('=');
    if (eq <= 0) throw incomplete("Authorization header parameters must be 'name=value' pairs.");
    const k = p.slice(0, eq).trim();
    if (k !== 'Credential' && k !== 'SignedHeaders' && k !== 'Signature') continue;
    if (params.has(k)) throw incomplete(`Authorization header has more than one '${k}' parameter.`);
    params.set(k, p.slice(eq + 1).trim());
  }
  const missing = ['Credential', 'Signature', 'SignedHeaders'].filter((k) => !params.has(k));
  if (missing.length > 0) throw incomplete(missing.map((k) => `Authorization header requires '${k}' parameter.`).join(' '));
  const cred = params.get('Credential')!.split('/');
  if (cred.length !== 5 || cred.some((c) => c.length === 0))
    throw incomplete('Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term.');
  const signedHeaders = params.get('SignedHeaders')!;
  const signedHeaderList = signedHeaders.split(';');
  if (signedHeaderList.length > MAX_SIGNED_HEADERS || !signedHeaderList.every((h) => /^[a-z0-9][a-z0-9!#$%&'*+.^_`|~-]{0,127}$/.test(h)))
    throw invalidSignature();
  return {
    accessKeyId: cred[0]!,
    scopeDate: cred[1]!,
    scopeRegion: cred[2]!,
    scopeService: cred[3]!,
    scopeTerminator: cred[4]!,
    signedHeaders,
    signedHeaderList,
    signature: params.get('Signature')!,
  };
}

/** Path and query as the client signed them: the path as sent, query names and values decoded. */
function splitTarget(url: string): { path: string; query: Record<string, string | string[]> } {
  if (!url.startsWith('/')) throw invalidSignature();
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  if (q >= 0 && q < url.length - 1) {
    const parts = url.slice(q + 1).split('&');
    if (parts.length > MAX_QUERY_PARAMS) throw invalidSignature();
    for (const part of parts) {
      if (part.length === 0) continue;
      const eq = part.indexOf('=');
      let k: string;
      let v: string;
      try {
        k = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
        v = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
      } catch {
        throw invalidSignature();
      }
      if (k === '__proto__') throw invalidSignature();
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
  }
  return { path, query };
}

const fmtSkew = (d: Date): string => formatAmzDate(d);

/**
 * Authenticate one request: the caller, or a KmsFault (AWS error type and message) to send back.
 * Never throws anything else for any input.
 */
export async function verifySigV4(req: SigV4Request, o: SigV4Options): Promise<Caller> {
  const authValues = req.headers.authorization;
  if (authValues === undefined || authValues.length === 0) throw fault('MissingAuthenticationTokenException', 'Missing Authentication Token');
  if (authValues.length !== 1) throw incomplete('Only one Authorization header is allowed.');
  const auth = parseAuthorization(authValues[0]!);

  const amzDateText = single(req.headers, 'x-amz-date');
  if (amzDateText === undefined) throw incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
  const amzDate = parseAmzDate(amzDateText);
  if (amzDate === undefined) throw incomplete("X-Amz-Date must be in ISO-8601 'basic format' (YYYYMMDD'T'HHMMSS'Z').");
  if (!auth.signedHeaderList.includes('host')) throw incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.");
  if (!auth.signedHeaderList.includes('x-amz-date')) throw incomplete("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.");

  if (auth.scopeTerminator !== 'aws4_request') throw invalidSignature(`Credential should be scoped with a valid terminator: 'aws4_request', not '${auth.scopeTerminator.slice(0, 64)}'.`);
  if (auth.scopeDate !== amzDateText.slice(0, 8))
    throw invalidSignature(
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${auth.scopeDate.slice(0, 16)}' != '${amzDateText.slice(0, 8)}', from '${amzDateText}'.`,
    );
  if (auth.scopeService !== o.service) throw invalidSignature(`Credential should be scoped to correct service: '${o.service}'.`);
  if (auth.scopeRegion !== o.region) throw invalidSignature(`Credential should be scoped to a valid region, not '${auth.scopeRegion.slice(0, 64)}'.`);

  const who = await o.lookup(auth.accessKeyId);
  if (who === undefined) throw fault('UnrecognizedClientException', INVALID_TOKEN);

  // The token must be what was issued with the key, and signed: a token added after signing is
  // refused like a wrong one rather than trusted unsigned.
  const token = single(req.headers, 'x-amz-security-token');
  if (who.sessionToken !== undefined) {
    if (token === undefined || !auth.signedHeaderList.includes('x-amz-security-token') || !secretsEqual(token, who.sessionToken))
      throw fault('UnrecognizedClientException', INVALID_TOKEN);
  } else if (token !== undefined) throw fault('UnrecognizedClientException', INVALID_TOKEN);

  const bodyHash = createHash('sha256').update(req.body).digest('hex');
  const declared = req.headers['x-amz-content-sha256'];
  if (declared !== undefined && (declared.length !== 1 || declared[0] !== bodyHash))
    throw invalidSignature("The provided 'x-amz-content-sha256' header does not match what was computed.");

  const { path, query } = splitTarget(req.url);
  // Only the headers the client listed, each with all its values joined by commas (SigV4's rule for a
  // repeated header). A listed header that is absent stays absent, and the lists then differ below.
  const headers: Record<string, string> = {};
  for (const name of auth.signedHeaderList) {
    const v = req.headers[name];
    if (v !== undefined && v.length > 0) headers[name] = v.join(',');
  }
  let expected: string | undefined;
  let expectedList: string | undefined;
  try {
    const signer = new SignatureV4({
      credentials: { accessKeyId: who.accessKeyId, secretAccessKey: who.secretAccessKey, ...(who.sessionToken !== undefined ? { sessionToken: who.sessionToken } : {}) },
      region: o.region,
      service: o.service,
      sha256: NodeSha256,
      // The body hash header is part of the request only if the client sent (and signed) it.
      applyChecksum: false,
      uriEscapePath: true,
    });
    const signed = await signer.sign(
      { method: req.method, protocol: 'http:', hostname: 'localhost', path, query, headers, body: req.body },
      { signingDate: amzDate, signableHeaders: new Set(auth.signedHeaderList) },
    );
    const a = String(signed.headers.authorization ?? '');
    expected = /Signature=([0-9a-f]{64})$/.exec(a)?.[1];
    expectedList = /SignedHeaders=([^,]*),/.exec(a)?.[1];
  } catch {
    throw invalidSignature();
  }
  if (expected === undefined || expectedList !== auth.signedHeaders || !/^[0-9a-f]{64}$/.test(auth.signature)) throw invalidSignature();
  if (!timingSafeEqual(Buffer.from(expected, 'latin1'), Buffer.from(auth.signature, 'latin1'))) throw invalidSignature();

  const maxSkew = o.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  const now = o.now.getTime();
  if (amzDate.getTime() < now - maxSkew)
    throw invalidSignature(`Signature expired: ${amzDateText} is now earlier than ${fmtSkew(new Date(now - maxSkew))} (${fmtSkew(o.now)} - ${maxSkew / 60_000} min.)`);
  if (amzDate.getTime() > now + maxSkew)
    throw invalidSignature(`Signature not yet current: ${amzDateText} is still later than ${fmtSkew(new Date(now + maxSkew))} (${fmtSkew(o.now)} + ${maxSkew / 60_000} min.)`);

  if (who.expiration !== undefined && who.expiration.getTime() <= now) throw fault('ExpiredTokenException', EXPIRED_TOKEN);
  return Object.freeze({ principal: who.principal, account: who.account, accessKeyId: who.accessKeyId });
}
