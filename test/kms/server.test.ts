import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { request } from 'node:http';
import { join } from 'node:path';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  GenerateRandomCommand,
  GetKeyPolicyCommand,
  ListAliasesCommand,
  ListKeysCommand,
  PutKeyPolicyCommand,
  ReEncryptCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { hostAllowed, startKmsSimulator, type KmsSimulator } from '../../host/kms-sim/server.js';
import { MASTER_KEY_FILE, STATE_FILE } from '../../host/kms-sim/store.js';
import { SIM_CA_FILE, readRootsPem } from '../../host/kms-sim/sim-root.js';
import { exportNitroSimCa, issueNitroDocument } from '../../attestation/sim/nitro.js';
import { openSimulatorState } from '../../enclave/sim-state.js';
import { buildEnclaveKeyPolicy } from '../../host/key-policy.js';
import { openCiphertextForRecipient } from '../../enclave/cms.js';
import { NOW, kmsClient, pcr, simEnclave, tempDir, type SimEnclave } from './helpers.js';
import { sendRaw, signedSend } from './signing.js';

const enc = new TextEncoder();
let tmp: ReturnType<typeof tempDir>;
let sim: KmsSimulator;
let kms: KMSClient;
let enclave: SimEnclave;

async function start(dir = tmp.dir): Promise<KmsSimulator> {
  return startKmsSimulator({ stateDir: dir, now: () => NOW, trustSimulator: true, simulatorRoots: [enclave.ca.rootDer] });
}

async function errorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).name;
  }
  return 'no error';
}

beforeAll(async () => {
  tmp = tempDir();
  enclave = await simEnclave();
  sim = await start();
  kms = kmsClient(sim);
});

afterAll(async () => {
  kms?.destroy();
  await sim?.close();
  tmp?.cleanup();
});

