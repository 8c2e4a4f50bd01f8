/**
 * Attack 08: the hostile host against the KMS simulator itself.
 *
 * Finding (a): the simulator evaluated `ForAnyValue:StringNotEquals` as "no request value matches",
 * the opposite of IAM. A data owner's guard "Deny when the request brings any encryption-context key
 * I did not list" (`ForAnyValue:StringNotEquals kms:EncryptionContextKeys [allowed...]`) was skipped as
 * soon as ONE allowed key was present, so a host adding its own context keys next to the owner's got
 * data keys the owner meant to refuse.
 * Stopped by: host/key-policy.ts evaluates every set-qualified operator as IAM does (ForAnyValue: some
 * request value satisfies the operator, false when the key is absent; ForAllValues: every request
 * value does, true when the key is absent; negated operators negate per value).
 *
 * Finding (b): the simulator answered any Host header, so a web page could reach it by DNS rebinding
 * (a name the attacker controls, re-pointed at 127.0.0.1) and drive CreateKey / GenerateDataKey /
 * ListKeys from the victim's browser.
 * Stopped by: host/kms-sim/server.ts refuses (403 AccessDeniedException, before reading the body) every
 * request whose Host is not the address it is bound to with its port, and requests without a Host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { CreateKeyCommand, EncryptCommand, GenerateDataKeyCommand, ListKeysCommand, type KMSClient } from '@aws-sdk/client-kms';
import { startKmsSimulator, type KmsSimulator } from '../../host/kms-sim/server.js';
import { kmsClient, NOW, tempDir } from '../kms/helpers.js';
import { signedSend } from '../kms/signing.js';

const ACCOUNT = '111122223333';
let tmp: ReturnType<typeof tempDir>;
let sim: KmsSimulator;
let kms: KMSClient;

beforeAll(async () => {
  tmp = tempDir('enclavekit-attack08-');
  sim = await startKmsSimulator({ stateDir: tmp.dir, now: () => NOW });
  kms = kmsClient(sim);
});

afterAll(async () => {
  kms?.destroy();
  await sim?.close();
  tmp?.cleanup();
});

async function errorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).name;
  }
  return 'no error';
}

describe('attack 08a: extra encryption-context keys slip past a ForAnyValue:StringNotEquals Deny', () => {
  const ALLOWED = ['enclavekit:dataset', 'enclavekit:key-ref'];
  let keyId: string;

  beforeAll(async () => {
    // The owner's key: usable by the account, but never with context keys outside ALLOWED.
    const policy = {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'Use', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: 'kms:*', Resource: '*' },
        {
          Sid: 'OnlyOurContextKeys',
          Effect: 'Deny',
          Principal: '*',
          Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKey*'],
          Resource: '*',
          Condition: { 'ForAnyValue:StringNotEquals': { 'kms:EncryptionContextKeys': ALLOWED } },
        },
      ],
    };
    keyId = (await kms.send(new CreateKeyCommand({ Policy: JSON.stringify(policy) }))).KeyMetadata!.KeyId!;
  });

  it('the owner\'s own context is allowed', async () => {
    const g = await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: { 'enclavekit:dataset': 'ds', 'enclavekit:key-ref': 'k0' } }));
    expect(g.Plaintext).toHaveLength(32);
  });

  it('the host adds its own key next to an allowed one: denied', async () => {
    const hostile = { 'enclavekit:dataset': 'ds', 'host:injected': 'anything' };
    expect(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: hostile })))).toBe('AccessDeniedException');
    expect(await errorName(kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: new Uint8Array(32), EncryptionContext: hostile })))).toBe('AccessDeniedException');
  });

  it('only foreign keys: denied', async () => {
    expect(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: { 'host:injected': 'x' } })))).toBe('AccessDeniedException');
  });
});

describe('attack 08b: DNS rebinding (a browser page reaching the simulator through its own name)', () => {
  function post(headers: Record<string, string>, opts: { setHost?: boolean } = {}): Promise<{ status: number; body: string }> {
    const u = new URL(sim.url);
    return new Promise((resolve, reject) => {
      const r = request(
        {
          host: u.hostname,
          port: u.port,
          method: 'POST',
          path: '/',
          setHost: opts.setHost ?? false,
          headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.ListKeys', ...headers },
          timeout: 5000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() }));
        },
      );
      r.on('error', reject);
      r.end('{}');
    });
  }

  it('a request naming the attacker\'s host is refused with an AWS-shaped error and no data', async () => {
    // Make sure there is something to leak.
    await kms.send(new CreateKeyCommand({ Description: 'victim key' }));
    for (const host of ['attacker.example', `attacker.example:${sim.port}`, `127.0.0.1.attacker.example:${sim.port}`, `localhost:${sim.port + 1}`]) {
      const r = await post({ host });
      expect([400, 403], host).toContain(r.status);
      const json = JSON.parse(r.body) as { __type?: string; Keys?: unknown };
      expect(json.__type, host).toBe('AccessDeniedException');
      expect(json.Keys, host).toBeUndefined();
    }
  });

  it('a request without a Host header is refused too', async () => {
    const r = await post({});
    expect([400, 403]).toContain(r.status);
    expect((JSON.parse(r.body) as { __type?: string }).__type).toBe('AccessDeniedException');
  });

  it('the AWS SDK (Host: 127.0.0.1:PORT) and localhost:PORT still work', async () => {
    expect((await kms.send(new ListKeysCommand({}))).Keys!.length).toBeGreaterThan(0);
    // Signed (SigV4) by the account root, as every request must be now.
    const r = await signedSend(sim.url, { method: 'POST', path: '/', headers: { host: `localhost:${sim.port}`, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.ListKeys', 'content-length': '2' }, body: '{}' }, sim.credentials);
    expect(r.status).toBe(200);
  });
});
