/**
 * Onboarding in simulator mode (issue #11), end to end: `sim image-id` says what the worker bundle will
 * measure as; a worker logs its PCR0 when it starts; a key bound to that PCR0 encrypts a dataset;
 * `run --enclave sim` without `--image-id` starts that same image and its result verifies; and
 * `result verify` re-verifies the RESULT.json it wrote, offline.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toHex } from '../../attestation/bytes.js';
import { simImagePcr, simSnpMeasurement } from '../../attestation/sim/image.js';
import { workerBundle } from '../../host/cli/sim-image-id.js';
import { encryptDataset, KmsDataKeySource } from '../../host/encrypt.js';
import { simImageIdFromFiles, startSimStack, type SimStack } from '../../host/sim-stack.js';
import { OPEN_POLICY, QUERY, makeRecords } from '../e2e/helpers.js';
import { cli } from './helpers.js';

let stack: SimStack;
const logs: string[] = [];
let pcr0: string;

beforeAll(async () => {
  stack = await startSimStack({ log: (l) => logs.push(l) });
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

describe('simulator onboarding', () => {
  it('sim image-id prints the worker bundle\'s simulated PCR0/1/2 and MEASUREMENT (the default image)', async () => {
    const r = await cli(['sim', 'image-id', '--json']);
    expect(r.code).toBe(0);
    const j = r.json() as { imageId: string; files: string[]; default: boolean; pcrs: Record<string, string>; measurement: string };
    const id = await simImageIdFromFiles([workerBundle()]);
    expect(j).toMatchObject({ ok: true, imageId: toHex(id), files: [workerBundle()], default: true, measurement: toHex(simSnpMeasurement(id)) });
    expect(j.pcrs).toEqual({ '0': toHex(simImagePcr(0, id)), '1': toHex(simImagePcr(1, id)), '2': toHex(simImagePcr(2, id)) });
    pcr0 = j.pcrs['0']!;
    // --image names other files; the readable form shows the same values.
    const other = join(stack.dir, 'other.js');
    writeFileSync(other, '// another build\n');
    const o = await cli(['sim', 'image-id', '--image', other]);
    expect(o.code).toBe(0);
    expect(o.out).toContain(`PCR0         ${toHex(simImagePcr(0, await simImageIdFromFiles([other])))}`);
    expect((await cli(['sim', 'image-id', '--image', join(stack.dir, 'absent.js')])).code).toBe(2);
  });

  it('a simulated SEV-SNP worker logs its MEASUREMENT instead', async () => {
    const image = join(stack.dir, 'snp-image.js');
    writeFileSync(image, '// an SEV-SNP image\n');
    const before = logs.length;
    const w = await stack.startWorker({ imageFiles: [image], name: 'snp', extraArgs: ['--sim-evidence', 'sev-snp'] });
    await w.stop();
    const measurement = toHex(simSnpMeasurement(await simImageIdFromFiles([image])));
    expect(logs.slice(before).find((l) => /image MEASUREMENT /.test(l))).toContain(`image MEASUREMENT ${measurement}`);
  });

  it('a worker logs its PCR0 before it listens; run --enclave sim without --image-id starts that image; result verify re-checks it', async () => {
    // The first worker creates the simulator state; it runs the default image (its own program file).
    const before = logs.length;
    const w = await stack.startWorker({ imageFiles: [workerBundle()], name: 'default' });
    expect(toHex(w.pcr0)).toBe(pcr0);
    const mine = logs.slice(before);
    const at = mine.findIndex((l) => /image PCR0 /.test(l));
    expect(mine[at]).toContain(`image PCR0 ${pcr0}`);
    expect(at).toBeLessThan(mine.findIndex((l) => /listening on/.test(l)));
    await w.stop();

    await stack.startKms();
    const keyId = await stack.createEnclaveKey(Buffer.from(pcr0, 'hex'));
    const plain = join(stack.dir, 'plain.ndjson');
    writeFileSync(plain, makeRecords(60).map((r) => JSON.stringify(r)).join('\n') + '\n');
    const dataset = join(stack.dir, 'data.ndjson');
    const kms = new KmsDataKeySource({ endpoint: stack.kmsUrl, region: 'us-east-1', credentials: await stack.credentials('data-owner') });
    const manifest = await encryptDataset({ input: plain, format: 'ndjson', fields: ['email', 'spend', 'complaint'], idField: 'id', datasetId: 'onboarding', keyId, kms, output: dataset, policy: OPEN_POLICY });
    kms.client.destroy();
    writeFileSync(join(stack.dir, 'manifest.json'), JSON.stringify(manifest));
    writeFileSync(join(stack.dir, 'query.json'), JSON.stringify(QUERY));

    // The parent role's session, as the default credential chain finds it in the environment.
    const role = await stack.credentials('role');
    process.env.AWS_ACCESS_KEY_ID = role.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = role.secretAccessKey;
    if (role.sessionToken !== undefined) process.env.AWS_SESSION_TOKEN = role.sessionToken;
    if (role.expiration !== undefined) process.env.AWS_CREDENTIAL_EXPIRATION = role.expiration.toISOString();

    const out = join(stack.dir, 'result.json');
    const run = await cli(
      [
        'run', '--dataset', dataset, '--manifest', join(stack.dir, 'manifest.json'), '--query', join(stack.dir, 'query.json'),
        '--enclave', 'sim', '--sim-state', stack.stateDir, '--kms-endpoint', stack.kmsUrl, '--kms-allow', `127.0.0.1:${stack.kmsPort}`, '--out', out,
      ],
      { now: new Date() },
    );
    expect(run.err).toContain(`image PCR0 ${pcr0}`);
    expect(run.err).not.toMatch(/FAILED/);
    expect(run.code).toBe(0);
    const file = JSON.parse(readFileSync(out, 'utf8')) as { verification: { pcrs: Record<string, string> }; nonce: string; publicKeyBase64: string };
    expect(file.verification.pcrs['0']).toBe(pcr0);
    expect(file.nonce).toMatch(/^[0-9a-f]{64}$/);
    expect(file.publicKeyBase64.length).toBeGreaterThan(100);

    const v = await cli(['result', 'verify', out, '--pcr', `0=${pcr0}`, '--sim-state', stack.stateDir, '--json'], { now: new Date() });
    expect(v.code).toBe(0);
    expect(v.json()).toMatchObject({ valid: true, datasetId: 'onboarding', platform: 'simulator', nonce: file.nonce, nonceChecked: 'file', atSource: 'evidence' });
    // Another image's PCR0 does not verify it.
    const other = await cli(['result', 'verify', out, '--pcr', `0=${'00'.repeat(48)}`, '--sim-state', stack.stateDir], { now: new Date() });
    expect(other.code).toBe(1);
  }, 120_000);
});
