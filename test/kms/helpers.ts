/** Shared by the KMS simulator tests: a simulated enclave (CA + RSA recipient key) and SDK clients. */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KMSClient } from '@aws-sdk/client-kms';
import { createNitroSimCa, issueNitroDocument, type NitroSimCa } from '../../attestation/sim/nitro.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export const NOW = new Date('2026-06-01T12:00:00Z');

/** Credentials in the AWS SDK's shape (a SimCredentials, or a tampered copy of one). */
export interface TestCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * An SDK client for a simulator: the root's credentials unless others are given, and the client's
 * clock set to `now` (the simulators in these tests run on the fixed NOW; SigV4 allows 15 minutes).
 */
export function kmsClient(target: { url: string; credentials: TestCredentials }, credentials: TestCredentials = target.credentials, now: Date = NOW): KMSClient {
  return new KMSClient({
    region: 'us-east-1',
    endpoint: target.url,
    // A copy: the SDK annotates the credential object it is given.
    credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey, ...(credentials.sessionToken !== undefined ? { sessionToken: credentials.sessionToken } : {}) },
    maxAttempts: 1,
    systemClockOffset: now.getTime() - Date.now(),
  });
}

export function tempDir(prefix = 'enclavekit-kms-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const pcr = (fill: number): Uint8Array => new Uint8Array(48).fill(fill);

export interface SimEnclave {
  ca: NitroSimCa;
  privateKey: KeyObject;
  spki: Uint8Array;
  document(pcrs: Map<number, Uint8Array>, publicKey?: Uint8Array | null): Promise<Uint8Array>;
}

let shared: Promise<{ ca: NitroSimCa; privateKey: KeyObject; spki: Uint8Array }> | undefined;

export async function simEnclave(): Promise<SimEnclave> {
  shared ??= (async () => {
    const ca = await createNitroSimCa({ now: NOW });
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    return { ca, privateKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) };
  })();
  const s = await shared;
  return {
    ...s,
    document: (pcrs, publicKey) =>
      issueNitroDocument(s.ca, { moduleId: 'i-0123456789abcdef0-enc0123456789abcdef', timestamp: NOW, pcrs, publicKey: publicKey === undefined ? s.spki : publicKey }),
  };
}
