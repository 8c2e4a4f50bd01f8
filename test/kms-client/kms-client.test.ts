import 'reflect-metadata';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { CreateKeyCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../attestation/bytes.js';
import { ToolkitError } from '../../attestation/errors.js';
import { DataKeyCache, generateRecipientKeyPair, type RecipientKeyPair } from '../../enclave/keys.js';
import { EnclaveKms, keyReferencesFromManifest, type EnclaveKmsOptions } from '../../enclave/kms-client.js';
import { SimNitroPlatform } from '../../enclave/platform/sim-nitro.js';
import { simulatedBootPcrs } from '../../enclave/platform/sim-image.js';
import { openSimulatorState, type SimulatorState } from '../../enclave/sim-state.js';
import { buildCiphertextForRecipient } from '../../host/kms-sim/cms.js';
import { startKmsSimulator, type KmsSimulator } from '../../host/kms-sim/server.js';
import { buildEnclaveKeyPolicy } from '../../host/key-policy.js';
import { nativeStatus } from '../../native/binding.js';
import { connectUnix } from '../../native/socket.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const NOW = new Date('2026-06-01T12:00:00Z');
const IMAGE_A = new Uint8Array(48).fill(0xa);
const IMAGE_B = new Uint8Array(48).fill(0xb);
const CTX = { 'enclavekit:dataset': 'ds-1', 'enclavekit:key-ref': 'k1' };

let dir: string;
let state: SimulatorState;
let kms: KmsSimulator;
let port: number;
let keys: RecipientKeyPair;
let dataKey: Uint8Array;
let blob: Uint8Array;
/** The key ARN, as GenerateDataKey returned it (and as encrypt writes it into the manifest). */
let keyArn: string;
let keyUuid: string;
/** The instance role's session (enclavePolicy's `role`): what the worker signs Decrypt with. */
let roleCredentials: Awaited<ReturnType<KmsSimulator['addPrincipal']>>;
const servers: { close(cb?: () => void): unknown }[] = [];

/** Resolves once connected, as the `connect` contract asks (addon streams behave the same). */
function dialTcp(p: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(p, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}
function dialUnix(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

async function listen(server: net.Server, where: number | string): Promise<void> {
  servers.push(server);
  await new Promise<void>((r) => (typeof where === 'number' ? server.listen(where, '127.0.0.1', r) : server.listen(where, r)));
}

/** A byte pipe Unix socket -> TCP port: what the host's KMS proxy does. */
async function unixProxy(path: string, toPort: number): Promise<void> {
  const srv = net.createServer((c) => {
    const up = net.connect(toPort, '127.0.0.1');
    c.pipe(up).pipe(c);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  await listen(srv, path);
}

/** `enclavekit policy`'s key policy for PCR0 (three distinct principals; the simulator is one account). */
const enclavePolicy = (pcr0: Uint8Array): string =>
  buildEnclaveKeyPolicy({
    account: '111122223333',
    pcrs: new Map([[0, pcr0]]),
    keyAdmin: 'arn:aws:iam::111122223333:role/key-admin',
    dataOwner: 'arn:aws:iam::111122223333:role/data-owner',
    role: 'arn:aws:iam::111122223333:role/enclave-parent',
  });

function platform(imageId: Uint8Array): SimNitroPlatform {
  return new SimNitroPlatform({ ca: state.nitroCa, identity: { imageId }, now: () => NOW });
}

function client(o: Partial<EnclaveKmsOptions> & Pick<EnclaveKmsOptions, 'connect'>): EnclaveKms {
  // The simulator platform on a plain-http loopback KMS, as enclave/cli.ts configures it, signing (SigV4)
  // as the key policy's instance role on the tests' clock.
  return new EnclaveKms({ platform: platform(IMAGE_A), keyPair: keys, region: 'us-east-1', endpoint: kms.url, allowPlainHttp: true, maxAttempts: 1, credentials: roleCredentials, clock: () => NOW, ...o });
}

/** A session of one of enclavePolicy's roles, from a simulator's state folder. */
const session = (sim: KmsSimulator, role: string) => sim.addPrincipal({ principal: `arn:aws:iam::111122223333:role/${role}`, session: true });
/** An SDK client of the data owner (who may GenerateDataKey under enclavePolicy), on the tests' clock. */
async function ownerClient(sim: KmsSimulator): Promise<KMSClient> {
  return new KMSClient({ region: 'us-east-1', endpoint: sim.url, credentials: await session(sim, 'data-owner'), maxAttempts: 1, systemClockOffset: NOW.getTime() - Date.now() });
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

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ek-kmsc-'));
  state = await openSimulatorState(join(dir, 'sim'), { now: NOW });
  kms = await startKmsSimulator({
    stateDir: join(dir, 'kms'),
    port: 0,
    trustSimulator: true,
    simulatorRoots: [state.nitroRootDer],
    now: () => NOW,
    // The TLS tests below put a TLS front end for this name before the simulator.
    allowHosts: ['kms.us-east-1.amazonaws.com'],
  });
  port = Number(new URL(kms.url).port);
  keys = await generateRecipientKeyPair();
  roleCredentials = await session(kms, 'enclave-parent');
  const owner = await ownerClient(kms);
  const pcr0 = simulatedBootPcrs({ imageId: IMAGE_A }).get(0)!;
  const keyId = (await owner.send(new CreateKeyCommand({ Policy: enclavePolicy(pcr0) }))).KeyMetadata!.KeyId!;
  const g = await owner.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: CTX }));
  dataKey = g.Plaintext!;
  blob = g.CiphertextBlob!;
  keyArn = g.KeyId!;
  keyUuid = keyId;
  owner.destroy();
});

afterAll(async () => {
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  await kms?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('EnclaveKms against the KMS simulator (real @aws-sdk/client-kms)', () => {
  it('releases the data key to the image the key policy names (PCR0), via CiphertextForRecipient', async () => {
    const c = client({ connect: () => dialTcp(port) });
    const k = await c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob, encryptionContext: CTX });
    expect(toHex(k)).toBe(toHex(dataKey));
    await c.close();
  });

  it('denies another image (different PCR0) with ERR_KMS_REQUEST / AccessDeniedException, naming no key bytes', async () => {
    const c = client({ platform: platform(IMAGE_B), connect: () => dialTcp(port) });
    const e = await failure(c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob, encryptionContext: CTX }));
    expect(e.code).toBe('ERR_KMS_REQUEST');
    expect(e.reason).toBe('AccessDeniedException');
    expect(e.message).toContain('"k1"');
    expect(e.message).not.toContain(toHex(dataKey));
    await c.close();
  });

  it('a KMS that does not trust the simulator root (the default) releases nothing to a simulated enclave', async () => {
    const strict = await startKmsSimulator({ stateDir: join(dir, 'kms-strict'), port: 0, now: () => NOW });
    try {
      const owner = await ownerClient(strict);
      const pcr0 = simulatedBootPcrs({ imageId: IMAGE_A }).get(0)!;
      const keyId = (await owner.send(new CreateKeyCommand({ Policy: enclavePolicy(pcr0) }))).KeyMetadata!.KeyId!;
      const g = await owner.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: CTX }));
      owner.destroy();
      const p = Number(new URL(strict.url).port);
      const c = client({ endpoint: strict.url, connect: () => dialTcp(p), credentials: await session(strict, 'enclave-parent') });
      const e = await failure(c.decryptDataKey({ ref: 'k1', ciphertextBlob: g.CiphertextBlob!, encryptionContext: CTX }));
      expect(e.code).toBe('ERR_KMS_REQUEST');
      await c.close();
    } finally {
      await strict.close();
    }
  });

  it('a wrong encryption context is InvalidCiphertextException', async () => {
    const c = client({ connect: () => dialTcp(port) });
    const e = await failure(c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob, encryptionContext: { ...CTX, 'enclavekit:key-ref': 'k2' } }));
    expect([e.code, e.reason]).toEqual(['ERR_KMS_REQUEST', 'InvalidCiphertextException']);
    await c.close();
  });

  it('works over a Unix-socket stream (the host proxy path) and loads a manifest into a cache that wipes', async () => {
    const sock = join(dir, 'kms.sock');
    await unixProxy(sock, port);
    const c = client({ connect: () => dialUnix(sock) });
    // Only `keys` is read; the rest of the manifest is not this test's business.
    const manifest = {
      version: 1 as const,
      datasetId: 'ds-1',
      idField: 'id',
      fields: ['a'],
      keys: { k1: { keyId: keyArn, ciphertextBlob: Buffer.from(blob).toString('base64'), encryptionContext: CTX } },
    } as unknown as Parameters<typeof keyReferencesFromManifest>[0];
    const refs = keyReferencesFromManifest(manifest);
    expect(refs[0]!.keyId).toBe(keyArn);
    const cache = await c.loadKeys(refs);
    const k = cache.get('k1')!;
    expect(toHex(k)).toBe(toHex(dataKey));
    cache.wipe();
    expect(k.every((b) => b === 0)).toBe(true);
    expect(cache.size).toBe(0);
    await c.close();
  });

  it('a failing key in a job wipes the keys already fetched', async () => {
    const c = client({ connect: () => dialTcp(port) });
    const seen: Uint8Array[] = [];
    const orig = c.decryptDataKey.bind(c);
    c.decryptDataKey = async (r) => {
      const k = await orig(r);
      seen.push(k);
      return k;
    };
    const e = await failure(
      c.loadKeys([
        { ref: 'k1', ciphertextBlob: blob, encryptionContext: CTX },
        { ref: 'k2', ciphertextBlob: blob, encryptionContext: { other: 'context' } },
      ]),
    );
    expect(e.code).toBe('ERR_KMS_REQUEST');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.every((b) => b === 0)).toBe(true);
    await c.close();
  });
});

