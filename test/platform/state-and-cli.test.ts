import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { toHex } from '../../attestation/bytes.js';
import { ToolkitError } from '../../attestation/errors.js';
import { verifyNitro } from '../../attestation/nitro/node.js';
import { verifySevSnp } from '../../attestation/sevsnp/node.js';
import { nodeCrypto } from '../../attestation/crypto/node.js';
import { snpReportData, splitSnpEvidence } from '../../enclave/platform/sev-snp-binding.js';
import { imageIdFromFiles, simulatedBootPcrs } from '../../enclave/platform/sim-image.js';
import { SimNitroPlatform } from '../../enclave/platform/sim-nitro.js';
import { SimSnpPlatform, simulatedMeasurement } from '../../enclave/platform/sim-snp.js';
import { openSimulatorState } from '../../enclave/sim-state.js';
import { run as simAttest } from '../../enclave/cli-sim-attest.js';
import type { CliIO } from '../../host/cli/io.js';

const NOW = new Date('2026-06-01T12:00:00Z');
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ek-state-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return e instanceof ToolkitError ? `${e.code}:${e.reason}` : `foreign:${(e as Error).name}:${(e as Error).message}`;
  }
  return undefined;
}

function io(now = NOW): CliIO & { out: () => string } {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (c) => (out += String(c)));
  return { stdout, stderr: new PassThrough(), stdin: new PassThrough(), env: {}, now: () => now, out: () => out };
}

