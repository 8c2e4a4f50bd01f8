/**
 * Issue #10, end to end: credentials from a loopback IMDSv2 -> the host's credential resolution
 * (the AWS SDK's default chain, pointed at it with AWS_EC2_METADATA_SERVICE_ENDPOINT) -> a worker
 * process (credentials message after its attestation verified) -> the SigV4-checking KMS simulator,
 * whose key policy names the parent role and the image's PCR0 -> data key released -> job verified.
 * Then: a wrong secret (InvalidSignatureException), expired credentials (refused with a clear message,
 * by the host, by the worker, by KMS), no credentials (refused before KMS is asked), a refresh during
 * a job, and nothing secret in any log, frame back, result, audit entry or outcome.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { startSimStack, type SimStack } from '../../host/sim-stack.js';
import { encryptDataset, KmsDataKeySource } from '../../host/encrypt.js';
import { connectEnclave } from '../../host/enclave-conn.js';
import { runJob, type RunJobOptions, type RunOutcome } from '../../host/run.js';
import { parentCredentials, type AwsCredentials } from '../../host/credentials.js';
import { appendAuditEntry, auditRecordFromOutcome } from '../../host/audit.js';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';
import type { KeyManifest, ReleasePolicy } from '../../enclave/protocol/index.js';
import { startImds, isolateSdkEnvironment, type ImdsServer, type ImdsCredentials } from './imds.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const IMAGE = new Uint8Array(48).fill(0x10);
const ROLE_NAME = 'enclavekit-sim-parent';
const POLICY: ReleasePolicy = {
  version: 1,
  minGroupSize: 5,
  dimensions: '*',
  aggregates: '*',
  filters: '*',
  dp: { required: false, epsilonMin: 0.01, epsilonMax: 10, budget: 10, delta: 1e-6 },
  exactExtrema: true,
};
const QUERY = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }, { name: 'spend', op: 'mean', field: 'spend' }], privacy: { minGroupSize: 5 } };

let stack: SimStack;
let worker: Awaited<ReturnType<SimStack['startWorker']>>;
let imds: ImdsServer;
let restoreEnv: () => void;
let manifest: KeyManifest;
let datasetPath: string;
let root: Uint8Array;
/** What IMDS serves now. */
let serving: ImdsCredentials;
let role: AwsCredentials & { principal: string };
const logs: string[] = [];

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const asImds = (c: AwsCredentials): ImdsCredentials => ({ accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken!, expiration: iso(c.expiration!) });

beforeAll(async () => {
  stack = await startSimStack({ log: (l) => logs.push(l) });
  worker = await stack.startWorker({ imageId: IMAGE, name: 'w' });
  await stack.startKms();
  const keyId = await stack.createEnclaveKey(worker.pcr0);
  const plain = join(stack.dir, 'plain.ndjson');
  const rows = Array.from({ length: 60 }, (_, i) => JSON.stringify({ id: `r${i}`, region: ['north', 'south'][i % 2], email: `p${i}@example.org`, spend: 10 + i }));
  writeFileSync(plain, rows.join('\n') + '\n');
  datasetPath = join(stack.dir, 'data.ndjson');
  const kms = new KmsDataKeySource({ endpoint: stack.kmsUrl, region: 'us-east-1', credentials: await stack.credentials('data-owner') });
  manifest = await encryptDataset({ input: plain, format: 'ndjson', fields: ['email', 'spend'], idField: 'id', datasetId: 'creds-ds', keyId, kms, output: datasetPath, policy: POLICY });
  kms.client.destroy();
  root = await stack.simulatorRoot();
  role = await stack.credentials('role');
  serving = asImds(role);
  imds = await startImds({ roleName: ROLE_NAME, instanceId: 'i-0123456789abcdef0', credentials: () => serving });
  restoreEnv = isolateSdkEnvironment(imds.url, stack.dir);
}, 90_000);

afterAll(async () => {
  restoreEnv?.();
  await imds?.close();
  await stack?.close();
});

function job(over: Partial<RunJobOptions> = {}): RunJobOptions {
  return {
    dataset: datasetPath,
    manifest,
    query: QUERY,
    connect: () => connectEnclave({ kind: 'unix', path: worker.socketPath }),
    expect: { pcrs: new Map([[0, worker.pcr0]]), simulatorRoots: [root] },
    batchSize: 20,
    ...over,
  };
}

/** Everything a run leaves that is not the host->worker channel: host log, frames back, outcome. */
interface Captured {
  out: RunOutcome;
  hostLog: string[];
  inbound: Buffer[];
}

async function capture(over: Partial<RunJobOptions>): Promise<Captured> {
  const hostLog: string[] = [];
  const inbound: Buffer[] = [];
  const out = await runJob(job({ ...over, log: (l) => hostLog.push(l), tap: (dir, b) => void (dir === 'in' && inbound.push(Buffer.from(b))) }));
  return { out, hostLog, inbound };
}