describe('EnclaveKms over TLS (https endpoint) through a Unix-socket stream', () => {
  let sock: string;
  let caPem: string;

  beforeAll(async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const kp = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=kms.us-east-1.amazonaws.com',
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 86_400_000),
      keys: kp,
      signingAlgorithm: alg,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'kms.us-east-1.amazonaws.com' }])],
    });
    caPem = cert.toString('pem');
    const keyDer = Buffer.from(await crypto.subtle.exportKey('pkcs8', kp.privateKey));
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${keyDer.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
    // TLS terminates here and the plaintext HTTP goes on to the simulator: a stand-in for KMS's
    // own TLS endpoint behind a byte-passing proxy.
    const srv = tls.createServer({ key: keyPem, cert: caPem }, (c) => {
      const up = net.connect(port, '127.0.0.1');
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    });
    srv.on('tlsClientError', () => undefined);
    sock = join(dir, 'tls.sock');
    await listen(srv, sock);
  });

  it('verifies the server for the KMS hostname with the given CA and decrypts', async () => {
    const c = client({ endpoint: 'https://kms.us-east-1.amazonaws.com', tls: { ca: caPem }, connect: () => dialUnix(sock) });
    expect(toHex(await c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob, encryptionContext: CTX }))).toBe(toHex(dataKey));
    await c.close();
  });

  it.skipIf(!nativeStatus().available)('TLS runs over the native addon\'s Unix stream too', async () => {
    const c = client({ endpoint: 'https://kms.us-east-1.amazonaws.com', tls: { ca: caPem }, connect: () => connectUnix(sock) });
    expect(toHex(await c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob, encryptionContext: CTX }))).toBe(toHex(dataKey));
    await c.close();
  });

  it('refuses an untrusted certificate or a wrong hostname: ERR_KMS_UNREACHABLE / tls', async () => {
    const untrusted = client({ endpoint: 'https://kms.us-east-1.amazonaws.com', connect: () => dialUnix(sock) });
    const e1 = await failure(untrusted.decryptDataKey({ ref: 'k1', ciphertextBlob: blob, encryptionContext: CTX }));
    expect([e1.code, e1.reason]).toEqual(['ERR_KMS_UNREACHABLE', 'tls']);
    await untrusted.close();
    const wrongName = client({ endpoint: 'https://kms.eu-west-1.amazonaws.com', region: 'eu-west-1', tls: { ca: caPem }, connect: () => dialUnix(sock) });
    const e2 = await failure(wrongName.decryptDataKey({ ref: 'k1', ciphertextBlob: blob, encryptionContext: CTX }));
    expect([e2.code, e2.reason]).toEqual(['ERR_KMS_UNREACHABLE', 'tls']);
    await wrongName.close();
  });
});

