/**
 * Test tools for SigV4: an SDK client whose signed requests can be changed on the way out (the SDK
 * signs, the test tampers with one part, the simulator must notice), a raw signer for requests the
 * SDK would never send, and a plain HTTP sender.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { request } from 'node:http';
import { KMSClient } from '@aws-sdk/client-kms';
import { SignatureV4 } from '@smithy/signature-v4';
import type { HttpRequest } from '@smithy/types';
import { NOW, type TestCredentials } from './helpers.js';

/** SHA-256 / HMAC-SHA-256 for the test signer (independent of the simulator's own). */
class TestSha256 {
  #h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#h =
      secret === undefined
        ? createHash('sha256')
        : createHmac('sha256', typeof secret === 'string' ? Buffer.from(secret) : Buffer.from(ArrayBuffer.isView(secret) ? new Uint8Array(secret.buffer, secret.byteOffset, secret.byteLength) : new Uint8Array(secret)));
  }
  update(d: string | ArrayBuffer | ArrayBufferView): void {
    this.#h.update(typeof d === 'string' ? Buffer.from(d) : ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : new Uint8Array(d));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#h.digest());
  }
  reset(): void {}
}

export type Tamper = (req: HttpRequest) => void;

/**
 * A KMSClient that signs normally (clock at `now`) and then lets `tamper` change the signed request
 * before it is sent. `tamper` may be swapped between calls through the returned setter.
 */
export function tamperingClient(target: { url: string }, credentials: TestCredentials, now: Date = NOW, region = 'us-east-1'): { client: KMSClient; tamper(t: Tamper | undefined): void } {
  let current: Tamper | undefined;
  const cfg = {
    region,
    endpoint: target.url,
    credentials: { ...credentials },
    maxAttempts: 1,
    systemClockOffset: now.getTime() - Date.now(),
  };
  const plain = new KMSClient(cfg);
  const inner = plain.config.requestHandler as unknown as { handle(r: HttpRequest, o?: unknown): Promise<unknown>; destroy?(): void };
  const client = new KMSClient({
    ...cfg,
    requestHandler: {
      handle: (r: HttpRequest, o?: unknown) => {
        current?.(r);
        return inner.handle(r, o);
      },
      destroy: () => plain.destroy(),
    } as unknown as KMSClient['config']['requestHandler'],
  });
  return { client, tamper: (t) => (current = t) };
}

export interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | Buffer;
}

/** A KMS JSON request as the SDK would build it, before signing. */
export function kmsRequest(url: string, op: string, body: unknown = {}): RawRequest {
  const u = new URL(url);
  const text = JSON.stringify(body);
  return {
    method: 'POST',
    path: '/',
    headers: { host: u.host, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `TrentService.${op}`, 'content-length': String(Buffer.byteLength(text)) },
    body: text,
  };
}

/** Sign a raw request with @smithy/signature-v4, as an SDK would (options for the odd cases). */
export async function signRaw(
  req: RawRequest,
  credentials: TestCredentials,
  o: { now?: Date; region?: string; service?: string; unsignable?: string[]; applyChecksum?: boolean } = {},
): Promise<RawRequest> {
  const signer = new SignatureV4({
    credentials: { ...credentials },
    region: o.region ?? 'us-east-1',
    service: o.service ?? 'kms',
    sha256: TestSha256,
    applyChecksum: o.applyChecksum ?? true,
  });
  const [path, q] = req.path.split('?');
  const query: Record<string, string> = {};
  for (const part of (q ?? '').split('&').filter(Boolean)) {
    const [k, v] = part.split('=');
    query[decodeURIComponent(k!)] = decodeURIComponent(v ?? '');
  }
  const signed = await signer.sign(
    { method: req.method, protocol: 'http:', hostname: '127.0.0.1', path: path!, query, headers: { ...req.headers }, body: req.body },
    { signingDate: o.now ?? NOW, ...(o.unsignable ? { unsignableHeaders: new Set(o.unsignable) } : {}) },
  );
  return { ...req, headers: { ...(signed.headers as Record<string, string>) } };
}

export interface RawResponse {
  status: number;
  json: { __type?: string; message?: string } & Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
}

/** Send exactly these bytes and headers (no Host added unless given). */
export function sendRaw(url: string, req: RawRequest): Promise<RawResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, method: req.method, path: req.path, setHost: false, headers: req.headers, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let json = {};
        try {
          json = JSON.parse(Buffer.concat(chunks).toString() || '{}');
        } catch {
          json = { unparsable: true };
        }
        resolve({ status: res.statusCode!, json, headers: res.headers });
      });
    });
    r.on('error', reject);
    r.end(req.body);
  });
}

/** Sign with `credentials` at `now` and send. */
export async function signedSend(url: string, req: RawRequest, credentials: TestCredentials, now: Date = NOW): Promise<RawResponse> {
  return sendRaw(url, await signRaw(req, credentials, { now }));
}
