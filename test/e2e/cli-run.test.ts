import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { PassThrough } from 'node:stream';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';
import { verifyAuditLog } from '../../host/audit.js';
import { QUERY, setUp, IMAGE_A, IMAGE_B, type Fixture } from './helpers.js';

let fx: Fixture;
/** The parent role's session, as `enclavekit run` takes it from the environment (issue #10). */
let roleEnv: NodeJS.ProcessEnv = {};
beforeAll(async () => {
  fx = await setUp(120);
  const role = await fx.stack.credentials('role');
  roleEnv = { AWS_ACCESS_KEY_ID: role.accessKeyId, AWS_SECRET_ACCESS_KEY: role.secretAccessKey, AWS_SESSION_TOKEN: role.sessionToken };
  writeFileSync(join(fx.stack.dir, 'manifest.json'), JSON.stringify(fx.manifest));
  writeFileSync(join(fx.stack.dir, 'query.json'), JSON.stringify(QUERY));
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

function io(): CliIO & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c) => (o += c));
  stderr.on('data', (c) => (e += c));
  return { stdout, stderr, stdin: new PassThrough(), env: roleEnv, now: () => new Date(), out: () => o, err: () => e };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function args(extra: string[]): string[] {
  const d = fx.stack.dir;
  return ['run', '--dataset', fx.datasetPath, '--manifest', join(d, 'manifest.json'), '--query', join(d, 'query.json'), ...extra];
}

describe('enclavekit run', () => {
  it('runs against a worker socket, writes RESULT.json and a verifying audit entry', async () => {
    const d = fx.stack.dir;
    const t = io();
    const code = await main(
      args(['--enclave', `unix:${fx.worker.socketPath}`, '--expect-pcr', `0=${hex(fx.worker.pcr0)}`, '--sim-state', join(d, 'state'), '--out', join(d, 'r1.json'), '--audit', join(d, 'audit.log')]),
      t,
    );
    expect(t.err()).not.toMatch(/FAILED/);
    expect(code).toBe(0);
    const r = JSON.parse(readFileSync(join(d, 'r1.json'), 'utf8'));
    expect(r.verification.verified).toBe(true);
    expect(r.result.platform).toBe('simulator');
    expect(r.result.counts.records).toBe(120);
    expect(typeof r.evidenceBase64).toBe('string');
    const v = await verifyAuditLog(join(d, 'audit.log'), { expect: { pcrs: new Map([[0, fx.worker.pcr0]]), simulatorRoots: [fx.root] } });
    expect(v.firstBroken).toBeUndefined();
    expect(v).toMatchObject({ ok: true, mode: 'evidence', checked: { documents: 1, evidence: 1 } });
  });

  it('trusts a simulator root given as PEM with --trust-simulator-root', async () => {
    const d = fx.stack.dir;
    const t = io();
    const code = await main(
      args(['--enclave', `unix:${fx.worker.socketPath}`, '--expect-pcr', `0=${hex(fx.worker.pcr0)}`, '--trust-simulator-root', join(d, 'state', 'sim-root.pem'), '--out', join(d, 'r7.json')]),
      t,
    );
    expect(t.err()).not.toMatch(/FAILED/);
    expect(code).toBe(0);
  });

  it('refuses without expectations, and does not trust a simulator root it was not given', async () => {
    const d = fx.stack.dir;
    let t = io();
    expect(await main(args(['--enclave', `unix:${fx.worker.socketPath}`, '--sim-state', join(d, 'state'), '--out', join(d, 'r2.json')]), t)).toBe(2);
    t = io();
    const code = await main(args(['--enclave', `unix:${fx.worker.socketPath}`, '--expect-pcr', `0=${hex(fx.worker.pcr0)}`, '--out', join(d, 'r3.json'), '--audit', join(d, 'audit2.log')]), t);
    expect(code).toBe(1);
    expect(t.err()).toMatch(/ERR_NITRO_CHAIN_INVALID/);
    expect(existsSync(join(d, 'r3.json'))).toBe(false);
    const audit = readFileSync(join(d, 'audit2.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(audit[0].outcome).toBe('failed');
    expect(audit[0].document).toBeNull();
    expect(audit[0].reason).toMatch(/attestation/);
  });

  it('--enclave sim starts its own worker process behind the allow-listed KMS proxy; another image is denied the key', async () => {
    const d = fx.stack.dir;
    const common = ['--enclave', 'sim', '--sim-state', join(d, 'state'), '--kms-endpoint', fx.stack.kmsUrl, '--kms-allow', `127.0.0.1:${fx.stack.kmsPort}`];
    let t = io();
    expect(await main(args([...common, '--image-id', hex(IMAGE_A), '--out', join(d, 'r4.json')]), t)).toBe(0);
    expect(JSON.parse(readFileSync(join(d, 'r4.json'), 'utf8')).result.counts.records).toBe(120);
    // Not allow-listed: the proxy refuses to start.
    t = io();
    expect(await main(args(['--enclave', 'sim', '--sim-state', join(d, 'state'), '--kms-endpoint', fx.stack.kmsUrl, '--image-id', hex(IMAGE_A), '--out', join(d, 'r5.json')]), t)).toBe(2);
    expect(t.err()).toMatch(/allowlist/);
    // Image B is not the key's image: KMS denies the key, the job fails.
    t = io();
    expect(await main(args([...common, '--image-id', hex(IMAGE_B), '--out', join(d, 'r6.json')]), t)).toBe(1);
    expect(t.err()).toMatch(/AccessDeniedException/);
  }, 60_000);
});