describe('EnclaveKms over the native addon\'s Unix stream (a NativeStream, not a net.Socket)', () => {
  const native = nativeStatus().available;

  it.skipIf(!native)('plain HTTP to the simulator through the addon stream', async () => {
    const sock = join(dir, 'native-kms.sock');
    await unixProxy(sock, port);
    const c = client({ connect: () => connectUnix(sock) });
    expect(toHex(await c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob, encryptionContext: CTX }))).toBe(toHex(dataKey));
    await c.close();
  });
});

describe('EnclaveKms: hostile or broken endpoints', () => {
  /** A fake KMS answering every request with `body`. */
  async function fakeKms(body: (req: Record<string, unknown>) => Record<string, unknown>): Promise<number> {
    const srv = http.createServer((req, res) => {
      let data = '';
      req.on('data', (c) => (data += String(c)));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(body(JSON.parse(data) as Record<string, unknown>)));
      });
    });
    await listen(srv, 0);
    return (srv.address() as net.AddressInfo).port;
  }

  it('refuses a response that carries Plaintext although a Recipient was sent', async () => {
    let sawRecipient = false;
    const p = await fakeKms((req) => {
      const r = req['Recipient'] as { KeyEncryptionAlgorithm?: string; AttestationDocument?: string } | undefined;
      sawRecipient = r?.KeyEncryptionAlgorithm === 'RSAES_OAEP_SHA_256' && typeof r.AttestationDocument === 'string';
      return { KeyId: 'k', Plaintext: Buffer.alloc(32, 7).toString('base64') };
    });
    const c = client({ endpoint: `http://127.0.0.1:${p}`, connect: () => dialTcp(p) });
    const e = await failure(c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob }));
    expect(sawRecipient).toBe(true);
    expect([e.code, e.reason]).toEqual(['ERR_KMS_RECIPIENT', 'plaintext_returned']);
    await c.close();
  });

  it('refuses a missing or unopenable CiphertextForRecipient, and a key of the wrong length', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const otherSpki = new Uint8Array(other.publicKey.export({ type: 'spki', format: 'der' }));
    const mine = createPublicKey(keys.privateKey);
    const cases: [Record<string, unknown>, string][] = [
      [{ KeyId: 'k' }, 'missing'],
      [{ KeyId: 'k', CiphertextForRecipient: Buffer.from('garbage').toString('base64') }, 'unwrap'],
      [{ KeyId: 'k', CiphertextForRecipient: Buffer.from(buildCiphertextForRecipient(new Uint8Array(32), otherSpki, other.publicKey)).toString('base64') }, 'unwrap'],
      [{ KeyId: 'k', CiphertextForRecipient: Buffer.from(buildCiphertextForRecipient(new Uint8Array(16), keys.publicKeySpki, mine)).toString('base64') }, 'key_length'],
    ];
    for (const [resp, reason] of cases) {
      const p = await fakeKms(() => resp);
      const c = client({ endpoint: `http://127.0.0.1:${p}`, connect: () => dialTcp(p) });
      const e = await failure(c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob }));
      expect([e.code, e.reason]).toEqual(['ERR_KMS_RECIPIENT', reason]);
      await c.close();
    }
  });

  it('times out, bounded, against a server that never answers (ERR_KMS_REQUEST / timeout)', async () => {
    const held: net.Socket[] = [];
    const srv = net.createServer((s) => {
      held.push(s);
      s.resume();
    });
    await listen(srv, 0);
    const p = (srv.address() as net.AddressInfo).port;
    const c = client({ endpoint: `http://127.0.0.1:${p}`, connect: () => dialTcp(p), requestTimeoutMs: 400, maxAttempts: 3 });
    const t0 = Date.now();
    const e = await failure(c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob }));
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(e.code).toBe('ERR_KMS_REQUEST');
    expect(e.reason).toBe('timeout');
    for (const s of held) s.destroy();
    await c.close();
  });

  it('a peer that hangs up mid-request is ERR_KMS_UNREACHABLE / connection', async () => {
    const srv = net.createServer((s) => s.destroy());
    await listen(srv, 0);
    const p = (srv.address() as net.AddressInfo).port;
    const c = client({ endpoint: `http://127.0.0.1:${p}`, connect: () => dialTcp(p) });
    const e = await failure(c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob }));
    expect([e.code, e.reason]).toEqual(['ERR_KMS_UNREACHABLE', 'connection']);
    await c.close();
  });

  it('a stream that never opens, or is refused, is ERR_KMS_UNREACHABLE', async () => {
    const hang = client({ connect: () => new Promise(() => undefined), connectTimeoutMs: 200 });
    const t0 = Date.now();
    const e1 = await failure(hang.decryptDataKey({ ref: 'k1', ciphertextBlob: blob }));
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect([e1.code, e1.reason]).toEqual(['ERR_KMS_UNREACHABLE', 'connect_timeout']);
    await hang.close();
    const refused = client({ connect: () => dialUnix(join(dir, 'nobody-listens.sock')) });
    const e2 = await failure(refused.decryptDataKey({ ref: 'k1', ciphertextBlob: blob }));
    expect([e2.code, e2.reason]).toEqual(['ERR_KMS_UNREACHABLE', 'connect']);
    await refused.close();
  });

  it('checks caller arguments', async () => {
    const c = client({ connect: () => dialTcp(port) });
    await expect(c.decryptDataKey({ ref: '', ciphertextBlob: blob })).rejects.toThrow(TypeError);
    await expect(c.decryptDataKey({ ref: 'k', ciphertextBlob: new Uint8Array(0) })).rejects.toThrow(RangeError);
    await expect(c.decryptDataKey({ ref: 'k', ciphertextBlob: blob, encryptionContext: { a: 1 as never } })).rejects.toThrow(TypeError);
    expect(() => new EnclaveKms({ platform: platform(IMAGE_A), keyPair: keys, region: 'us-east-1', endpoint: 'ftp://x', connect: () => dialTcp(port) })).toThrow(TypeError);
    await c.close();
  });
});

