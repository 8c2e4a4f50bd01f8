/**
 * Principals of the KMS simulator: the root's shared-credentials file, added principals, and key
 * policies evaluated for the caller who signed, through the real @aws-sdk/client-kms.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CreateKeyCommand, DecryptCommand, DescribeKeyCommand, EncryptCommand, GenerateDataKeyCommand, KMSClient, ListKeysCommand, PutKeyPolicyCommand, type KMSClient as Client } from '@aws-sdk/client-kms';
import { fromIni } from '@aws-sdk/credential-providers';
import { startKmsSimulator, type KmsSimulator } from '../../host/kms-sim/server.js';
import { addSimulatorPrincipal, ensureRootCredentials, CREDENTIALS_FILE, CREDENTIALS_PROFILE, PRINCIPALS_DIR, type SimCredentials } from '../../host/kms-sim/principals.js';
import { buildEnclaveKeyPolicy } from '../../host/key-policy.js';
import { openCiphertextForRecipient } from '../../enclave/cms.js';
import { NOW, kmsClient, pcr, simEnclave, tempDir, type SimEnclave } from './helpers.js';

const ACCT = '111122223333';
const ADMIN = `arn:aws:iam::${ACCT}:role/kms-admin`;
const OWNER = `arn:aws:iam::${ACCT}:role/data-owner`;
const ROLE = `arn:aws:iam::${ACCT}:role/enclave-parent`;
const GOOD = pcr(0x5a);

let tmp: ReturnType<typeof tempDir>;
let sim: KmsSimulator;
let enclave: SimEnclave;
const logs: string[] = [];
const open: Client[] = [];
const as = (c: SimCredentials): Client => {
  const k = kmsClient(sim, c);
  open.push(k);
  return k;
};

async function errorOf(p: Promise<unknown>): Promise<{ name: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { name: (e as Error).name, message: (e as Error).message };
  }
  return { name: 'no error', message: '' };
}

beforeAll(async () => {
  tmp = tempDir();
  enclave = await simEnclave();
  sim = await startKmsSimulator({ stateDir: tmp.dir, now: () => NOW, trustSimulator: true, simulatorRoots: [enclave.ca.rootDer], log: (l) => logs.push(l) });
});

afterAll(async () => {
  for (const c of open) c.destroy();
  await sim?.close();
  tmp?.cleanup();
});

describe('the state folder\'s credentials', () => {
  it('the root\'s key is written on first use as an AWS shared-credentials file (0600, profile enclavekit-sim), in a 0700 folder', () => {
    const path = join(tmp.dir, CREDENTIALS_FILE);
    expect(sim.credentialsFile).toBe(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(tmp.dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(tmp.dir, PRINCIPALS_DIR)).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(join(tmp.dir, PRINCIPALS_DIR))) expect(statSync(join(tmp.dir, PRINCIPALS_DIR, f)).mode & 0o777).toBe(0o600);
    const text = readFileSync(path, 'utf8');
    const c = sim.credentials;
    expect(text).toContain(`[${CREDENTIALS_PROFILE}]\naws_access_key_id = ${c.accessKeyId}\naws_secret_access_key = ${c.secretAccessKey}\n`);
    expect(c).toMatchObject({ principal: `arn:aws:iam::${ACCT}:root`, account: ACCT });
    expect(c.accessKeyId).toMatch(/^AKIA[A-Z2-7]{16}$/);
    expect(c.secretAccessKey).toHaveLength(40);
    expect(c.sessionToken).toBeUndefined();
  });

  it('the SDK\'s fromIni reads it unchanged, and a client configured only with it works', async () => {
    const provider = fromIni({ profile: CREDENTIALS_PROFILE, filepath: sim.credentialsFile, configFilepath: join(tmp.dir, 'no-config'), ignoreCache: true });
    const c = await provider();
    expect([c.accessKeyId, c.secretAccessKey, c.sessionToken]).toEqual([sim.credentials.accessKeyId, sim.credentials.secretAccessKey, undefined]);
    const k = new KMSClient({ region: 'us-east-1', endpoint: sim.url, credentials: provider, maxAttempts: 1, systemClockOffset: NOW.getTime() - Date.now() });
    open.push(k);
    expect((await k.send(new ListKeysCommand({}))).Keys).toBeInstanceOf(Array);
  });

  it('a restart keeps the same root key; concurrent first uses of a fresh folder agree on one', async () => {
    const again = await startKmsSimulator({ stateDir: tmp.dir, now: () => NOW });
    expect(again.credentials.accessKeyId).toBe(sim.credentials.accessKeyId);
    await again.close();
    const t = tempDir();
    try {
      const all = await Promise.all(Array.from({ length: 6 }, () => ensureRootCredentials(t.dir, { accountId: ACCT })));
      expect(new Set(all.map((c) => c.accessKeyId)).size).toBe(1);
      // The losers' keys were removed: one principal file, the root's.
      expect(readdirSync(join(t.dir, PRINCIPALS_DIR))).toEqual([`${all[0]!.accessKeyId}.json`]);
    } finally {
      t.cleanup();
    }
  });

  it('a principal file readable by others is refused (the request fails, the server keeps serving)', async () => {
    const c = await sim.addPrincipal({ principal: `arn:aws:iam::${ACCT}:user/careless` });
    chmodSync(join(tmp.dir, PRINCIPALS_DIR, `${c.accessKeyId}.json`), 0o644);
    expect((await errorOf(as(c).send(new ListKeysCommand({})))).name).toBe('KMSInternalException');
    expect(logs.some((l) => l.includes('internal error ERR_SIMULATOR_STATE'))).toBe(true);
    expect((await as(sim.credentials).send(new ListKeysCommand({}))).Keys).toBeInstanceOf(Array);
  });

  it('addSimulatorPrincipal refuses what IAM would not issue (TypeError / RangeError)', async () => {
    const bad: [Parameters<typeof addSimulatorPrincipal>[1], ErrorConstructor][] = [
      [{ principal: ROLE }, TypeError], // a role has only sessions
      [{ principal: `arn:aws:sts::${ACCT}:assumed-role/x/y` }, TypeError],
      [{ principal: '*' }, TypeError],
      [{ principal: ACCT }, TypeError],
      [{ principal: 'arn:aws:iam::12:user/x' }, TypeError],
      [{ principal: `arn:aws:iam::${ACCT}:group/x` }, TypeError],
      [{ principal: `arn:aws:iam::${ACCT}:user/x`, expiresInSeconds: 60 }, TypeError],
      [{ principal: ROLE, session: true, expiresInSeconds: 0 }, RangeError],
      [{ principal: ROLE, session: true, expiresInSeconds: 129_601 }, RangeError],
      [{ principal: ROLE, session: true, sessionName: 'a b' }, TypeError],
    ];
    for (const [o, E] of bad) await expect(addSimulatorPrincipal(tmp.dir, o), JSON.stringify(o)).rejects.toBeInstanceOf(E);
    const s = await addSimulatorPrincipal(tmp.dir, { principal: `arn:aws:iam::${ACCT}:role/path/to/worker`, session: true, sessionName: 'job-1', now: NOW, expiresInSeconds: 60 });
    expect(s).toMatchObject({ principal: `arn:aws:sts::${ACCT}:assumed-role/worker/job-1`, account: ACCT, expiration: new Date(NOW.getTime() + 60_000) });
    expect(s.sessionToken!.length).toBeGreaterThan(100);
  });
});

describe('key policies are evaluated for the caller who signed', () => {
  let keyArn: string;
  let admin: SimCredentials;
  let owner: SimCredentials;
  let role: SimCredentials;
  let blob: Uint8Array;
  const ctx = { dataset: 'customers' };
  const recipient = async (pcr0 = GOOD) => ({ KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' as const, AttestationDocument: await enclave.document(new Map([[0, pcr0]])) });

  beforeAll(async () => {
    admin = await sim.addPrincipal({ principal: ADMIN, session: true });
    owner = await sim.addPrincipal({ principal: OWNER, session: true });
    role = await sim.addPrincipal({ principal: ROLE, session: true, sessionName: 'i-0abc' });
    const policy = buildEnclaveKeyPolicy({ pcrs: new Map([[0, GOOD]]), keyAdmin: ADMIN, dataOwner: OWNER, role: ROLE, account: ACCT });
    keyArn = (await as(admin).send(new CreateKeyCommand({ Policy: policy }))).KeyMetadata!.Arn!;
    blob = (await as(owner).send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256', EncryptionContext: ctx }))).CiphertextBlob!;
  });

  it('only the data owner generates data keys (without a Recipient)', async () => {
    const g = await as(owner).send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256', EncryptionContext: ctx }));
    expect(g.Plaintext).toHaveLength(32);
    for (const who of [admin, role, sim.credentials]) {
      const e = await errorOf(as(who).send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256', EncryptionContext: ctx })));
      expect(e.name).toBe('AccessDeniedException');
      expect(e.message).toContain(`User: ${who.principal} is not authorized to perform: kms:GenerateDataKey on resource: ${keyArn}`);
    }
    // Another session of the owner's role is the owner too; another role is not.
    const owner2 = await sim.addPrincipal({ principal: OWNER, session: true, sessionName: 'laptop' });
    expect((await as(owner2).send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256' }))).Plaintext).toHaveLength(32);
    const stranger = await sim.addPrincipal({ principal: `arn:aws:iam::${ACCT}:role/data-owner-2`, session: true });
    expect((await errorOf(as(stranger).send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256' })))).name).toBe('AccessDeniedException');
  });

  it('only the instance role decrypts, and only with an attested Recipient of the right image', async () => {
    const d = await as(role).send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx, Recipient: await recipient() }));
    expect(openCiphertextForRecipient(d.CiphertextForRecipient!, enclave.privateKey)).toHaveLength(32);
    expect(logs).toContain(`Decrypt 200 arn:aws:sts::${ACCT}:assumed-role/enclave-parent/i-0abc`);
    // The role without attestation, or for another image: denied.
    expect((await errorOf(as(role).send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx })))).name).toBe('AccessDeniedException');
    expect((await errorOf(as(role).send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx, Recipient: await recipient(pcr(0x01)) })))).name).toBe('AccessDeniedException');
    // The right attestation, sent by anyone but the role: denied.
    for (const who of [owner, admin, sim.credentials]) expect((await errorOf(as(who).send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx, Recipient: await recipient() })))).name).toBe('AccessDeniedException');
    // The role may not create plaintext data keys either (GenerateDataKey needs a Recipient for it).
    expect((await errorOf(as(role).send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256' })))).name).toBe('AccessDeniedException');
    const g = await as(role).send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256', Recipient: await recipient() }));
    expect(g.Plaintext).toBeUndefined();
  });

  it('the key admin manages the key and cannot use it', async () => {
    expect((await as(admin).send(new DescribeKeyCommand({ KeyId: keyArn }))).KeyMetadata!.Arn).toBe(keyArn);
    expect((await errorOf(as(admin).send(new EncryptCommand({ KeyId: keyArn, Plaintext: new Uint8Array(4) })))).name).toBe('AccessDeniedException');
    expect((await errorOf(as(role).send(new PutKeyPolicyCommand({ KeyId: keyArn, Policy: '{}' })))).name).toBe('AccessDeniedException');
  });

  it('an IAM user with long-term keys and a role of another account, each named in a policy', async () => {
    const bob = `arn:aws:iam::${ACCT}:user/bob`;
    const foreignRole = 'arn:aws:iam::444455556666:role/parent';
    const policy = JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { AWS: bob }, Action: 'kms:*', Resource: '*' },
        { Effect: 'Allow', Principal: { AWS: foreignRole }, Action: ['kms:Encrypt', 'kms:DescribeKey'], Resource: '*' },
      ],
    });
    const bobKeys = await sim.addPrincipal({ principal: bob });
    const k = (await as(bobKeys).send(new CreateKeyCommand({ Policy: policy }))).KeyMetadata!;
    expect((await as(bobKeys).send(new EncryptCommand({ KeyId: k.KeyId, Plaintext: new Uint8Array(4) }))).KeyId).toBe(k.Arn);
    const foreign = await sim.addPrincipal({ principal: foreignRole, session: true });
    expect(foreign).toMatchObject({ account: '444455556666', principal: 'arn:aws:sts::444455556666:assumed-role/parent/enclavekit-sim' });
    // Across accounts a key is named by its ARN, as in AWS; a bare id is looked up in the caller's account.
    expect((await as(foreign).send(new EncryptCommand({ KeyId: k.Arn, Plaintext: new Uint8Array(4) }))).KeyId).toBe(k.Arn);
    expect((await errorOf(as(foreign).send(new EncryptCommand({ KeyId: k.KeyId, Plaintext: new Uint8Array(4) })))).name).toBe('NotFoundException');
    expect((await errorOf(as(foreign).send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx })))).name).toBe('AccessDeniedException');
    // The simulator holds account 111122223333's keys only: no CreateKey / ListKeys for another account.
    expect((await errorOf(as(foreign).send(new CreateKeyCommand({})))).name).toBe('AccessDeniedException');
    expect((await errorOf(as(foreign).send(new ListKeysCommand({})))).name).toBe('AccessDeniedException');
  });

  it('the default key policy (account root) lets every principal of the account, and no other account', async () => {
    const k = (await as(admin).send(new CreateKeyCommand({}))).KeyMetadata!;
    for (const who of [admin, owner, role, sim.credentials]) expect((await as(who).send(new EncryptCommand({ KeyId: k.Arn, Plaintext: new Uint8Array(1) }))).KeyId).toBe(k.Arn);
    const foreign = await sim.addPrincipal({ principal: 'arn:aws:iam::444455556666:user/eve' });
    expect((await errorOf(as(foreign).send(new EncryptCommand({ KeyId: k.Arn, Plaintext: new Uint8Array(1) })))).name).toBe('AccessDeniedException');
  });
});
