/**
 * `npm run bench -- recipient-key`: what the worker's Recipient key size costs. Key generation
 * (once per worker), the RSA-OAEP unwrap of a CiphertextForRecipient (once per data key), and a whole
 * EnclaveKms Decrypt with a Recipient against the loopback KMS simulator (document, SDK, HTTP, CMS).
 */
import { createPublicKey } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { openCiphertextForRecipient } from '../../enclave/cms.js';
import { generateRecipientKeyPair, type RecipientKeyBits } from '../../enclave/keys.js';
import { EnclaveKms } from '../../enclave/kms-client.js';
import { simulatedBootPcrs } from '../../enclave/platform/sim-image.js';
import { SimNitroPlatform } from '../../enclave/platform/sim-nitro.js';
import { openSimulatorState } from '../../enclave/sim-state.js';
import { buildCiphertextForRecipient } from '../../host/kms-sim/cms.js';
import { startKmsSimulator } from '../../host/kms-sim/server.js';
import { buildEnclaveKeyPolicy } from '../../host/key-policy.js';
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

async function keygenAndUnwrap(bits: RecipientKeyBits, n: number): Promise<{ keygenMs: number; unwrapUs: number }> {
  const keygen = await timeAsync(n, () => generateRecipientKeyPair(bits));
  const kp = await generateRecipientKeyPair(bits);
  const env = buildCiphertextForRecipient(new Uint8Array(32), kp.publicKeySpki, createPublicKey(kp.privateKey));
  const unwrap = await timeAsync(50, async () => openCiphertextForRecipient(env, kp.privateKey));
  return { keygenMs: median(keygen), unwrapUs: median(unwrap) * 1000 };
}

export async function main(): Promise<void> {
  const r2048 = await keygenAndUnwrap(2048, 10);
  console.log(`RSA-2048: keygen median ${fmt(r2048.keygenMs)} ms, unwrap median ${fmt(r2048.unwrapUs)} us`);
  const r4096 = await keygenAndUnwrap(4096, 4);
  console.log(`RSA-4096: keygen median ${fmt(r4096.keygenMs)} ms, unwrap median ${fmt(r4096.unwrapUs)} us`);

  const now = new Date();
  const dir = await mkdtemp(join(tmpdir(), 'ek-bench-kms-'));
  const state = await openSimulatorState(join(dir, 'sim'), { now });
  const kms = await startKmsSimulator({
    stateDir: join(dir, 'kms'),
    port: 0,
    trustSimulator: true,
    simulatorRoots: [state.nitroRootDer],
  });
  try {
    const port = Number(new URL(kms.url).port);
    const imageId = new Uint8Array(48).fill(1);
    // Each principal of the key policy signs as itself (role sessions of the simulator's state).
    const session = (role: string) => kms.addPrincipal({ principal: `arn:aws:iam::111122223333:role/${role}`, session: true });
    const admin = new KMSClient({ region: 'us-east-1', endpoint: kms.url, credentials: await session('key-admin') });
    const owner = new KMSClient({ region: 'us-east-1', endpoint: kms.url, credentials: await session('data-owner') });
    const parentRole = await session('enclave-parent');
    const policy = buildEnclaveKeyPolicy({ account: '111122223333', pcrs: new Map([[0, simulatedBootPcrs({ imageId }).get(0)!]]), keyAdmin: 'arn:aws:iam::111122223333:role/key-admin', dataOwner: 'arn:aws:iam::111122223333:role/data-owner', role: 'arn:aws:iam::111122223333:role/enclave-parent' });
    const keyId = (await admin.send(new CreateKeyCommand({ Policy: policy }))).KeyMetadata!.KeyId!;
    const ctx = { 'enclavekit:dataset': 'bench' };
    const blob = (await owner.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: ctx }))).CiphertextBlob!;
    admin.destroy();
    owner.destroy();
    const c = new EnclaveKms({
      platform: new SimNitroPlatform({ ca: state.nitroCa, identity: { imageId } }),
      keyPair: await generateRecipientKeyPair(2048),
      region: 'us-east-1',
      endpoint: kms.url,
      allowPlainHttp: true,
      // The parent instance role's session, as the host hands it to the worker.
      credentials: parentRole,
      connect: () =>
        new Promise((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1');
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        }),
    });
    await c.decryptDataKey({ ref: 'k', ciphertextBlob: blob, encryptionContext: ctx });
    const rt = await timeAsync(30, async () => (await c.decryptDataKey({ ref: 'k', ciphertextBlob: blob, encryptionContext: ctx })).fill(0));
    await c.close();
    const kmsMs = median(rt);
    console.log(`EnclaveKms Decrypt with Recipient (RSA-2048, loopback simulator): median ${fmt(kmsMs, 2)} ms`);
    console.log(
      `RESULT recipient-key rsa2048_keygen_ms=${fmt(r2048.keygenMs)} rsa4096_keygen_ms=${fmt(r4096.keygenMs)} ` +
        `keygen_ratio_4096_vs_2048=${fmt(r4096.keygenMs / r2048.keygenMs, 2)} rsa2048_unwrap_us=${fmt(r2048.unwrapUs)} ` +
        `rsa4096_unwrap_us=${fmt(r4096.unwrapUs)} kms_decrypt_recipient_ms=${fmt(kmsMs, 2)}`,
    );
  } finally {
    await kms.close();
    await rm(dir, { recursive: true, force: true });
  }
}