describe('simulator state folder', () => {
  it('creates 0700 / 0600 files on first use and reloads the same CA after', async () => {
    const sdir = join(dir, 'state');
    const s1 = await openSimulatorState(sdir, { now: NOW });
    expect(s1.created).toBe(true);
    expect((await stat(sdir)).mode & 0o777).toBe(0o700);
    for (const f of ['sim-ca.json', 'sim-snp.json', 'sim-root.pem']) expect((await stat(join(sdir, f))).mode & 0o777).toBe(0o600);
    const pem = await readFile(join(sdir, 'sim-root.pem'), 'utf8');
    expect(pem).toContain('-----BEGIN CERTIFICATE-----');
    expect(Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64').equals(Buffer.from(s1.nitroRootDer))).toBe(true);
    const s2 = await openSimulatorState(sdir, { now: new Date(NOW.getTime() + 30 * 86_400_000) });
    expect(s2.created).toBe(false);
    expect(toHex(s2.nitroRootDer)).toBe(toHex(s1.nitroRootDer));
    expect(toHex(s2.snpChain.ark.der)).toBe(toHex(s1.snpChain.ark.der));
    // A month later the reloaded chain still signs documents that verify (intermediates outlive AWS's).
    const later = new Date(NOW.getTime() + 30 * 86_400_000);
    const p = new SimNitroPlatform({ ca: s2.nitroCa, identity: { imageId: new Uint8Array(48) }, now: () => later });
    expect(verifyNitro(await p.attest(), { now: later, simulatorRoots: [s1.nitroRootDer] }).platform).toBe('simulator');
  });

  it('two processes opening a fresh folder at once agree on one root', async () => {
    const sdir = join(dir, 'race');
    const [a, b] = await Promise.all([openSimulatorState(sdir, { now: NOW }), openSimulatorState(sdir, { now: NOW })]);
    expect(toHex(a.nitroRootDer)).toBe(toHex(b.nitroRootDer));
    expect(toHex(a.snpChain.ark.der)).toBe(toHex(b.snpChain.ark.der));
  });

  it('refuses corrupt, foreign or group-readable key files with ERR_SIMULATOR_STATE', async () => {
    const sdir = join(dir, 'bad');
    await openSimulatorState(sdir, { now: NOW });
    await chmod(join(sdir, 'sim-ca.json'), 0o644);
    expect(await codeOf(openSimulatorState(sdir, { now: NOW }))).toBe('ERR_SIMULATOR_STATE:permissions');
    await writeFile(join(sdir, 'sim-ca.json'), '{not json', { mode: 0o600 });
    await chmod(join(sdir, 'sim-ca.json'), 0o600);
    expect(await codeOf(openSimulatorState(sdir, { now: NOW }))).toBe('ERR_SIMULATOR_STATE:corrupt');
    await writeFile(join(sdir, 'sim-ca.json'), '{"format":"something-else"}');
    expect(await codeOf(openSimulatorState(sdir, { now: NOW }))).toBe('ERR_SIMULATOR_STATE:corrupt');
    await writeFile(join(dir, 'file'), 'x');
    expect(await codeOf(openSimulatorState(join(dir, 'file'), { now: NOW }))).toMatch(/^ERR_SIMULATOR_STATE:/);
  });
});

// One folder for the tests below: creating a state generates RSA and EC keys, the slow part.
let shared: string;
beforeAll(async () => {
  shared = await mkdtemp(join(tmpdir(), 'ek-shared-'));
  await openSimulatorState(join(shared, 'state'), { now: NOW });
});
afterAll(async () => {
  await rm(shared, { recursive: true, force: true });
});

describe('simulated SEV-SNP platform', () => {
  it('v5 report + cert table verifies with the simulator ARK only, binds REPORT_DATA, has no PCRs', async () => {
    const s = await openSimulatorState(join(shared, 'state'), { now: NOW });
    const measurement = simulatedMeasurement(new Uint8Array(48).fill(1));
    const p = new SimSnpPlatform({ chain: s.snpChain, measurement });
    expect(p.kind).toBe('simulator');
    expect(p.evidenceFormat).toBe('sev-snp');
    const publicKey = Uint8Array.of(1, 2, 3);
    const nonce = new Uint8Array(32).fill(9);
    const ev = await p.attest({ publicKey, nonce });
    const { report, certTable } = splitSnpEvidence(ev);
    const v = verifySevSnp(report, { certTable }, { now: NOW, simulatorRoots: [s.snpChain.ark.der], crypto: nodeCrypto });
    expect(v.platform).toBe('simulator');
    expect(v.version).toBe(5);
    expect(toHex(v.measurement)).toBe(toHex(measurement));
    expect(toHex(v.reportData)).toBe(toHex(snpReportData({ publicKey, nonce })));
    expect(v.policyFlags['DEBUG'] ?? v.policyFlags['debug']).toBeFalsy();
    expect(await codeOf(Promise.resolve().then(() => verifySevSnp(report, { certTable }, { now: NOW, crypto: nodeCrypto })))).toMatch(/^ERR_SNP_CHAIN_INVALID/);
    expect(await codeOf(p.extendPcr(16, Uint8Array.of(1)))).toBe('ERR_PLATFORM_UNAVAILABLE:no_pcrs');
    expect(await codeOf(p.describePcr(0))).toBe('ERR_PLATFORM_UNAVAILABLE:no_pcrs');
  });
});

describe('enclavekit sim attest', () => {
  it('issues a Nitro document whose PCRs equal the simulated platform\'s for the same image', async () => {
    const bundle = join(dir, 'worker.js');
    await writeFile(bundle, 'export const worker = 1;\n');
    const spki = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
    await writeFile(join(dir, 'pk.der'), spki);
    const sdir = join(dir, 'fresh-state');
    const t = io();
    const code = await simAttest(
      ['--state', sdir, '--public-key', join(dir, 'pk.der'), '--image', bundle, '--nonce', 'aabb', '--user-data', '01',
        '--pcr', `16=${'11'.repeat(48)}`, '--out', join(dir, 'doc.cose')],
      t,
    );
    expect(code).toBe(0);
    expect(t.out()).toContain('platform: simulator');
    const doc = new Uint8Array(await readFile(join(dir, 'doc.cose')));
    // The CLI created the folder; the worker side reads the same root from it.
    const state = await openSimulatorState(sdir, { now: NOW });
    expect(state.created).toBe(false);
    const v = verifyNitro(doc, { now: NOW, simulatorRoots: [state.nitroRootDer] });
    expect(v.platform).toBe('simulator');
    expect(toHex(v.publicKey!)).toBe(toHex(spki));
    expect(toHex(v.nonce!)).toBe('aabb');
    expect(toHex(v.pcrs.get(16)!)).toBe('11'.repeat(48));
    const expected = simulatedBootPcrs({ imageId: await imageIdFromFiles([bundle]) });
    for (const i of [0, 1, 2, 3, 4, 8]) expect(toHex(v.pcrs.get(i)!)).toBe(toHex(expected.get(i)!));
    expect(await codeOf(Promise.resolve().then(() => verifyNitro(doc, { now: NOW })))).toMatch(/^ERR_NITRO_CHAIN_INVALID/);
  });

  it('issues an SNP report with the same REPORT_DATA binding and measurement derivation as the platform', async () => {
    const sdir = join(shared, 'state');
    await writeFile(join(dir, 'pk.der'), Uint8Array.of(5, 6, 7));
    const imageId = 'ab'.repeat(48);
    expect(
      await simAttest(['--state', sdir, '--platform', 'sev-snp', '--public-key', join(dir, 'pk.der'), '--image-id', imageId,
        '--nonce', '0102', '--out', join(dir, 'r.bin')], io()),
    ).toBe(0);
    const state = await openSimulatorState(sdir, { now: NOW });
    expect(state.created).toBe(false);
    const { report, certTable } = splitSnpEvidence(new Uint8Array(await readFile(join(dir, 'r.bin'))));
    const v = verifySevSnp(report, { certTable }, { now: NOW, simulatorRoots: [state.snpChain.ark.der], crypto: nodeCrypto });
    expect(v.platform).toBe('simulator');
    expect(toHex(v.reportData)).toBe(toHex(snpReportData({ publicKey: Uint8Array.of(5, 6, 7), nonce: Uint8Array.of(1, 2) })));
    expect(toHex(v.measurement)).toBe(toHex(simulatedMeasurement(Buffer.from(imageId, 'hex'))));
  });

  it('rejects bad usage with UsageError (exit 2 through the dispatcher)', async () => {
    await writeFile(join(dir, 'pk.der'), Uint8Array.of(1));
    const base = ['--state', join(dir, 'never-created'), '--public-key', join(dir, 'pk.der'), '--out', join(dir, 'o')];
    for (const extra of [['--pcr', '40=00'], ['--pcr', `1=${'00'.repeat(47)}`], ['--nonce', 'zz'], ['--platform', 'tdx'], ['--image-id', '00'], ['--bogus']]) {
      await expect(simAttest([...base, ...extra], io())).rejects.toMatchObject({ name: 'UsageError' });
    }
    await expect(simAttest(['--state', join(dir, 's')], io())).rejects.toMatchObject({ name: 'UsageError' });
    await expect(simAttest([...base, '--platform', 'sev-snp', '--pcr', `16=${'00'.repeat(48)}`], io())).rejects.toMatchObject({ name: 'UsageError' });
    await expect(simAttest([...base, '--measurement', '00'.repeat(48)], io())).rejects.toMatchObject({ name: 'UsageError' });
    // Usage errors never create (or generate keys into) a state folder.
    await expect(stat(join(dir, 'never-created'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