const kmsLines = () => logs.filter((l) => l.startsWith('[kms]'));

/** The secret parts of a set of credentials, as they could leak (raw, and base64 of the raw bytes). */
function secretsOf(c: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }): string[] {
  const s = [c.accessKeyId, c.secretAccessKey, ...(c.sessionToken ? [c.sessionToken, c.sessionToken.slice(0, 40)] : [])];
  return [...s, ...s.map((x) => Buffer.from(x).toString('base64'))];
}

function expectNoSecrets(where: string, text: string, c: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }): void {
  for (const s of secretsOf(c)) expect(text.includes(s), `${where} carries a credential`).toBe(false);
}

describe('credentials end to end: IMDSv2 -> host -> worker -> SigV4 KMS simulator', () => {
  it('the simulator checks SigV4: the stack is the SigV4 one', () => {
    // This test is only meaningful against a simulator that authenticates callers.
    expect(typeof stack.credentials).toBe('function');
    expect(role.principal).toMatch(/^arn:aws:sts::111122223333:assumed-role\/enclavekit-sim-parent\//);
  });

  it('releases the data key to the attested image signing as the parent role, and the job verifies', async () => {
    const before = imds.requests.length;
    const c = await capture({ credentials: parentCredentials() });
    expect(c.out.ok ? 'ok' : c.out.error).toBe('ok');
    if (!c.out.ok) return;
    expect(c.out.result.counts.records).toBe(60);
    // IMDSv2 as the SDK uses it: a token first, then the role name and its credentials with the token.
    const asked = imds.requests.slice(before);
    expect(asked.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      'PUT /latest/api/token 200',
      `GET /latest/meta-data/iam/security-credentials/ 200`,
      `GET /latest/meta-data/iam/security-credentials/${ROLE_NAME} 200`,
    ]);
    expect(asked.slice(1).every((r) => r.token)).toBe(true);
    // KMS saw a Decrypt signed by the role's session (the key policy's role principal) and released.
    expect(kmsLines().some((l) => /Decrypt 200/.test(l) && l.includes(role.principal))).toBe(true);
    expect(c.hostLog.some((l) => /credentials handed to the worker: short-lived credentials valid until/.test(l))).toBe(true);
    expect(logs.some((l) => /\[w\] .*credentials received \(valid until /.test(l))).toBe(true);
    // Nothing secret came back or was logged.
    expectNoSecrets('host log', c.hostLog.join('\n'), role);
    expectNoSecrets('frames from the worker', Buffer.concat(c.inbound).toString('latin1'), role);
    expectNoSecrets('outcome', JSON.stringify(c.out, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v)), role);
    expectNoSecrets('worker, proxy and KMS logs', logs.join('\n'), role);
    const audit = join(stack.dir, 'audit.log');
    await appendAuditEntry(audit, auditRecordFromOutcome(c.out, { datasetDigest: c.out.datasetDigest! }), () => new Date());
    expectNoSecrets('audit log', readFileSync(audit, 'latin1'), role);
  });

  it('a wrong secret is refused by KMS (InvalidSignatureException), attested, and nothing is released', async () => {
    const bad = { ...serving, secretAccessKey: Buffer.from(serving.secretAccessKey).reverse().toString() };
    serving = bad;
    try {
      const c = await capture({ credentials: parentCredentials() });
      expect(c.out.ok).toBe(false);
      if (c.out.ok) return;
      expect(c.out.error).toMatchObject({ code: 'ERR_KMS_REQUEST', reason: 'InvalidSignatureException' });
      expect(c.out.refusal?.doc.code).toBe('ERR_KMS_REQUEST');
      expect(kmsLines().some((l) => /Decrypt 400 InvalidSignatureException/.test(l))).toBe(true);
      expectNoSecrets('host log', c.hostLog.join('\n'), bad);
      expectNoSecrets('frames from the worker', Buffer.concat(c.inbound).toString('latin1'), bad);
      expectNoSecrets('worker, proxy and KMS logs', logs.join('\n'), bad);
    } finally {
      serving = asImds(role);
    }
  });

  it('expired credentials: the host refuses to hand them over, with a clear message, and sends nothing', async () => {
    serving = { ...asImds(role), expiration: iso(new Date(Date.now() - 60_000)) };
    const beforeKms = kmsLines().length;
    try {
      // A fresh chain (the SDK caches per provider): IMDS now serves stale credentials.
      const c = await capture({ credentials: parentCredentials() });
      expect(c.out.ok).toBe(false);
      if (c.out.ok) return;
      expect(c.out.error).toMatchObject({ code: 'ERR_CONFIG_INVALID', reason: 'credentials_expired', stage: 'credentials' });
      expect(c.out.error.message).toMatch(/expired at .*nothing was sent to the enclave/);
      expect(kmsLines().length).toBe(beforeKms);
    } finally {
      serving = asImds(role);
    }
  });

  it('expired credentials handed over anyway: the worker refuses before asking KMS (credentials_expired)', async () => {
    const beforeKms = kmsLines().length;
    const stale = { ...role, expiration: new Date(Date.now() - 60_000) };
    const c = await capture({ credentials: async () => stale });
    expect(c.out.ok).toBe(false);
    if (c.out.ok) return;
    expect(c.out.error).toMatchObject({ code: 'ERR_KMS_REQUEST', reason: 'credentials_expired' });
    expect(c.out.refusal?.doc.message).toMatch(/expired at .* the host must send fresh ones/);
    expect(kmsLines().length).toBe(beforeKms);
  });

  it('credentials that KMS knows have expired are refused by KMS (ExpiredTokenException)', async () => {
    const short = await stack.kms!.addPrincipal({ principal: stack.principals.role, session: true, expiresInSeconds: 1 });
    await new Promise((r) => setTimeout(r, 1500));
    // The host and worker see an expiry in the future; only KMS knows better.
    const c = await capture({ credentials: async () => ({ ...short, expiration: new Date(Date.now() + 3600_000) }) });
    expect(c.out.ok).toBe(false);
    if (c.out.ok) return;
    expect(c.out.error).toMatchObject({ code: 'ERR_KMS_REQUEST', reason: 'ExpiredTokenException' });
  });

  it('no credentials: the worker refuses the job before it asks KMS anything (no_credentials)', async () => {
    const beforeKms = kmsLines().length;
    const c = await capture({});
    expect(c.out.ok).toBe(false);
    if (c.out.ok) return;
    expect(c.out.error).toMatchObject({ code: 'ERR_KMS_REQUEST', reason: 'no_credentials' });
    expect(c.out.refusal?.doc.message).toMatch(/no AWS credentials to sign KMS requests with/);
    expect(kmsLines().length).toBe(beforeKms);
  });

  it('refreshes the worker\'s credentials during a job, before they expire', async () => {
    const first = await stack.kms!.addPrincipal({ principal: stack.principals.role, session: true, expiresInSeconds: 1800 });
    const second = await stack.kms!.addPrincipal({ principal: stack.principals.role, session: true, expiresInSeconds: 3600 });
    let calls = 0;
    const provider = async () => (++calls === 1 ? first : second);
    const c = await capture({ credentials: provider, credentialsRefreshMs: 3 * 3600_000 });
    expect(c.out.ok ? 'ok' : c.out.error).toBe('ok');
    expect(c.hostLog.some((l) => /credentials refreshed: short-lived credentials valid until/.test(l))).toBe(true);
    expect(logs.some((l) => /\[w\] .*credentials refreshed/.test(l))).toBe(true);
    for (const x of [first, second]) expectNoSecrets('host and worker logs', c.hostLog.join('\n') + logs.join('\n'), x);
  });

  it('enclavekit run hands over the chain\'s credentials by default (IMDS here) and prints none of them', async () => {
    writeFileSync(join(stack.dir, 'manifest.json'), JSON.stringify(manifest));
    writeFileSync(join(stack.dir, 'query.json'), JSON.stringify(QUERY));
    const io = cliIO();
    const code = await main(
      ['run', '--dataset', datasetPath, '--manifest', join(stack.dir, 'manifest.json'), '--query', join(stack.dir, 'query.json'),
        '--enclave', `unix:${worker.socketPath}`, '--expect-pcr', `0=${Buffer.from(worker.pcr0).toString('hex')}`, '--sim-state', stack.stateDir,
        '--out', join(stack.dir, 'cli-result.json'), '--audit', join(stack.dir, 'cli-audit.log')],
      io,
    );
    expect(io.err()).not.toMatch(/FAILED/);
    expect(code).toBe(0);
    const files = ['cli-result.json', 'cli-audit.log'].map((f) => readFileSync(join(stack.dir, f), 'latin1')).join('\n');
    expectNoSecrets('CLI output, result file and audit log', io.out() + io.err() + files, role);
    // --credentials none: the worker refuses (exit non-zero), with the reason.
    const none = cliIO();
    const c2 = await main(
      ['run', '--dataset', datasetPath, '--manifest', join(stack.dir, 'manifest.json'), '--query', join(stack.dir, 'query.json'),
        '--enclave', `unix:${worker.socketPath}`, '--expect-pcr', `0=${Buffer.from(worker.pcr0).toString('hex')}`, '--sim-state', stack.stateDir,
        '--out', join(stack.dir, 'cli-none.json'), '--credentials', 'none'],
      none,
    );
    expect(c2).not.toBe(0);
    expect(none.err()).toMatch(/no_credentials|no AWS credentials/);
  });
});

function cliIO(): CliIO & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c) => (o += c));
  stderr.on('data', (c) => (e += c));
  return { stdout, stderr, stdin: new PassThrough(), env: process.env, now: () => new Date(), out: () => o, err: () => e };
}