describe('EnclaveKms: plain http only on the simulator platform', () => {
  const make = (o: Partial<EnclaveKmsOptions>) => () =>
    new EnclaveKms({ platform: platform(IMAGE_A), keyPair: keys, region: 'us-east-1', connect: () => dialTcp(port), ...o });
  const refusal = (f: () => unknown): [string | undefined, string | undefined] => {
    try {
      f();
    } catch (e) {
      if (e instanceof ToolkitError) return [e.code, e.reason];
      throw e;
    }
    return [undefined, undefined];
  };

  it('an http endpoint without allowPlainHttp is refused in the constructor: ERR_CONFIG_INVALID / insecure_endpoint', () => {
    expect(refusal(make({ endpoint: kms.url }))).toEqual(['ERR_CONFIG_INVALID', 'insecure_endpoint']);
    expect(refusal(make({ endpoint: kms.url, allowPlainHttp: false }))).toEqual(['ERR_CONFIG_INVALID', 'insecure_endpoint']);
  });

  it('allowPlainHttp is refused on a platform that says it is not the simulator', () => {
    for (const kind of ['nitro', 'sev-snp'] as const) {
      const p = platform(IMAGE_A);
      const real = { kind, attest: p.attest.bind(p) };
      expect(refusal(make({ platform: real, endpoint: kms.url, allowPlainHttp: true })), kind).toEqual(['ERR_CONFIG_INVALID', 'insecure_endpoint']);
      // https needs no flag, on any platform.
      expect(refusal(make({ platform: real, endpoint: 'https://kms.us-east-1.amazonaws.com' })), kind).toEqual([undefined, undefined]);
    }
    expect(refusal(make({ endpoint: kms.url, allowPlainHttp: true }))).toEqual([undefined, undefined]);
    expect(refusal(make({}))).toEqual([undefined, undefined]);
  });
});

