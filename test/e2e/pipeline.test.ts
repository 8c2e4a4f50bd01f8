import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { runJob } from '../../host/run.js';
import { connectEnclave } from '../../host/enclave-conn.js';
import { nativeStatus } from '../../native/binding.js';
import { setUp, IMAGE_A, type Fixture } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await setUp(200);
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

describe('pipeline in simulator mode', () => {
  it('runs a job end to end and verifies the attested result', async () => {
    const out = await runJob(fx.baseRun());
    if (!out.ok) throw new Error(`${out.error.code}: ${out.error.message} \n${fx.logs.join('\n')}`);
    expect(out.result.platform).toBe('simulator');
    expect(out.result.counts.records).toBe(200);
    expect(out.result.groups).toHaveLength(4);
    const north = out.result.groups.find((g) => g.key[0] === 'north')!;
    expect(north.count).toBe(50);
    expect(out.verification.pcrs['0']).toBe(Buffer.from(fx.worker.pcr0).toString('hex'));
  });
});

describe('field decryption path', () => {
  it('the worker uses the native batched AES-GCM when built, and node:crypto without the addon', async () => {
    // Without a built addon (allowed outside CI) the first worker is already on the fallback.
    if (nativeStatus().available) expect(fx.logs.some((l) => l.includes('[a] enclave: field decryption: native batched AES-256-GCM'))).toBe(true);
    // Point the addon loader at nothing: the same job runs on the pure Node path.
    const env = { ...process.env, ENCLAVEKIT_NATIVE_PATH: '/nonexistent/enclavekit_native.node', ENCLAVEKIT_REQUIRE_NATIVE: '0' };
    const w = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'purenode', env });
    const out = await runJob(fx.baseRun({ connect: () => connectEnclave({ kind: 'unix', path: w.socketPath }) }));
    if (!out.ok) throw new Error(out.error.message);
    expect(out.result.counts.records).toBe(200);
    expect(fx.logs.some((l) => l.includes('[purenode] enclave: field decryption: node:crypto'))).toBe(true);
  });

  it('with ENCLAVEKIT_REQUIRE_NATIVE=1 a worker without the addon refuses to start', async () => {
    const env = { ...process.env, ENCLAVEKIT_NATIVE_PATH: '/nonexistent/enclavekit_native.node', ENCLAVEKIT_REQUIRE_NATIVE: '1' };
    await expect(fx.stack.startWorker({ imageId: IMAGE_A, name: 'mustnative', env })).rejects.toMatchObject({ code: 'ERR_PLATFORM_UNAVAILABLE' });
  });
});
