/**
 * The simulator stack's principals: distinct key admin, data owner and instance role, their
 * credentials from the stack's state folder, and a key policy the SigV4-checking simulator enforces.
 * (No worker here: the end-to-end tests run the whole pipeline.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DescribeKeyCommand, GenerateDataKeyCommand, GetKeyPolicyCommand, KMSClient } from '@aws-sdk/client-kms';
import { startSimStack, SIM_STACK_PRINCIPALS, SIM_STACK_SESSION_SECONDS, type SimStack } from '../../host/sim-stack.js';

let stack: SimStack;
const logs: string[] = [];
const clients: KMSClient[] = [];
const as = async (who: Parameters<SimStack['credentials']>[0]) => {
  const c = new KMSClient({ region: 'us-east-1', endpoint: stack.kmsUrl, credentials: await stack.credentials(who), maxAttempts: 1 });
  clients.push(c);
  return c;
};
const errorName = (p: Promise<unknown>) => p.then(() => 'no error', (e: Error) => e.name);

beforeAll(async () => {
  stack = await startSimStack({ log: (l) => logs.push(l) });
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  await stack?.close();
});

describe('sim stack principals', () => {
  it('credentials(who): role sessions of three distinct roles, and the root; the same keys on every call', async () => {
    const t0 = Date.now();
    const owner = await stack.credentials();
    expect(owner.principal).toBe('arn:aws:sts::111122223333:assumed-role/enclavekit-sim-data-owner/enclavekit-sim');
    expect((await stack.credentials('data-owner')).accessKeyId).toBe(owner.accessKeyId);
    expect((await stack.credentials('key-admin')).principal).toBe('arn:aws:sts::111122223333:assumed-role/enclavekit-sim-key-admin/enclavekit-sim');
    const role = await stack.credentials('role');
    expect(role.principal).toBe('arn:aws:sts::111122223333:assumed-role/enclavekit-sim-parent/enclavekit-sim');
    expect(role.sessionToken).toBeDefined();
    expect(Math.abs(role.expiration!.getTime() - (t0 + SIM_STACK_SESSION_SECONDS * 1000))).toBeLessThan(60_000);
    expect((await stack.credentials('root')).principal).toBe('arn:aws:iam::111122223333:root');
    expect(stack.principals).toEqual(SIM_STACK_PRINCIPALS);
    expect(new Set(Object.values(stack.principals)).size).toBe(3);
    // Made before any KMS runs, in the stack's private state folder.
    expect(stack.kms).toBeUndefined();
    expect(statSync(stack.stateDir).mode & 0o777).toBe(0o700);
    await expect(stack.credentials('nobody' as 'root')).rejects.toBeInstanceOf(TypeError);
  });

  it('startKms without a worker creates the simulator CA; createEnclaveKey signs as the key admin with a policy naming the three', async () => {
    await stack.startKms();
    expect(existsSync(join(stack.stateDir, 'sim-ca.json'))).toBe(true);
    const keyId = await stack.createEnclaveKey(new Uint8Array(48).fill(3));
    expect(logs).toContain(`[kms] CreateKey 200 arn:aws:sts::111122223333:assumed-role/enclavekit-sim-key-admin/enclavekit-sim`);
    const admin = await as('key-admin');
    const policy = JSON.parse((await admin.send(new GetKeyPolicyCommand({ KeyId: keyId }))).Policy!) as { Statement: { Sid: string; Principal: unknown }[] };
    const principal = (sid: string) => policy.Statement.find((s) => s.Sid === sid)?.Principal;
    expect(principal('KeyAdministration')).toEqual({ AWS: SIM_STACK_PRINCIPALS.keyAdmin });
    expect(principal('DataOwnerCreatesDataKeys')).toEqual({ AWS: SIM_STACK_PRINCIPALS.dataOwner });
    expect(principal('EnclaveImageDecrypts')).toEqual({ AWS: SIM_STACK_PRINCIPALS.role });
    // Enforced per caller: only the data owner generates plaintext data keys.
    expect((await (await as('data-owner')).send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' }))).Plaintext).toHaveLength(32);
    for (const who of ['role', 'key-admin', 'root'] as const) expect(await errorName((await as(who)).send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' }))), who).toBe('AccessDeniedException');
    expect(await errorName((await as('root')).send(new DescribeKeyCommand({ KeyId: keyId })))).toBe('AccessDeniedException');
  });
});
