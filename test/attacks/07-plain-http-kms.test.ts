/**
 * Attack 07: the host answers the enclave's KMS Decrypt itself and slips in a data key it chose.
 *
 * Finding: the worker accepted `http://` KMS endpoints on real platforms. The host sits on the KMS path
 * (the vsock proxy), so with a plain-HTTP endpoint it can be KMS: it reads the enclave's RSA public key
 * from the attestation document the worker sends in `Recipient` (the key is public by design), wraps a
 * data key of its own choosing to it as a perfectly valid `CiphertextForRecipient`, and the worker
 * would decrypt with a host-chosen key. And even over genuine TLS, a KMS answer for ANOTHER key (the
 * host's own KMS key, whose policy lets this image decrypt) was accepted, because the worker never
 * compared the answer's `KeyId` with the key the manifest names.
 * Stopped by: enclave/kms-client.ts refuses an `http:` endpoint in the EnclaveKms constructor unless
 * `allowPlainHttp` is set, which enclave/cli.ts sets only on the simulator platform (and which is
 * refused anyway on a platform whose kind is not `simulator`): ERR_CONFIG_INVALID / insecure_endpoint.
 * And decryptDataKey requires the response's KeyId to equal the reference's key ARN exactly, a missing
 * KeyId included: ERR_KMS_RECIPIENT / key_id.
 */
import 'reflect-metadata';
import { createPublicKey } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolkitError } from '../../attestation/errors.js';
import { parseNitroDocument } from '../../attestation/nitro/parse.js';
import { createNitroSimCa, issueNitroDocument, type NitroSimCa } from '../../attestation/sim/nitro.js';
import { generateRecipientKeyPair, type RecipientKeyPair } from '../../enclave/keys.js';
import { EnclaveKms } from '../../enclave/kms-client.js';
import type { AttestOptions } from '../../enclave/platform/types.js';
import { buildCiphertextForRecipient } from '../../host/kms-sim/cms.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const OWNER_KEY_ARN = 'arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555';
const HOST_KEY_ARN = 'arn:aws:kms:us-east-1:999999999999:key/66666666-7777-8888-9999-000000000000';
/** The data key the host wants the enclave to use (it knows it, so it could read everything). */
const HOST_DATA_KEY = new Uint8Array(32).fill(0x42);

let ca: NitroSimCa;
let keys: RecipientKeyPair;
const servers: net.Server[] = [];

/** A Nitro-kind platform: the NSM stood in by a document issuer (no /dev/nsm here). */
function nitroLikePlatform(): { kind: 'nitro'; attest(o?: AttestOptions): Promise<Uint8Array> } {
  return {
    kind: 'nitro',
    attest: (o = {}) =>
      issueNitroDocument(ca, {
        moduleId: 'i-0123456789abcdef0-enc0123456789abcdef',
        timestamp: new Date(),
        pcrs: new Map([[0, new Uint8Array(48).fill(0xa)]]),
        publicKey: o.publicKey ?? null,
        nonce: o.nonce ?? null,
      }),
  };
}

/**
 * The hostile KMS: speaks just enough AWS JSON 1.1 to answer Decrypt. It takes the enclave's public key
 * from the attestation document in the request and wraps the host's data key to it.
 */
function hostileDecrypt(keyId: string | undefined, seen: { decrypts: number }): http.RequestListener {
  return (req, res) => {
    let data = '';
    req.on('data', (c) => (data += String(c)));
    req.on('end', () => {
      seen.decrypts++;
      const body = JSON.parse(data) as { Recipient?: { AttestationDocument?: string } };
      const doc = new Uint8Array(Buffer.from(body.Recipient!.AttestationDocument!, 'base64'));
      const spki = parseNitroDocument(doc).publicKey!;
      const cfr = buildCiphertextForRecipient(HOST_DATA_KEY, spki, createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }));
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ ...(keyId !== undefined ? { KeyId: keyId } : {}), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT', CiphertextForRecipient: Buffer.from(cfr).toString('base64') }));
    });
  };
}

async function listen(srv: net.Server): Promise<number> {
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as net.AddressInfo).port;
}

function dial(port: number): () => Promise<net.Socket> {
  return () =>
    new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
}

async function outcome(p: () => Promise<Uint8Array> | Uint8Array): Promise<ToolkitError | Uint8Array> {
  try {
    return await p();
  } catch (e) {
    if (e instanceof ToolkitError) return e;
    throw e;
  }
}