describe('KMS simulator: every operation through @aws-sdk/client-kms', () => {
  it('CreateKey (default policy), DescribeKey, ListKeys, aliases, key policies', async () => {
    const { KeyMetadata } = await kms.send(new CreateKeyCommand({ Description: 'test key' }));
    expect(KeyMetadata?.KeyId).toMatch(/^[0-9a-f-]{36}$/);
    expect(KeyMetadata?.Arn).toBe(`arn:aws:kms:us-east-1:111122223333:key/${KeyMetadata?.KeyId}`);
    expect(KeyMetadata?.CreationDate?.getTime()).toBe(NOW.getTime());
    const d = await kms.send(new DescribeKeyCommand({ KeyId: KeyMetadata!.Arn }));
    expect(d.KeyMetadata?.Description).toBe('test key');
    const list = await kms.send(new ListKeysCommand({}));
    expect(list.Keys?.map((k) => k.KeyId)).toContain(KeyMetadata!.KeyId);

    await kms.send(new CreateAliasCommand({ AliasName: 'alias/test-key', TargetKeyId: KeyMetadata!.KeyId }));
    expect(await errorName(kms.send(new CreateAliasCommand({ AliasName: 'alias/test-key', TargetKeyId: KeyMetadata!.KeyId })))).toBe('AlreadyExistsException');
    const aliases = await kms.send(new ListAliasesCommand({ KeyId: KeyMetadata!.KeyId }));
    expect(aliases.Aliases?.map((a) => [a.AliasName, a.TargetKeyId])).toEqual([['alias/test-key', KeyMetadata!.KeyId]]);
    const byAlias = await kms.send(new DescribeKeyCommand({ KeyId: 'alias/test-key' }));
    expect(byAlias.KeyMetadata?.KeyId).toBe(KeyMetadata!.KeyId);
    const byAliasArn = await kms.send(new DescribeKeyCommand({ KeyId: 'arn:aws:kms:us-east-1:111122223333:alias/test-key' }));
    expect(byAliasArn.KeyMetadata?.KeyId).toBe(KeyMetadata!.KeyId);

    const pol = await kms.send(new GetKeyPolicyCommand({ KeyId: KeyMetadata!.KeyId }));
    expect(JSON.parse(pol.Policy!).Statement[0].Principal.AWS).toBe('arn:aws:iam::111122223333:root');
    const denyDescribe = JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::111122223333:root' }, Action: 'kms:*', Resource: '*' },
        { Effect: 'Deny', Principal: '*', Action: 'kms:Describe*', Resource: '*' },
      ],
    });
    await kms.send(new PutKeyPolicyCommand({ KeyId: KeyMetadata!.KeyId, Policy: denyDescribe }));
    expect((await kms.send(new GetKeyPolicyCommand({ KeyId: KeyMetadata!.KeyId }))).Policy).toBe(denyDescribe);
    expect(await errorName(kms.send(new DescribeKeyCommand({ KeyId: KeyMetadata!.KeyId })))).toBe('AccessDeniedException');
    expect(await errorName(kms.send(new PutKeyPolicyCommand({ KeyId: KeyMetadata!.KeyId, Policy: '{"Statement":[]}' })))).toBe('MalformedPolicyDocumentException');
    expect(await errorName(kms.send(new DescribeKeyCommand({ KeyId: '00000000-0000-0000-0000-000000000000' })))).toBe('NotFoundException');
    expect(await errorName(kms.send(new DescribeKeyCommand({ KeyId: 'alias/nope' })))).toBe('NotFoundException');
  });

  it('Encrypt / Decrypt / ReEncrypt bind the key and the encryption context', async () => {
    const a = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!;
    const b = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!;
    const ctx = { dataset: 'd1', purpose: 'test' };
    const e = await kms.send(new EncryptCommand({ KeyId: a.KeyId, Plaintext: enc.encode('secret'), EncryptionContext: ctx }));
    expect(e.KeyId).toBe(a.Arn);
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionContext: { purpose: 'test', dataset: 'd1' } }));
    expect(new TextDecoder().decode(d.Plaintext)).toBe('secret');
    expect(d.KeyId).toBe(a.Arn);
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionContext: { dataset: 'd2', purpose: 'test' } })))).toBe('InvalidCiphertextException');
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob })))).toBe('InvalidCiphertextException');
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionContext: ctx, KeyId: b.KeyId })))).toBe('IncorrectKeyException');
    const tampered = e.CiphertextBlob!.slice();
    tampered[tampered.length - 1]! ^= 1;
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: ctx })))).toBe('InvalidCiphertextException');
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: enc.encode('not a blob at all, but long enough to pass length checks......'), EncryptionContext: ctx })))).toBe('InvalidCiphertextException');

    const r = await kms.send(new ReEncryptCommand({ CiphertextBlob: e.CiphertextBlob, SourceEncryptionContext: ctx, DestinationKeyId: b.Arn, DestinationEncryptionContext: { x: 'y' } }));
    expect(r.SourceKeyId).toBe(a.Arn);
    expect(r.KeyId).toBe(b.Arn);
    const d2 = await kms.send(new DecryptCommand({ CiphertextBlob: r.CiphertextBlob, EncryptionContext: { x: 'y' } }));
    expect(new TextDecoder().decode(d2.Plaintext)).toBe('secret');
    expect(await errorName(kms.send(new ReEncryptCommand({ CiphertextBlob: e.CiphertextBlob, DestinationKeyId: b.Arn })))).toBe('InvalidCiphertextException');
  });

  it('GenerateDataKey, GenerateDataKeyWithoutPlaintext, GenerateRandom', async () => {
    const k = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!;
    const g = await kms.send(new GenerateDataKeyCommand({ KeyId: k.KeyId, KeySpec: 'AES_256', EncryptionContext: { a: 'b' } }));
    expect(g.Plaintext).toHaveLength(32);
    const back = await kms.send(new DecryptCommand({ CiphertextBlob: g.CiphertextBlob, EncryptionContext: { a: 'b' } }));
    expect(back.Plaintext).toEqual(g.Plaintext);
    const g16 = await kms.send(new GenerateDataKeyCommand({ KeyId: k.KeyId, NumberOfBytes: 16 }));
    expect(g16.Plaintext).toHaveLength(16);
    const w = await kms.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: k.KeyId, KeySpec: 'AES_128' }));
    expect(w).not.toHaveProperty('Plaintext', expect.anything());
    expect((await kms.send(new DecryptCommand({ CiphertextBlob: w.CiphertextBlob }))).Plaintext).toHaveLength(16);
    expect(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: k.KeyId })))).toBe('ValidationException');
    expect(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: k.KeyId, KeySpec: 'AES_256', NumberOfBytes: 32 })))).toBe('ValidationException');
    const r = await kms.send(new GenerateRandomCommand({ NumberOfBytes: 64 }));
    expect(r.Plaintext).toHaveLength(64);
    expect(await errorName(kms.send(new GenerateRandomCommand({ NumberOfBytes: 1025 })))).toBe('ValidationException');
    expect(await errorName(kms.send(new EncryptCommand({ KeyId: k.KeyId, Plaintext: enc.encode('x'), DryRun: true })))).toBe('DryRunOperationException');
  });
});

