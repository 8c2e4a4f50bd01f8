// The worker's error frame carries a failure's code and message to the host. Opening a
// CiphertextForRecipient failed with one message when the CBC padding was bad ("could not be
// opened") and another, naming the decrypted length, when the padding was good but the key was not
// 32 bytes: a padding oracle for whoever can alter the KMS answer (plain HTTP to the simulator, the
// host's proxy). Both now read the same.
import 'reflect-metadata';
import { createPublicKey } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolkitError } from '../../attestation/errors.js';
import { generateRecipientKeyPair, type RecipientKeyPair } from '../../enclave/keys.js';
import { EnclaveKms } from '../../enclave/kms-client.js';
import { SimNitroPlatform } from '../../enclave/platform/sim-nitro.js';
import { openSimulatorState, type SimulatorState } from '../../enclave/sim-state.js';
import { buildCiphertextForRecipient } from '../../host/kms-sim/cms.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const NOW = new Date('2026-06-01T12:00:00Z');

let dir: string;
let state: SimulatorState;
let keys: RecipientKeyPair;
const servers: net.Server[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ek-oracle-'));
  state = await openSimulatorState(join(dir, 'sim'), { now: NOW });
  keys = await generateRecipientKeyPair();
});
afterAll(async () => {
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

async function answering(cfr: Uint8Array): Promise<number> {
  const srv = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ KeyId: 'k', CiphertextForRecipient: Buffer.from(cfr).toString('base64') }));
    });
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as net.AddressInfo).port;
}

async function failureFor(cfr: Uint8Array): Promise<ToolkitError> {
  const port = await answering(cfr);
  const c = new EnclaveKms({
    platform: new SimNitroPlatform({ ca: state.nitroCa, identity: { imageId: new Uint8Array(48).fill(0xa) }, now: () => NOW }),
    keyPair: keys,
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${port}`,
    allowPlainHttp: true,
    // This fake KMS checks no SigV4: sign with the placeholder credentials meant for such fakes.
    simulatorPlaceholderCredentials: true,
    maxAttempts: 1,
    connect: () =>
      new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      }),
  });
  try {
    await c.decryptDataKey({ ref: 'k1', ciphertextBlob: new Uint8Array(200).fill(1) });
  } catch (e) {
    if (e instanceof ToolkitError) return e;
    throw e;
  } finally {
    await c.close();
  }
  throw new Error('expected a failure');
}

describe('EnclaveKms: CiphertextForRecipient failures look alike to the host', () => {
  it('good padding with a short key and bad padding give the same code and message', async () => {
    const mine = createPublicKey(keys.privateKey);
    const short = buildCiphertextForRecipient(new Uint8Array(16).fill(9), keys.publicKeySpki, mine);
    const goodPadding = await failureFor(short);
    // Flip the last byte of the ciphertext (the final block): the padding no longer checks.
    const tampered = new Uint8Array(short);
    tampered[tampered.length - 1]! ^= 0x01;
    const badPadding = await failureFor(tampered);

    expect(goodPadding.code).toBe('ERR_KMS_RECIPIENT');
    expect(badPadding.code).toBe('ERR_KMS_RECIPIENT');
    expect(goodPadding.reason).toBe('key_length');
    expect(badPadding.reason).toBe('unwrap');
    expect(goodPadding.message).toBe(badPadding.message);
    expect(goodPadding.message).not.toMatch(/16|bytes/);
  });
});
