/**
 * EnclaveKms and credentials: each call signs with the credentials it is given (per call, or the
 * client's value or provider read at each call); none or expired ones fail before anything is
 * attested or sent; one call's credentials never sign another's request; the endpoint follows the
 * region and the FIPS switch. A fake KMS on loopback records what arrives (it checks no signature:
 * the SigV4 simulator's own tests and test/deploy/credentials-e2e.test.ts cover verification).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ToolkitError } from '../../attestation/errors.js';
import { EnclaveKms, CREDENTIALS_EXPIRY_MARGIN_MS, type AwsCredentials } from '../../enclave/kms-client.js';
import { generateRecipientKeyPair, type RecipientKeyPair } from '../../enclave/keys.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

let server: Server;
let port: number;
let keys: RecipientKeyPair;
const seen: { credential: string; token: string | undefined }[] = [];

beforeAll(async () => {
  keys = await generateRecipientKeyPair();
  // Answers every request with AccessDeniedException after noting who signed it.
  const http = await import('node:http');
  server = http.createServer((req, res) => {
    req.resume();
    const auth = String(req.headers.authorization ?? '');
    seen.push({ credential: /Credential=([^/]+)\//.exec(auth)?.[1] ?? '', token: req.headers['x-amz-security-token'] as string | undefined });
    res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' });
    res.end(JSON.stringify({ __type: 'AccessDeniedException', message: 'no' }));
  }) as unknown as Server;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const ref = { ref: 'k0', ciphertextBlob: new Uint8Array([1, 2, 3]), keyId: 'arn:aws:kms:us-east-1:111122223333:key/k', encryptionContext: { a: 'b' } };
const cred = (n: number, expiresInMs = 3600_000): AwsCredentials => ({
  accessKeyId: `ASIAEXAMPLEEXAMPLE0${n}`,
  secretAccessKey: `secret-secret-secret-secret-${n}`,
  sessionToken: `token-token-token-token-${n}`,
  expiration: new Date(Date.now() + expiresInMs),
});

function kms(o: { credentials?: ConstructorParameters<typeof EnclaveKms>[0]['credentials']; counters?: { attest: number; connect: number } } = {}): EnclaveKms {
  const counters = o.counters ?? { attest: 0, connect: 0 };
  return new EnclaveKms({
    platform: { kind: 'simulator', attest: async () => (counters.attest++, new Uint8Array([0x84])) },
    keyPair: keys,
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${port}`,
    allowPlainHttp: true,
    maxAttempts: 1,
    connect: () => {
      counters.connect++;
      return new Promise<Socket>((resolve, reject) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      });
    },
    ...(o.credentials !== undefined ? { credentials: o.credentials } : {}),
  });
}

async function failure(p: Promise<unknown>): Promise<ToolkitError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ToolkitError) return e;
    throw e;
  }
  throw new Error('expected a failure');
}

describe('EnclaveKms credentials', () => {
  it('no credentials: ERR_KMS_REQUEST / no_credentials before anything is attested or sent', async () => {
    const counters = { attest: 0, connect: 0 };
    const k = kms({ counters });
    const e = await failure(k.loadKeys([ref]));
    expect(e.code).toBe('ERR_KMS_REQUEST');
    expect(e.reason).toBe('no_credentials');
    expect(counters).toEqual({ attest: 0, connect: 0 });
    // A provider that has none yet is the same.
    expect((await failure(k.loadKeys([ref], { credentials: () => undefined }))).reason).toBe('no_credentials');
    expect((await failure(k.decryptDataKey(ref))).reason).toBe('no_credentials');
    expect(counters).toEqual({ attest: 0, connect: 0 });
    await k.close();
  });

  it('expired (or about to): ERR_KMS_REQUEST / credentials_expired, nothing sent', async () => {
    const counters = { attest: 0, connect: 0 };
    const k = kms({ counters });
    const e = await failure(k.loadKeys([ref], { credentials: cred(1, -1000) }));
    expect(e.reason).toBe('credentials_expired');
    expect(e.message).toMatch(/expired at \d{4}-\d\d-\d\dT.*host must send fresh ones/);
    expect(e.message).not.toContain('ASIAEXAMPLE');
    expect((await failure(k.loadKeys([ref], { credentials: cred(1, CREDENTIALS_EXPIRY_MARGIN_MS - 1000) }))).reason).toBe('credentials_expired');
    expect(counters).toEqual({ attest: 0, connect: 0 });
    await k.close();
  });

  it('signs with the call\'s credentials, falls back to the client\'s, and reads a provider at each call', async () => {
    seen.length = 0;
    let n = 10;
    const k = kms({ credentials: () => cred(n) });
    expect((await failure(k.loadKeys([ref]))).reason).toBe('AccessDeniedException');
    n = 11;
    expect((await failure(k.loadKeys([ref]))).reason).toBe('AccessDeniedException');
    expect((await failure(k.loadKeys([ref], { credentials: cred(12) }))).reason).toBe('AccessDeniedException');
    expect(seen.map((s) => s.credential)).toEqual(['ASIAEXAMPLEEXAMPLE010', 'ASIAEXAMPLEEXAMPLE011', 'ASIAEXAMPLEEXAMPLE012']);
    expect(seen.map((s) => s.token)).toEqual(['token-token-token-token-10', 'token-token-token-token-11', 'token-token-token-token-12']);
    await k.close();
  });

  it('concurrent calls with different credentials never sign with each other\'s', async () => {
    seen.length = 0;
    const k = kms();
    await Promise.all(Array.from({ length: 8 }, (_, i) => failure(k.loadKeys([ref, { ...ref, ref: 'k1' }], { credentials: cred(20 + i) }))));
    // Each call stops at its first refusal: one request per call, each with its own key id.
    expect(seen.map((s) => s.credential).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `ASIAEXAMPLEEXAMPLE0${20 + i}`).sort());
    await k.close();
  });

  it('errors never carry a credential', async () => {
    const k = kms();
    const c = cred(30);
    const e = await failure(k.loadKeys([ref], { credentials: c }));
    const text = JSON.stringify({ m: e.message, r: e.reason, c: String(e.cause) });
    for (const s of [c.accessKeyId, c.secretAccessKey, c.sessionToken!]) expect(text).not.toContain(s);
    await k.close();
  });

  it('malformed credentials from a caller are misuse (TypeError), not sent', async () => {
    const k = kms();
    await expect(k.loadKeys([ref], { credentials: { accessKeyId: '', secretAccessKey: 'x' } })).rejects.toBeInstanceOf(TypeError);
    await expect(k.loadKeys([ref], { credentials: { ...cred(1), expiration: new Date(NaN) } })).rejects.toBeInstanceOf(TypeError);
    await k.close();
  });

  it('the endpoint follows the region and FIPS; a region that is not one is a config error', () => {
    const base = { platform: { attest: async () => new Uint8Array() }, keyPair: keys, connect: async () => connect(1) };
    expect(new EnclaveKms({ ...base, region: 'eu-west-1' }).endpoint).toBe('https://kms.eu-west-1.amazonaws.com');
    expect(new EnclaveKms({ ...base, region: 'us-gov-west-1', fips: true }).endpoint).toBe('https://kms-fips.us-gov-west-1.amazonaws.com');
    expect(new EnclaveKms({ ...base, region: 'cn-north-1' }).endpoint).toBe('https://kms.cn-north-1.amazonaws.com.cn');
    let e: unknown;
    try {
      new EnclaveKms({ ...base, region: 'eu-west-1.evil.example' });
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(ToolkitError);
    expect((e as ToolkitError).reason).toBe('region');
  });
});