describe('KMS simulator: Recipient and a key policy bound to PCR0', () => {
  const GOOD = pcr(0xa1);
  const OTHER = pcr(0xb2);
  let keyId: string;
  let blob: Uint8Array;
  const ctx = { dataset: 'sales-2026' };
  // The policy's three principals, each signing as itself: the role decrypts, the owner encrypts.
  let admin: KMSClient;
  let owner: KMSClient;
  let role: KMSClient;

  beforeAll(async () => {
    const policy = buildEnclaveKeyPolicy({ account: '111122223333', pcrs: new Map([[0, GOOD]]), keyAdmin: 'arn:aws:iam::111122223333:role/key-admin', dataOwner: 'arn:aws:iam::111122223333:role/data-owner', role: 'arn:aws:iam::111122223333:role/enclave-parent' });
    const session = (name: string) => sim.addPrincipal({ principal: `arn:aws:iam::111122223333:role/${name}`, session: true });
    admin = kmsClient(sim, await session('key-admin'));
    owner = kmsClient(sim, await session('data-owner'));
    role = kmsClient(sim, await session('enclave-parent'));
    keyId = (await admin.send(new CreateKeyCommand({ Policy: policy }))).KeyMetadata!.KeyId!;
    blob = (await owner.send(new EncryptCommand({ KeyId: keyId, Plaintext: enc.encode('the data key'), EncryptionContext: ctx }))).CiphertextBlob!;
  });

  afterAll(() => {
    for (const c of [admin, owner, role]) c?.destroy();
  });

  it('releases the key to the right image as CiphertextForRecipient, with no Plaintext', async () => {
    const doc = await enclave.document(new Map([[0, GOOD], [1, pcr(1)], [2, pcr(2)]]));
    const d = await role.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: doc } }));
    expect(d.Plaintext).toBeUndefined();
    expect(new TextDecoder().decode(openCiphertextForRecipient(d.CiphertextForRecipient!, enclave.privateKey))).toBe('the data key');

    const g = await role.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: ctx, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: doc } }));
    expect(g.Plaintext).toBeUndefined();
    const dk = openCiphertextForRecipient(g.CiphertextForRecipient!, enclave.privateKey);
    expect(dk).toHaveLength(32);
    const again = await role.send(new DecryptCommand({ CiphertextBlob: g.CiphertextBlob, EncryptionContext: ctx, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: doc } }));
    expect(openCiphertextForRecipient(again.CiphertextForRecipient!, enclave.privateKey)).toEqual(dk);

    const r = await role.send(new GenerateRandomCommand({ NumberOfBytes: 32, Recipient: { AttestationDocument: doc } }));
    expect(r.Plaintext).toBeUndefined();
    expect(openCiphertextForRecipient(r.CiphertextForRecipient!, enclave.privateKey)).toHaveLength(32);
  });

  it('denies another image, a missing Recipient, a tampered document, and a wrong context', async () => {
    const other = await enclave.document(new Map([[0, OTHER]]));
    expect(await errorName(role.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx, Recipient: { AttestationDocument: other } })))).toBe('AccessDeniedException');
    expect(await errorName(role.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx })))).toBe('AccessDeniedException');
    expect(await errorName(role.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', Recipient: { AttestationDocument: other } })))).toBe('AccessDeniedException');
    // ReEncrypt would launder the key to another key: always denied by the generated policy.
    const mine = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    expect(await errorName(owner.send(new ReEncryptCommand({ CiphertextBlob: blob, SourceEncryptionContext: ctx, DestinationKeyId: mine })))).toBe('AccessDeniedException');

    const good = await enclave.document(new Map([[0, GOOD]]));
    // Flip one byte inside the PCR0 value: the signature no longer covers the payload.
    const idx = Buffer.from(good).indexOf(Buffer.from(GOOD));
    const tampered = good.slice();
    tampered[idx + 5]! ^= 0x01;
    expect(await errorName(role.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx, Recipient: { AttestationDocument: tampered } })))).toBe('ValidationException');
    expect(await errorName(role.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: { dataset: 'other' }, Recipient: { AttestationDocument: good } })))).toBe('InvalidCiphertextException');
    expect(await errorName(role.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_1' as 'RSAES_OAEP_SHA_256', AttestationDocument: good } })))).toBe('ValidationException');
    const noKey = await enclave.document(new Map([[0, GOOD]]), null);
    expect(await errorName(role.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx, Recipient: { AttestationDocument: noKey } })))).toBe('ValidationException');
  });

  it('--trust-simulator on a fresh state folder creates the simulator CA there, the one a simulated worker then uses', async () => {
    const t = tempDir();
    try {
      const s = await startKmsSimulator({ stateDir: t.dir, now: () => NOW, trustSimulator: true });
      await s.close();
      expect(statSync(join(t.dir, SIM_CA_FILE)).mode & 0o777).toBe(0o600);
      expect(statSync(t.dir).mode & 0o777).toBe(0o700);
      const state = await openSimulatorState(t.dir, { now: NOW });
      expect(state.created).toBe(false);
      expect((await readRootsPem(join(t.dir, 'sim-root.pem')))[0]).toEqual(state.nitroRootDer);
      // The intermediates get the worker's 5-year lifetime, not createNitroSimCa's days.
      expect(new Date(new X509Certificate(state.nitroCa.bundle[3]!).validTo).getTime()).toBeGreaterThan(NOW.getTime() + 4 * 365 * 86_400_000);
      // A worker's document from that folder is accepted by a simulator trusting it.
      const again = await startKmsSimulator({ stateDir: t.dir, now: () => NOW, trustSimulator: true });
      const c = kmsClient(again);
      try {
        const k = (await c.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
        const b = (await c.send(new EncryptCommand({ KeyId: k, Plaintext: enc.encode('fresh') }))).CiphertextBlob!;
        const doc = await issueNitroDocument(state.nitroCa, { moduleId: 'i-0123456789abcdef0-enc0123456789abcdef', timestamp: NOW, pcrs: new Map([[0, GOOD]]), publicKey: enclave.spki });
        const d = await c.send(new DecryptCommand({ CiphertextBlob: b, Recipient: { AttestationDocument: doc } }));
        expect(new TextDecoder().decode(openCiphertextForRecipient(d.CiphertextForRecipient!, enclave.privateKey))).toBe('fresh');
      } finally {
        c.destroy();
        await again.close();
      }
    } finally {
      t.cleanup();
    }
  });

  it('--trust-simulator takes the root from <state>/sim-ca.json, or from a PEM file', async () => {
    const t = tempDir();
    try {
      writeFileSync(join(t.dir, SIM_CA_FILE), JSON.stringify(await exportNitroSimCa(enclave.ca)), { mode: 0o600 });
      const s = await startKmsSimulator({ stateDir: t.dir, now: () => NOW, trustSimulator: true });
      const c = kmsClient(s);
      try {
        const k = (await c.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
        const b = (await c.send(new EncryptCommand({ KeyId: k, Plaintext: enc.encode('from state') }))).CiphertextBlob!;
        const d = await c.send(new DecryptCommand({ CiphertextBlob: b, Recipient: { AttestationDocument: await enclave.document(new Map([[0, GOOD]])) } }));
        expect(new TextDecoder().decode(openCiphertextForRecipient(d.CiphertextForRecipient!, enclave.privateKey))).toBe('from state');
      } finally {
        c.destroy();
        await s.close();
      }
      const pemPath = join(t.dir, 'root.pem');
      writeFileSync(pemPath, new X509Certificate(enclave.ca.rootDer).toString());
      expect(await readRootsPem(pemPath)).toEqual([enclave.ca.rootDer]);
      writeFileSync(pemPath, 'nothing here');
      await expect(readRootsPem(pemPath)).rejects.toMatchObject({ code: 'ERR_SIMULATOR_STATE' });
      // A leaf-like (non-CA) certificate is not a root.
      writeFileSync(pemPath, new X509Certificate(enclave.ca.bundle[3]!).toString());
      await expect(readRootsPem(pemPath)).rejects.toMatchObject({ code: 'ERR_SIMULATOR_STATE' });
    } finally {
      t.cleanup();
    }
  });

  it('a simulator document is refused when the simulator root is not trusted', async () => {
    const t = tempDir();
    const strict = await startKmsSimulator({ stateDir: t.dir, now: () => NOW });
    const c = kmsClient(strict);
    try {
      const k = (await c.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      const b = (await c.send(new EncryptCommand({ KeyId: k, Plaintext: enc.encode('x') }))).CiphertextBlob!;
      const doc = await enclave.document(new Map([[0, GOOD]]));
      expect(await errorName(c.send(new DecryptCommand({ CiphertextBlob: b, Recipient: { AttestationDocument: doc } })))).toBe('ValidationException');
    } finally {
      c.destroy();
      await strict.close();
      t.cleanup();
    }
  });
});

describe('KMS simulator: real AWS documents go through the real verifier', () => {
  it('an AWS-signed production document verifies at its own time (then fails only for lacking an RSA public_key); a debug one is refused', async () => {
    const V = join(import.meta.dirname, '../vectors/nitro');
    const t = tempDir();
    const at = new Date('2022-10-13T08:58:02Z');
    const s = await startKmsSimulator({ stateDir: t.dir, now: () => at });
    const c = kmsClient(s, s.credentials, at);
    try {
      const k = (await c.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      const b = (await c.send(new EncryptCommand({ KeyId: k, Plaintext: enc.encode('x') }))).CiphertextBlob!;
      const prod = new Uint8Array(readFileSync(join(V, 'evervault-1.cose')));
      await expect(c.send(new DecryptCommand({ CiphertextBlob: b, Recipient: { AttestationDocument: prod } }))).rejects.toMatchObject({
        name: 'ValidationException',
        message: expect.stringContaining('has no public_key'),
      });
      const debug = new Uint8Array(readFileSync(join(V, 'evervault-2.cose')));
      await expect(c.send(new DecryptCommand({ CiphertextBlob: b, Recipient: { AttestationDocument: debug } }))).rejects.toMatchObject({
        name: 'ValidationException',
        message: expect.stringContaining('is not valid'),
      });
      // The same production document at today's date: its leaf has long expired.
      const late = await startKmsSimulator({ stateDir: t.dir, now: () => NOW });
      const c2 = kmsClient(late);
      try {
        await expect(c2.send(new DecryptCommand({ CiphertextBlob: b, Recipient: { AttestationDocument: prod } }))).rejects.toMatchObject({
          name: 'ValidationException',
          message: expect.stringContaining('ERR_NITRO_CHAIN_INVALID'),
        });
      } finally {
        c2.destroy();
        await late.close();
      }
    } finally {
      c.destroy();
      await s.close();
      t.cleanup();
    }
  });
});

describe('KMS simulator: state, concurrency, bad input', () => {
  it('keys survive a restart; the master key is 0600 and key material is not on disk in clear', async () => {
    const t = tempDir();
    let s = await start(t.dir);
    let c = kmsClient(s);
    const k = (await c.send(new CreateKeyCommand({}))).KeyMetadata!;
    await c.send(new CreateAliasCommand({ AliasName: 'alias/persist', TargetKeyId: k.KeyId }));
    const g = await c.send(new GenerateDataKeyCommand({ KeyId: 'alias/persist', KeySpec: 'AES_256' }));
    c.destroy();
    await s.close();
    expect(statSync(join(t.dir, MASTER_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(statSync(join(t.dir, STATE_FILE)).mode & 0o777).toBe(0o600);
    s = await start(t.dir);
    c = kmsClient(s);
    try {
      const d = await c.send(new DecryptCommand({ CiphertextBlob: g.CiphertextBlob, KeyId: 'alias/persist' }));
      expect(d.Plaintext).toEqual(g.Plaintext);
    } finally {
      c.destroy();
      await s.close();
      t.cleanup();
    }
  });

  it('concurrent CreateKey / CreateAlias / Encrypt requests are all applied and persisted', async () => {
    const t = tempDir();
    const s = await start(t.dir);
    const c = kmsClient(s);
    try {
      const N = 24;
      const ids = await Promise.all(Array.from({ length: N }, async (_, i) => {
        const k = (await c.send(new CreateKeyCommand({ Description: `k${i}` }))).KeyMetadata!.KeyId!;
        await c.send(new CreateAliasCommand({ AliasName: `alias/c${i}`, TargetKeyId: k }));
        await c.send(new EncryptCommand({ KeyId: `alias/c${i}`, Plaintext: enc.encode(String(i)) }));
        return k;
      }));
      const dup = await Promise.allSettled(Array.from({ length: 8 }, () => c.send(new CreateAliasCommand({ AliasName: 'alias/race', TargetKeyId: ids[0] }))));
      expect(dup.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      await s.close();
      const s2 = await start(t.dir);
      const c2 = kmsClient(s2);
      try {
        const keys = await c2.send(new ListKeysCommand({ Limit: 1000 }));
        expect(new Set(keys.Keys!.map((k) => k.KeyId))).toEqual(new Set(ids));
        const aliases = await c2.send(new ListAliasesCommand({}));
        expect(aliases.Aliases).toHaveLength(N + 1);
        const p1 = await c2.send(new ListKeysCommand({ Limit: 10 }));
        expect(p1.Truncated).toBe(true);
        const p2 = await c2.send(new ListKeysCommand({ Limit: 10, Marker: p1.NextMarker }));
        expect(p2.Keys).toHaveLength(10);
      } finally {
        c2.destroy();
        await s2.close();
      }
    } finally {
      c.destroy();
      t.cleanup();
    }
  });

  /** A request signed (SigV4) by the account root, with exactly these headers and body. */
  async function raw(body: string | Buffer, headers: Record<string, string>, method = 'POST'): Promise<{ status: number; json: { __type?: string } }> {
    const host = new URL(sim.url).host;
    return signedSend(sim.url, { method, path: '/', headers: { host, 'content-length': String(Buffer.byteLength(body)), ...headers }, body }, sim.credentials);
  }
  const H = (op: string): Record<string, string> => ({ 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `TrentService.${op}` });

  it('bad input gets AWS error shapes and the server keeps serving', async () => {
    const cases: [string | Buffer, Record<string, string>, string, number][] = [
      ['{not json', H('ListKeys'), 'SerializationException', 400],
      ['[]', H('ListKeys'), 'SerializationException', 400],
      [Buffer.from([0xff, 0xfe, 0x7b, 0x7d]), H('ListKeys'), 'SerializationException', 400],
      ['{}', H('DeleteEverything'), 'UnknownOperationException', 400],
      ['{}', { 'content-type': 'application/x-amz-json-1.1' }, 'UnknownOperationException', 400],
      ['{}', { 'content-type': 'text/plain', 'x-amz-target': 'TrentService.ListKeys' }, 'SerializationException', 400],
      ['{"Limit":"ten"}', H('ListKeys'), 'SerializationException', 400],
      ['{"Limit":0}', H('ListKeys'), 'ValidationException', 400],
      ['{"Marker":"zzz"}', H('ListKeys'), 'InvalidMarkerException', 400],
      ['{"KeyId":5}', H('DescribeKey'), 'SerializationException', 400],
      ['{}', H('DescribeKey'), 'ValidationException', 400],
      ['{"KeyId":"arn:aws:kms:eu-west-1:999999999999:key/00000000-0000-0000-0000-000000000000"}', H('DescribeKey'), 'NotFoundException', 400],
      ['{"CiphertextBlob":"!!!not base64"}', H('Decrypt'), 'SerializationException', 400],
      ['{"CiphertextBlob":"AAAA","EncryptionContext":{"a":1}}', H('Decrypt'), 'SerializationException', 400],
      ['{"CiphertextBlob":"AAAA","EncryptionContext":[]}', H('Decrypt'), 'SerializationException', 400],
      ['{"CiphertextBlob":"AAAA"}', H('Decrypt'), 'InvalidCiphertextException', 400],
      ['{"NumberOfBytes":32,"Recipient":"x"}', H('GenerateRandom'), 'SerializationException', 400],
      ['{"NumberOfBytes":32,"Recipient":{"AttestationDocument":"AAAA"}}', H('GenerateRandom'), 'ValidationException', 400],
      ['{"NumberOfBytes":1.5}', H('GenerateRandom'), 'SerializationException', 400],
      ['{"Policy":"{\\"Statement\\":{\\"Effect\\":\\"Maybe\\"}}"}', H('CreateKey'), 'MalformedPolicyDocumentException', 400],
      ['{"KeySpec":"RSA_2048"}', H('CreateKey'), 'UnsupportedOperationException', 400],
      ['{"AliasName":"alias/aws/x","TargetKeyId":"x"}', H('CreateAlias'), 'InvalidAliasNameException', 400],
      ['{"AliasName":"noprefix","TargetKeyId":"x"}', H('CreateAlias'), 'ValidationException', 400],
    ];
    for (const [body, headers, type, status] of cases) {
      const r = await raw(body, headers);
      expect({ body: String(body), type: r.json.__type, status: r.status }).toEqual({ body: String(body), type, status });
    }
    // Refused on its declared length, before the body is read (so before it could be authenticated).
    const big = await sendRaw(sim.url, { method: 'POST', path: '/', headers: { host: new URL(sim.url).host, ...H('ListKeys') }, body: Buffer.alloc(1024 * 1024 + 10, 0x20) });
    expect(big).toMatchObject({ status: 413, json: { __type: 'SerializationException' } });
    // Chunked (no content-length): the bound is enforced while reading.
    const chunked = await new Promise<number>((resolve, reject) => {
      const u = new URL(sim.url);
      const r = request({ host: u.hostname, port: u.port, method: 'POST', path: '/', headers: { ...H('ListKeys'), 'transfer-encoding': 'chunked' }, timeout: 5000 }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      r.on('error', () => resolve(-1));
      const piece = Buffer.alloc(64 * 1024, 0x20);
      let sent = 0;
      const pump = (): void => {
        while (sent < 2 * 1024 * 1024) {
          sent += piece.length;
          if (!r.write(piece)) {
            r.once('drain', pump);
            return;
          }
        }
        r.end();
      };
      pump();
      setTimeout(() => reject(new Error('hang')), 8000).unref();
    });
    expect([413, -1]).toContain(chunked);
    const get = await raw('', {}, 'GET');
    expect(get.json.__type).toBe('UnknownOperationException');
    // Unsigned, the same requests are refused before anything else is looked at.
    const unsigned = await sendRaw(sim.url, { method: 'POST', path: '/', headers: { host: new URL(sim.url).host, ...H('DeleteEverything') }, body: '{}' });
    expect(unsigned.json.__type).toBe('MissingAuthenticationTokenException');
    expect((await kms.send(new ListKeysCommand({}))).Keys!.length).toBeGreaterThan(0);
  });

  it('the Host header must name the simulator: anything else is refused (403 AccessDeniedException) before the body is used', async () => {
    const before = (await kms.send(new ListKeysCommand({ Limit: 1000 }))).Keys!.length;
    const send = (headers: Record<string, string>, setHost: boolean) =>
      new Promise<{ status: number; json: { __type?: string }; connection: string | undefined }>((resolve, reject) => {
        const u = new URL(sim.url);
        const r = request({ host: u.hostname, port: u.port, method: 'POST', path: '/', setHost, headers: { ...H('CreateKey'), ...headers }, timeout: 5000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString() || '{}'), connection: res.headers.connection }));
        });
        r.on('error', reject);
        r.end('{"Description":"made through a rebinding page"}');
      });
    for (const host of ['evil.example', `evil.example:${sim.port}`, `127.0.0.1:${sim.port + 1}`, `127.0.0.1.nip.io:${sim.port}`, `0.0.0.0:${sim.port}`]) {
      const r = await send({ host }, false);
      expect({ host, status: r.status, type: r.json.__type, connection: r.connection }).toEqual({ host, status: 403, type: 'AccessDeniedException', connection: 'close' });
    }
    const none = await send({}, false);
    expect([none.status, none.json.__type]).toEqual([403, 'AccessDeniedException']);
    // No key was created by any of them; the same request with the right Host works.
    expect((await kms.send(new ListKeysCommand({ Limit: 1000 }))).Keys!.length).toBe(before);
    const signed = (host: string) => signedSend(sim.url, { method: 'POST', path: '/', headers: { ...H('CreateKey'), host, 'content-length': '2' }, body: '{}' }, sim.credentials);
    expect((await signed(`127.0.0.1:${sim.port}`)).status).toBe(200);
    expect((await signed(`LocalHost:${sim.port}`)).status).toBe(200);
    // A signature does not make a foreign Host acceptable.
    expect((await signed(`evil.example:${sim.port}`)).status).toBe(403);
  });

  it('hostAllowed: loopback names and the configured host with the bound port; IP literals too when bound to a wildcard', () => {
    const yes: [string, string, number][] = [
      ['127.0.0.1:4566', '127.0.0.1', 4566],
      ['localhost:4566', '127.0.0.1', 4566],
      ['LOCALHOST:4566', '127.0.0.1', 4566],
      ['[::1]:4566', '127.0.0.1', 4566],
      ['127.0.0.5:4566', '127.0.0.5', 4566],
      ['[::1]:4566', '::1', 4566],
      ['127.0.0.1', '127.0.0.1', 80],
      ['127.0.0.1:4566', '0.0.0.0', 4566],
      ['192.168.1.5:4566', '0.0.0.0', 4566],
      ['[fe80::1]:4566', '::', 4566],
      ['localhost:4566', '::', 4566],
    ];
    const no: [string | undefined, string, number][] = [
      [undefined, '127.0.0.1', 4566],
      ['', '127.0.0.1', 4566],
      ['127.0.0.1', '127.0.0.1', 4566],
      ['127.0.0.1:4567', '127.0.0.1', 4566],
      ['127.0.0.2:4566', '127.0.0.1', 4566],
      ['evil.example:4566', '127.0.0.1', 4566],
      ['localhost.:4566', '127.0.0.1', 4566],
      ['user@127.0.0.1:4566', '127.0.0.1', 4566],
      ['127.0.0.1:4566:4566', '127.0.0.1', 4566],
      ['127.0.0.1:4566 ', '127.0.0.1', 4566],
      ['[::1]', '::1', 4566],
      ['evil.example:4566', '0.0.0.0', 4566],
      ['[192.168.1.5]:4566', '0.0.0.0', 4566],
      ['fe80::1:4566', '::', 4566],
      ['192.168.1.5:80', '0.0.0.0', 4566],
    ];
    for (const [h, c, p] of yes) expect(hostAllowed(h, c, p), `${h} ${c} ${p}`).toBe(true);
    for (const [h, c, p] of no) expect(hostAllowed(h, c, p), `${h} ${c} ${p}`).toBe(false);
  });

  it('allowHosts adds exact Host values (a TLS front end the caller runs)', async () => {
    const t = tempDir();
    const s2 = await startKmsSimulator({ stateDir: t.dir, now: () => NOW, allowHosts: ['KMS.us-east-1.amazonaws.com'] });
    try {
      const status = async (host: string) =>
        (await signedSend(s2.url, { method: 'POST', path: '/', headers: { ...H('ListKeys'), host, 'content-length': '2' }, body: '{}' }, s2.credentials)).status;
      expect(await status('kms.us-east-1.amazonaws.com')).toBe(200);
      expect(await status('kms.eu-west-1.amazonaws.com')).toBe(403);
    } finally {
      await s2.close();
      t.cleanup();
    }
  });

  it('arbitrary JSON bodies for every operation give 200 or a 4xx AWS error, never a 500', async () => {
    const ops = ['CreateKey', 'DescribeKey', 'ListKeys', 'CreateAlias', 'ListAliases', 'GetKeyPolicy', 'PutKeyPolicy', 'Encrypt', 'Decrypt', 'ReEncrypt', 'GenerateDataKey', 'GenerateDataKeyWithoutPlaintext', 'GenerateRandom'];
    const field = fc.constantFrom('KeyId', 'Plaintext', 'CiphertextBlob', 'EncryptionContext', 'Recipient', 'NumberOfBytes', 'KeySpec', 'Policy', 'AliasName', 'TargetKeyId', 'Limit', 'Marker', 'DestinationKeyId', 'GrantTokens', 'DryRun', '__proto__', 'constructor');
    const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('AAAA', 'alias/x', '{}', 'arn:aws:kms:us-east-1:111122223333:key/x'), fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ops), fc.dictionary(field, value, { maxKeys: 5 }), async (op, body) => {
        const r = await raw(JSON.stringify(body), H(op));
        expect(r.status === 200 || (r.status >= 400 && r.status < 500)).toBe(true);
        if (r.status !== 200) expect(typeof r.json.__type).toBe('string');
      }),
      { numRuns: 150 },
    );
  });
});
