/**
 * `enclavekit status`: the operator's health check against a simulated worker process (the same
 * program an image runs): healthy with the expected image (several accepted values of a PCR during a
 * roll-out), 1 for another image or an untrusted root, 3 when nothing answers; one JSON object.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import { startSimStack, simSnpMeasurement, type SimStack } from '../../host/sim-stack.js';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';

const IMAGE = new Uint8Array(48).fill(0x5a);
let stack: SimStack;
let worker: Awaited<ReturnType<SimStack['startWorker']>>;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

beforeAll(async () => {
  stack = await startSimStack();
  worker = await stack.startWorker({ imageId: IMAGE, name: 'st' });
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

function io(): CliIO & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c) => (o += c));
  stderr.on('data', (c) => (e += c));
  return { stdout, stderr, stdin: new PassThrough(), env: {}, now: () => new Date(), out: () => o, err: () => e };
}

async function status(args: string[]): Promise<{ code: number; json: Record<string, unknown>; t: ReturnType<typeof io> }> {
  const t = io();
  const code = await main(['status', ...args, '--json'], t);
  return { code, json: JSON.parse(t.out()) as Record<string, unknown>, t };
}

describe('enclavekit status', () => {
  it('healthy: reachable, attested platform and measurements, version, uptime', async () => {
    const { code, json } = await status(['--enclave', `unix:${worker.socketPath}`, '--sim-state', stack.stateDir, '--expect-pcr', `0=${hex(worker.pcr0)}`]);
    expect(code).toBe(0);
    expect(json).toMatchObject({ ok: true, healthy: true, reachable: true, platform: 'simulator', format: 'nitro', debug: false, expected: 'matched', jobs: 0 });
    expect((json.measurements as Record<string, string>).PCR0).toBe(hex(worker.pcr0));
    expect(Object.keys(json.measurements as object)).toEqual(['PCR0', 'PCR1', 'PCR2', 'PCR3', 'PCR4', 'PCR8']);
    expect(json.workerVersion).toMatch(/^enclavekit-worker\//);
    expect(typeof json.uptimeSeconds).toBe('number');
    expect(typeof json.latencyMs).toBe('number');
  });

  it('during a roll-out, either of two PCR0 values is healthy; neither is not (exit 1)', async () => {
    const other = 'ee'.repeat(48);
    expect((await status(['--enclave', `unix:${worker.socketPath}`, '--sim-state', stack.stateDir, '--expect-pcr', `0=${other}`, '--expect-pcr', `0=${hex(worker.pcr0)}`])).code).toBe(0);
    const bad = await status(['--enclave', `unix:${worker.socketPath}`, '--sim-state', stack.stateDir, '--expect-pcr', `0=${other}`]);
    expect(bad.code).toBe(1);
    expect(bad.json).toMatchObject({ ok: false, healthy: false, reachable: true, code: 'ERR_ATTESTATION_POLICY', platform: 'simulator' });
  });

  it('without expectations it reports what it sees; a simulator root it was not given is not trusted (exit 1)', async () => {
    const open = await status(['--enclave', `unix:${worker.socketPath}`, '--sim-state', stack.stateDir]);
    expect(open.code).toBe(0);
    expect(open.json.expected).toBe('not checked');
    const untrusted = await status(['--enclave', `unix:${worker.socketPath}`]);
    expect(untrusted.code).toBe(1);
    expect(untrusted.json).toMatchObject({ healthy: false, reachable: true, code: 'ERR_NITRO_CHAIN_INVALID' });
  });

  it('a SEV-SNP worker: its MEASUREMENT, checked against --expect-measurement', async () => {
    const snp = await stack.startWorker({ imageId: IMAGE, name: 'snp', extraArgs: ['--sim-evidence', 'sev-snp'] });
    const want = hex(simSnpMeasurement(IMAGE));
    const ok = await status(['--enclave', `unix:${snp.socketPath}`, '--sim-state', stack.stateDir, '--expect-measurement', want]);
    expect(ok.code).toBe(0);
    expect(ok.json).toMatchObject({ healthy: true, platform: 'simulator', format: 'sev-snp', measurements: { MEASUREMENT: want }, expected: 'matched' });
    const bad = await status(['--enclave', `unix:${snp.socketPath}`, '--sim-state', stack.stateDir, '--expect-measurement', 'ab'.repeat(48)]);
    expect(bad.code).toBe(1);
  });

  it('nothing listening: unreachable, exit 3', async () => {
    const { code, json } = await status(['--enclave', `unix:${join(stack.dir, 'nobody.sock')}`, '--timeout', '1000']);
    expect(code).toBe(3);
    expect(json).toMatchObject({ ok: false, healthy: false, reachable: false, code: 'ERR_JOB_FAILED' });
  });

  it('usage errors: exit 2', async () => {
    expect(await main(['status'], io())).toBe(2);
    expect(await main(['status', '--enclave', 'sim'], io())).toBe(2);
    expect(await main(['status', '--enclave', 'unix:/x', '--expect-pcr', '0=zz'], io())).toBe(2);
  });
});