describe('EnclaveKms: the answer must name the key the reference names', () => {
  it('the simulator answers GenerateDataKey and Decrypt with the full key ARN, as AWS does', async () => {
    expect(keyArn).toBe(`arn:aws:kms:us-east-1:111122223333:key/${keyUuid}`);
    const c = client({ connect: () => dialTcp(port) });
    // Accepted: the reference names the ARN the answer names.
    expect(toHex(await c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob, keyId: keyArn, encryptionContext: CTX }))).toBe(toHex(dataKey));
    // The bare key id is the same key to KMS, but not the ARN the answer carries: refused (manifests carry ARNs).
    const e = await failure(c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob, keyId: keyUuid, encryptionContext: CTX }));
    expect([e.code, e.reason]).toEqual(['ERR_KMS_RECIPIENT', 'key_id']);
    expect(e.message).toBe('KMS response for "k1" does not name the key the reference names');
    await c.close();
  });

  it('a response naming another key, another spelling, or no key is refused: ERR_KMS_RECIPIENT / key_id', async () => {
    const mine = createPublicKey(keys.privateKey);
    const cfr = Buffer.from(buildCiphertextForRecipient(new Uint8Array(32).fill(5), keys.publicKeySpki, mine)).toString('base64');
    for (const answer of [{ KeyId: 'arn:aws:kms:us-east-1:999999999999:key/00000000-0000-0000-0000-000000000000' }, { KeyId: keyArn.toUpperCase() }, { KeyId: keyUuid }, {}]) {
      const srv = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
          res.end(JSON.stringify({ ...answer, CiphertextForRecipient: cfr }));
        });
      });
      await listen(srv, 0);
      const p = (srv.address() as net.AddressInfo).port;
      const c = client({ endpoint: `http://127.0.0.1:${p}`, connect: () => dialTcp(p) });
      const e = await failure(c.decryptDataKey({ ref: 'k1', ciphertextBlob: blob, keyId: keyArn }));
      expect([e.code, e.reason], JSON.stringify(answer)).toEqual(['ERR_KMS_RECIPIENT', 'key_id']);
      expect(e.message).toBe('KMS response for "k1" does not name the key the reference names');
      await c.close();
    }
  });
});

describe('DataKeyCache', () => {
  it('wipes every key it holds, replaced keys too, and refuses use after wipe', () => {
    const c = new DataKeyCache();
    const a = new Uint8Array(32).fill(1);
    const b = new Uint8Array(32).fill(2);
    c.set('r', a);
    c.set('r', b);
    expect(a.every((x) => x === 0)).toBe(true);
    c.wipe();
    expect(b.every((x) => x === 0)).toBe(true);
    const d = new Uint8Array(32).fill(3);
    expect(() => c.set('s', d)).toThrow();
    expect(d.every((x) => x === 0)).toBe(true);
  });
});