const reference = { ref: 'k0', ciphertextBlob: new Uint8Array(200).fill(1), keyId: OWNER_KEY_ARN, encryptionContext: { 'enclavekit:dataset': 'ds' } };

beforeAll(async () => {
  ca = await createNitroSimCa({ now: new Date() });
  keys = await generateRecipientKeyPair();
});

afterAll(async () => {
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
});

describe('attack 07: a fake KMS on the host\'s side of the proxy', () => {
  it('plain http on a real (non-simulator) platform is refused when the client is built', async () => {
    const seen = { decrypts: 0 };
    const port = await listen(http.createServer(hostileDecrypt(OWNER_KEY_ARN, seen)));
    for (const extra of [{}, { allowPlainHttp: true }]) {
      const r = await outcome(async () => {
        const c = new EnclaveKms({ platform: nitroLikePlatform(), keyPair: keys, region: 'us-east-1', endpoint: `http://127.0.0.1:${port}`, connect: dial(port), maxAttempts: 1, ...extra });
        try {
          return await c.decryptDataKey(reference);
        } finally {
          await c.close();
        }
      });
      // Before the fix this was HOST_DATA_KEY: the worker took the host's key.
      expect(r, JSON.stringify(extra)).toBeInstanceOf(ToolkitError);
      expect([(r as ToolkitError).code, (r as ToolkitError).reason]).toEqual(['ERR_CONFIG_INVALID', 'insecure_endpoint']);
    }
    expect(seen.decrypts).toBe(0);
  });

  it('over verified TLS, an answer for another key (or naming no key) is refused', async () => {
    // The TLS side is genuine here (a CA the worker trusts for the KMS hostname): what is wrong is only
    // which key KMS used, e.g. the host's own KMS key whose policy admits this image.
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const kp = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '07',
      name: 'CN=kms.us-east-1.amazonaws.com',
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 86_400_000),
      keys: kp,
      signingAlgorithm: alg,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'kms.us-east-1.amazonaws.com' }])],
    });
    const caPem = cert.toString('pem');
    const keyDer = Buffer.from(await crypto.subtle.exportKey('pkcs8', kp.privateKey));
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${keyDer.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;

    for (const answered of [HOST_KEY_ARN, undefined, OWNER_KEY_ARN.toUpperCase(), OWNER_KEY_ARN.split('/')[1]!]) {
      const seen = { decrypts: 0 };
      const srv = https.createServer({ key: keyPem, cert: caPem }, hostileDecrypt(answered, seen));
      srv.on('tlsClientError', () => undefined);
      const port = await listen(srv);
      const c = new EnclaveKms({
        platform: nitroLikePlatform(),
        keyPair: keys,
        region: 'us-east-1',
        tls: { ca: caPem },
        credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
        connect: dial(port),
        maxAttempts: 1,
      });
      const r = await outcome(() => c.decryptDataKey(reference));
      await c.close();
      expect(seen.decrypts, String(answered)).toBe(1);
      // Before the fix this was HOST_DATA_KEY.
      expect(r, String(answered)).toBeInstanceOf(ToolkitError);
      expect([(r as ToolkitError).code, (r as ToolkitError).reason], String(answered)).toEqual(['ERR_KMS_RECIPIENT', 'key_id']);
    }
  });

  it('control: the same TLS answer naming the reference\'s key ARN is accepted (the check is not blanket)', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const kp = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '08',
      name: 'CN=kms.us-east-1.amazonaws.com',
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 86_400_000),
      keys: kp,
      signingAlgorithm: alg,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'kms.us-east-1.amazonaws.com' }])],
    });
    const caPem = cert.toString('pem');
    const keyDer = Buffer.from(await crypto.subtle.exportKey('pkcs8', kp.privateKey));
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${keyDer.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
    const srv = https.createServer({ key: keyPem, cert: caPem }, hostileDecrypt(OWNER_KEY_ARN, { decrypts: 0 }));
    srv.on('tlsClientError', () => undefined);
    const port = await listen(srv);
    const c = new EnclaveKms({ platform: nitroLikePlatform(), keyPair: keys, region: 'us-east-1', tls: { ca: caPem }, credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, connect: dial(port), maxAttempts: 1 });
    const k = await c.decryptDataKey(reference);
    await c.close();
    expect(Buffer.from(k).equals(Buffer.from(HOST_DATA_KEY))).toBe(true);
  });
});
