/**
 * `npm run bench -- kms-sim`: what the local KMS simulator costs per request through the real
 * @aws-sdk/client-kms over loopback. Baseline: GenerateRandom (one HTTP round trip, no key, no
 * policy). Then Decrypt (blob + policy), Decrypt with a Recipient (document verification + CMS
 * envelope), CreateKey (sealed state written atomically), and 16 concurrent Decrypts (client and server share
 * one process and its CPU here, so that figure is a floor).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, GenerateRandomCommand, KMSClient } from '@aws-sdk/client-kms';
import { createNitroSimCa, issueNitroDocument } from '../../attestation/sim/nitro.js';
import { buildEnclaveKeyPolicy } from '../../host/key-policy.js';
import { startKmsSimulator } from '../../host/kms-sim/server.js';
import { fmt, median } from './_stats.js';

async function timeAsync(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

export async function main(): Promise<void> {
  const now = new Date();
  const dir = await mkdtemp(join(tmpdir(), 'ek-bench-kmssim-'));
  const ca = await createNitroSimCa({ now });
  const sim = await startKmsSimulator({ stateDir: dir, now: () => now, trustSimulator: true, simulatorRoots: [ca.rootDer] });
  // Signed (SigV4) with the account root's key from the state folder, on the simulator's fixed clock.
  const kms = new KMSClient({ region: 'us-east-1', endpoint: sim.url, credentials: sim.credentials, maxAttempts: 1, systemClockOffset: now.getTime() - Date.now() });
  const clients: KMSClient[] = [];
  try {
    const pcr0 = new Uint8Array(48).fill(7);
    const spki = new Uint8Array(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }));
    const doc = await issueNitroDocument(ca, { moduleId: 'i-0bench-enc0bench', timestamp: now, pcrs: new Map([[0, pcr0]]), publicKey: spki });
    // The enclave key's three principals sign as themselves: the admin creates it, the data owner
    // encrypts under it, the instance role decrypts with a Recipient.
    const as = async (role: string) =>
      new KMSClient({ region: 'us-east-1', endpoint: sim.url, credentials: await sim.addPrincipal({ principal: `arn:aws:iam::111122223333:role/${role}`, session: true }), maxAttempts: 1, systemClockOffset: now.getTime() - Date.now() });
    const [admin, owner, parent] = [await as('key-admin'), await as('data-owner'), await as('enclave-parent')];
    clients.push(admin, owner, parent);
    const keyId = (await admin.send(new CreateKeyCommand({ Policy: buildEnclaveKeyPolicy({ account: '111122223333', pcrs: new Map([[0, pcr0]]), keyAdmin: 'arn:aws:iam::111122223333:role/key-admin', dataOwner: 'arn:aws:iam::111122223333:role/data-owner', role: 'arn:aws:iam::111122223333:role/enclave-parent' }) }))).KeyMetadata!.KeyId!;
    const plainKey = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const ctx = { dataset: 'bench' };
    const blobPlain = (await kms.send(new EncryptCommand({ KeyId: plainKey, Plaintext: new Uint8Array(32), EncryptionContext: ctx }))).CiphertextBlob!;
    const blobEnclave = (await owner.send(new EncryptCommand({ KeyId: keyId, Plaintext: new Uint8Array(32), EncryptionContext: ctx }))).CiphertextBlob!;

    // Warm up the connection and the JIT before measuring.
    await timeAsync(30, () => kms.send(new GenerateRandomCommand({ NumberOfBytes: 32 })));
    const N = 200;
    const base = median(await timeAsync(N, () => kms.send(new GenerateRandomCommand({ NumberOfBytes: 32 }))));
    const dec = median(await timeAsync(N, () => kms.send(new DecryptCommand({ CiphertextBlob: blobPlain, EncryptionContext: ctx }))));
    const rcpt = median(
      await timeAsync(N, () =>
        parent.send(new DecryptCommand({ CiphertextBlob: blobEnclave, EncryptionContext: ctx, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: doc } })),
      ),
    );
    const create = median(await timeAsync(50, () => kms.send(new CreateKeyCommand({}))));
    const C = 16;
    const rounds = 40;
    // Open the C sockets first so the figure is steady-state, not connection setup.
    await Promise.all(Array.from({ length: C }, () => kms.send(new DecryptCommand({ CiphertextBlob: blobPlain, EncryptionContext: ctx }))));
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++)
      await Promise.all(Array.from({ length: C }, () => kms.send(new DecryptCommand({ CiphertextBlob: blobPlain, EncryptionContext: ctx }))));
    const concMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const perSec = (C * rounds) / (concMs / 1000);

    console.log(`GenerateRandom (baseline round trip): median ${fmt(base, 2)} ms`);
    console.log(`Decrypt:                              median ${fmt(dec, 2)} ms`);
    console.log(`Decrypt + Recipient (verify + CMS):   median ${fmt(rcpt, 2)} ms`);
    console.log(`CreateKey (sealed, atomic write):     median ${fmt(create, 2)} ms`);
    console.log(`Decrypt, ${C} concurrent:              ${fmt(perSec, 0)} requests/s`);
    console.log(
      `RESULT kms-sim baseline_ms=${fmt(base, 2)} decrypt_ms=${fmt(dec, 2)} decrypt_recipient_ms=${fmt(rcpt, 2)} create_key_ms=${fmt(create, 2)} ` +
        `decrypt_vs_baseline=${fmt(dec / base, 2)} recipient_vs_baseline=${fmt(rcpt / base, 2)} concurrent_decrypt_per_s=${fmt(perSec, 0)}`,
    );
  } finally {
    kms.destroy();
    for (const c of clients) c.destroy();
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  }
}
