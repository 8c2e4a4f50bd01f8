/**
 * Issue #11, `enclavekit encrypt`: the summary, `--skip-invalid --rejects FILE`, `--out -` /
 * `--manifest -`, a progress bar on a terminal, and KMS failures in words (the key and the endpoint
 * named) with their exit status. Against the KMS simulator in this process.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KMSClient, CreateKeyCommand } from '@aws-sdk/client-kms';
import { main } from '../../host/cli/main.js';
import { startKmsSimulator, type KmsSimulator } from '../../host/kms-sim/server.js';
import { freeLoopbackPort } from '../../host/sim-stack.js';
import { parseManifest } from '../../enclave/protocol/index.js';
import { datasetDigestOfFile } from '../../host/run.js';
import { testIO } from './helpers.js';

let dir: string;
let sim: KmsSimulator;
let env: NodeJS.ProcessEnv;
let keyArn: string;
let deniedArn: string;

beforeAll(async () => {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  dir = mkdtempSync(join(tmpdir(), 'ek-enc-'));
  sim = await startKmsSimulator({ stateDir: join(dir, 'kms'), port: 0 });
  const c = sim.credentials;
  env = { AWS_ACCESS_KEY_ID: c.accessKeyId, AWS_SECRET_ACCESS_KEY: c.secretAccessKey, ...(c.sessionToken ? { AWS_SESSION_TOKEN: c.sessionToken } : {}) };
  const kms = new KMSClient({ endpoint: sim.url, region: 'us-east-1', credentials: c });
  // The default key policy lets the account root (these credentials) use the key.
  keyArn = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
  // A key whose policy names someone else: the root's GenerateDataKey is denied.
  const other = 'arn:aws:iam::111122223333:role/someone-else';
  const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: other }, Action: 'kms:*', Resource: '*' }] });
  deniedArn = (await kms.send(new CreateKeyCommand({ Policy: policy, BypassPolicyLockoutSafetyCheck: true }))).KeyMetadata!.Arn!;
  kms.destroy();
}, 60_000);
afterAll(async () => {
  await sim?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const args = (input: string, extra: string[] = [], key = keyArn): string[] => {
  const tag = Math.random().toString(36).slice(2, 8);
  return ['encrypt', '--in', input, '--fields', 'email,spend', '--id-field', 'id', '--dataset', 'ds', '--key-id', key, '--endpoint', sim.url,
    '--out', join(dir, `out-${tag}${input.endsWith('.csv') ? '.csv' : '.ndjson'}`), '--manifest', join(dir, `m-${tag}.json`), ...extra];
};
const valueOf = (a: string[], flag: string): string => a[a.indexOf(flag) + 1]!;

const GOOD = ['{"id":"a","email":"a@x.test","spend":1}', '{"id":"b","email":"b@x.test","spend":2}', '{"id":"c","email":"c@x.test","spend":3}'];

describe('summary and exit 0', () => {
  it('says how many records and fields were encrypted, with how many data keys', async () => {
    const t = testIO({ env });
    const a = args(file('plain.ndjson', GOOD.join('\n') + '\n'));
    expect(await main(a, t)).toBe(0);
    expect(t.out()).toMatch(/^encrypted 2 field\(s\) \(email, spend\) of .*plain\.ndjson -> .* with 1 data key\(s\); 3 records sealed with the default release policy in .*\.json\n$/);
    expect(parseManifest(readFileSync(valueOf(a, '--manifest'))).records).toBe(3);
  });

  it('--json: one object with the counts', async () => {
    const t = testIO({ env });
    const a = args(file('plain2.ndjson', GOOD.join('\n') + '\n'), ['--json']);
    expect(await main(a, t)).toBe(0);
    expect(t.json()).toEqual({
      ok: true, datasetId: 'ds', records: 3, rejected: 0, fields: ['email', 'spend'], dataKeys: 1, policy: 'default',
      in: valueOf(a, '--in'), out: valueOf(a, '--out'), manifest: valueOf(a, '--manifest'), rejects: null,
    });
  });

  it('--out - puts the encrypted dataset on stdout, --manifest - the manifest; the summary moves to stderr', async () => {
    let t = testIO({ env });
    let a = args(file('plain3.ndjson', GOOD.join('\n') + '\n'));
    a[a.indexOf('--out') + 1] = '-';
    expect(await main(a, t)).toBe(0);
    const lines = t.out().trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    expect(lines.map((r) => r.id)).toEqual(['a', 'b', 'c']);
    expect(lines[0]!.email).toMatch(/^ekf1\./);
    expect(t.err()).toMatch(/-> standard output/);
    t = testIO({ env });
    a = args(valueOf(a, '--in'));
    a[a.indexOf('--manifest') + 1] = '-';
    expect(await main(a, t)).toBe(0);
    const m = parseManifest(t.out());
    expect(m.records).toBe(3);
    expect(m.digest).toBe(Buffer.from(await datasetDigestOfFile(valueOf(a, '--out'), 'ds')).toString('hex'));
    t = testIO({ env });
    expect(await main([...args(valueOf(a, '--in')).map((x, i, all) => (all[i - 1] === '--out' ? '-' : x)), '--json'], t)).toBe(2);
    expect(t.json()).toMatchObject({ ok: false, code: 'ERR_USAGE' });
  });

  it('draws a progress bar on a terminal (stderr), never on stdout', async () => {
    const many = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ id: `r${i}`, email: `p${i}@x.test`, spend: i })).join('\n') + '\n';
    const t = testIO({ env, tty: true });
    expect(await main(args(file('many.ndjson', many)), t), t.err()).toBe(0);
    expect(t.err()).toContain('\r\x1b[2K');
    expect(t.err()).toMatch(/3,000 records .*MB\/s/);
    expect(t.err().endsWith('\n')).toBe(true);
    expect(t.out()).not.toContain('\x1b');
    const piped = testIO({ env });
    expect(await main(args(valueOf(args(join(dir, 'many.ndjson')), '--in')), piped)).toBe(0);
    expect(piped.err()).toBe('');
  });
});

describe('--skip-invalid --rejects FILE', () => {
  const MIXED = [GOOD[0], '{"email":"no-id@x.test","spend":9}', 'this is not json', GOOD[1], '[1,2]', GOOD[2]].join('\n') + '\n';

  it('without it, a record without an id fails the run with its line (exit 2)', async () => {
    const t = testIO({ env });
    const a = args(file('mixed.ndjson', MIXED));
    expect(await main(a, t)).toBe(2);
    expect(t.err()).toContain('ERR_DATASET_INVALID (record_id): line 2: no usable id in field "id"');
    expect(existsSync(valueOf(a, '--out'))).toBe(false);
  });

  it('writes each rejected record (in clear, mode 0600) with its line and reason; seals only what was written', async () => {
    const rejects = join(dir, 'rejects.ndjson');
    writeFileSync(rejects, 'old content\n', { mode: 0o644 });
    const t = testIO({ env });
    const a = args(join(dir, 'mixed.ndjson'), ['--skip-invalid', '--rejects', rejects]);
    expect(await main(a, t)).toBe(0);
    expect(t.out()).toMatch(/; 3 records sealed with .*; 3 record\(s\) rejected, written in clear to .*rejects\.ndjson/);
    expect(statSync(rejects).mode & 0o777).toBe(0o600);
    const lines = readFileSync(rejects, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      { line: 2, reason: 'record_id', message: 'line 2: no usable id in field "id" (a non-empty string or an integer)', record: { email: 'no-id@x.test', spend: 9 } },
      { line: 3, reason: 'json', message: 'line 3: not valid JSON', raw: 'this is not json' },
      { line: 5, reason: 'record', message: 'line 5: a record must be a JSON object', raw: '[1,2]' },
    ]);
    const m = parseManifest(readFileSync(valueOf(a, '--manifest')));
    expect(m.records).toBe(3);
    expect(m.digest).toBe(Buffer.from(await datasetDigestOfFile(valueOf(a, '--out'), 'ds')).toString('hex'));
    const enc = readFileSync(valueOf(a, '--out'), 'utf8');
    expect(enc).not.toContain('no-id@x.test');
    expect(existsSync(`${rejects}.partial`)).toBe(false);
  });

  it('--json counts the rejected records', async () => {
    const t = testIO({ env });
    const rejects = join(dir, 'rejects2.ndjson');
    expect(await main(args(join(dir, 'mixed.ndjson'), ['--skip-invalid', '--rejects', rejects, '--json']), t)).toBe(0);
    expect(t.json()).toMatchObject({ ok: true, records: 3, rejected: 3, rejects });
  });

  it('CSV rows of the wrong width: both counts in the message, or rejected with --skip-invalid', async () => {
    const csv = file('rows.csv', 'id,email,spend\n1,a@x.test,5\n2,b@x.test\n3,c@x.test,7,extra\n4,d@x.test,8\n');
    let t = testIO({ env });
    expect(await main(args(csv), t)).toBe(2);
    expect(t.err()).toContain('line 3: 2 values, but the header has 3 columns');
    t = testIO({ env });
    const rejects = join(dir, 'rows.rejects');
    const a = args(csv, ['--skip-invalid', '--rejects', rejects]);
    expect(await main(a, t)).toBe(0);
    const lines = readFileSync(rejects, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      { line: 3, reason: 'csv', message: 'line 3: 2 values, but the header has 3 columns', raw: '2,b@x.test\n' },
      { line: 4, reason: 'csv', message: 'line 4: 4 values, but the header has 3 columns', raw: '3,c@x.test,7,extra\n' },
    ]);
    expect(parseManifest(readFileSync(valueOf(a, '--manifest'))).records).toBe(2);
  });

  it('the two flags go together; the rejects file is never standard output', async () => {
    for (const extra of [['--skip-invalid'], ['--rejects', join(dir, 'r.ndjson')], ['--skip-invalid', '--rejects', '-']]) {
      const t = testIO({ env });
      expect(await main(args(join(dir, 'mixed.ndjson'), extra), t), extra.join(' ')).toBe(2);
    }
  });
});

describe('KMS failures in words, with their exit status', () => {
  it('2: a key that does not exist, named with the endpoint', async () => {
    const t = testIO({ env });
    expect(await main(args(join(dir, 'plain.ndjson'), [], 'alias/does-not-exist'), t)).toBe(2);
    expect(t.err()).toContain(`KMS key "alias/does-not-exist" does not exist at ${sim.url}`);
  });

  it('1: the key policy denies GenerateDataKey', async () => {
    const t = testIO({ env });
    expect(await main(args(join(dir, 'plain.ndjson'), ['--json'], deniedArn), t)).toBe(1);
    expect(t.json()).toMatchObject({ ok: false, code: 'ERR_KMS_REQUEST', reason: 'AccessDeniedException', exit: 1 });
  });

  it('3: KMS unreachable, the endpoint named', async () => {
    const port = await freeLoopbackPort();
    const t = testIO({ env });
    const a = args(join(dir, 'plain.ndjson')).map((x, i, all) => (all[i - 1] === '--endpoint' ? `http://127.0.0.1:${port}` : x));
    expect(await main(a, t)).toBe(3);
    expect(t.err()).toContain(`cannot reach KMS at http://127.0.0.1:${port} (ECONNREFUSED)`);
  });

  it('2: a field no record has is refused without a "line 0"', async () => {
    const t = testIO({ env });
    const a = args(join(dir, 'plain.ndjson')).map((x, i, all) => (all[i - 1] === '--fields' ? 'email,nosuchfield' : x));
    expect(await main(a, t)).toBe(2);
    expect(t.err()).toContain('no record has the field(s) "nosuchfield"');
    expect(t.err()).not.toMatch(/line 0/);
  });
});
