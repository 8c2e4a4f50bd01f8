import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import { CreateKeyCommand, GenerateDataKeyCommand, KMSClient, ListKeysCommand } from '@aws-sdk/client-kms';
import { fromProcess } from '@aws-sdk/credential-providers';
import { NOW, kmsClient, tempDir } from './helpers.js';
import { openSimulatorState } from '../../enclave/sim-state.js';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';
import { startKmsSimulator } from '../../host/kms-sim/server.js';
import { ensureRootCredentials, PRINCIPALS_DIR } from '../../host/kms-sim/principals.js';
import { buildEnclaveKeyPolicy } from '../../host/key-policy.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const RUN_MAIN = "const m = await import('./host/cli/main.ts'); process.exitCode = await m.main(process.argv.slice(1));";

function spawnCli(args: string[]) {
  return spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', RUN_MAIN, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
}

describe('`enclavekit sim kms`', () => {
  it('prints `listening` with its URL, serves the SDK, and exits 0 on SIGTERM', async () => {
    const t = tempDir();
    const child = spawnCli(['sim', 'kms', '--port', '0', '--state', t.dir]);
    let out = '';
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        void exited.then(() => reject(new Error(`exited early: ${out} ${err}`)));
      });
      // Signed with the root key the simulator wrote to DIR/credentials on first use.
      expect(out).toContain(`AWS_SHARED_CREDENTIALS_FILE=${join(t.dir, 'credentials')} AWS_PROFILE=enclavekit-sim`);
      const c = kmsClient({ url, credentials: await ensureRootCredentials(t.dir, { accountId: '111122223333' }) }, undefined, new Date());
      expect((await c.send(new ListKeysCommand({}))).Keys).toEqual([]);
      c.destroy();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toContain('stopped');
      expect(err).not.toMatch(/NodeVersion|deprecat/i);
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
      t.cleanup();
    }
  }, 30_000);

  it('refuses a non-loopback host, a bad port, no --state, --sim-root without --trust-simulator (exit 2)', async () => {
    const t = tempDir();
    try {
      for (const args of [
        ['--state', t.dir, '--host', '0.0.0.0'],
        ['--state', t.dir, '--sim-root', join(t.dir, 'x.pem')],
        ['--port', '99999', '--state', t.dir],
        ['--port', '0'],
      ]) {
        const child = spawnCli(['sim', 'kms', ...args]);
        let err = '';
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
        expect({ args, code }).toEqual({ args, code: 2 });
        expect(err).toMatch(/enclavekit sim( kms)?: /);
      }
    } finally {
      t.cleanup();
    }
  }, 30_000);

  it('an explicit --sim-root is what gets trusted, not the state folder\'s root', async () => {
    const t = tempDir();
    try {
      await openSimulatorState(t.dir, { now: new Date() });
      const bad = join(t.dir, 'not-a-root.pem');
      writeFileSync(bad, 'no certificate here\n');
      // Before, sim-ca.json silently won and this started; the PEM the user named must be read.
      const child = spawnCli(['sim', 'kms', '--state', t.dir, '--trust-simulator', '--sim-root', bad]);
      let err = '';
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      const timer = setTimeout(() => child.kill('SIGTERM'), 20_000);
      const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      clearTimeout(timer);
      expect(code).toBe(2);
      expect(err).toMatch(/not-a-root\.pem/);
    } finally {
      t.cleanup();
    }
  }, 30_000);
});

function cliIO(now = NOW): { io: CliIO; out: () => string; err: () => string } {
  const o = new PassThrough();
  const e = new PassThrough();
  let out = '';
  let err = '';
  o.on('data', (c: Buffer) => (out += c.toString()));
  e.on('data', (c: Buffer) => (err += c.toString()));
  return { io: { stdout: o, stderr: e, stdin: new PassThrough(), env: {}, now: () => now }, out: () => out, err: () => err };
}

describe('`enclavekit sim kms --trust-simulator` on a fresh state folder', () => {
  it('creates the simulator CA there (instead of failing) and says so', async () => {
    const t = tempDir();
    const child = spawnCli(['sim', 'kms', '--port', '0', '--state', join(t.dir, 'new'), '--trust-simulator']);
    let out = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('AWS_PROFILE=')) resolve();
        });
        void exited.then(() => reject(new Error(`exited early: ${out}`)));
      });
      expect(out).toMatch(/simulator root trusted/);
      expect(out).toContain(`created the simulator CA in ${join(t.dir, 'new', 'sim-ca.json')}`);
      expect(statSync(join(t.dir, 'new', 'sim-ca.json')).mode & 0o777).toBe(0o600);
      // A simulated worker opening the folder later finds that CA, not a new one.
      expect((await openSimulatorState(join(t.dir, 'new'), { now: new Date() })).created).toBe(false);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
      t.cleanup();
    }
  }, 30_000);
});

describe('`enclavekit sim kms credentials add`', () => {
  const ROLE = 'arn:aws:iam::111122223333:role/enclave-parent';

  it('--json: credential_process-shaped keys of a role session, accepted at once by a running simulator', async () => {
    const t = tempDir();
    const sim = await startKmsSimulator({ stateDir: t.dir, now: () => NOW });
    try {
      const { io, out, err } = cliIO();
      const code = await main(['sim', 'kms', 'credentials', 'add', '--state', t.dir, '--principal', ROLE, '--session', '--session-name', 'i-0123', '--expires-in', '900', '--json'], io);
      expect([code, err()]).toEqual([0, '']);
      const j = JSON.parse(out());
      expect(j).toMatchObject({
        ok: true,
        Version: 1,
        AccessKeyId: expect.stringMatching(/^ASIA[A-Z2-7]{16}$/),
        SecretAccessKey: expect.any(String),
        SessionToken: expect.any(String),
        Expiration: new Date(NOW.getTime() + 900_000).toISOString(),
        Principal: 'arn:aws:sts::111122223333:assumed-role/enclave-parent/i-0123',
        AccountId: '111122223333',
      });
      const c = kmsClient(sim, { accessKeyId: j.AccessKeyId, secretAccessKey: j.SecretAccessKey, sessionToken: j.SessionToken });
      try {
        // It signs as the role session: a policy naming the role lets it, and the root is not it.
        const policy = buildEnclaveKeyPolicy({ pcrs: new Map([[0, new Uint8Array(48)]]), keyAdmin: ROLE, dataOwner: 'arn:aws:iam::111122223333:role/o', role: 'arn:aws:iam::111122223333:role/r' });
        const key = (await c.send(new CreateKeyCommand({ Policy: policy }))).KeyMetadata!.KeyId!;
        await expect(c.send(new GenerateDataKeyCommand({ KeyId: key, KeySpec: 'AES_256' }))).rejects.toMatchObject({ name: 'AccessDeniedException', message: expect.stringContaining('assumed-role/enclave-parent/i-0123') });
      } finally {
        c.destroy();
      }
    } finally {
      await sim.close();
      t.cleanup();
    }
  });

  it('the JSON is usable as an AWS credential_process', async () => {
    const t = tempDir();
    const sim = await startKmsSimulator({ stateDir: t.dir, now: () => new Date() });
    try {
      const { io, out } = cliIO(new Date());
      expect(await main(['sim', 'kms', 'credentials', 'add', '--state', t.dir, '--principal', 'arn:aws:iam::111122223333:user/ci', '--json'], io)).toBe(0);
      const script = join(t.dir, 'creds.sh');
      writeFileSync(script, `#!/bin/sh\ncat <<'EOF'\n${out().trim()}\nEOF\n`, { mode: 0o700 });
      const config = join(t.dir, 'config');
      writeFileSync(config, `[profile ci]\ncredential_process = ${script}\n`, { mode: 0o600 });
      const provider = fromProcess({ profile: 'ci', filepath: join(t.dir, 'none'), configFilepath: config, ignoreCache: true });
      const c = new KMSClient({ region: 'us-east-1', endpoint: sim.url, credentials: provider, maxAttempts: 1 });
      try {
        expect((await c.send(new ListKeysCommand({}))).Keys).toEqual([]);
      } finally {
        c.destroy();
      }
    } finally {
      await sim.close();
      t.cleanup();
    }
  });

  it('text output is shell that exports the keys; a fresh folder also gets the root and its credentials file', async () => {
    const t = tempDir();
    try {
      const { io, out } = cliIO();
      expect(await main(['sim', 'kms', 'credentials', 'add', '--state', join(t.dir, 's'), '--principal', 'arn:aws:iam::111122223333:user/alice'], io)).toBe(0);
      expect(out()).toMatch(/^# arn:aws:iam::111122223333:user\/alice\nexport AWS_ACCESS_KEY_ID='AKIA[A-Z2-7]{16}'\nexport AWS_SECRET_ACCESS_KEY='[A-Za-z0-9+/]{40}'\nunset AWS_SESSION_TOKEN\n$/);
      expect(existsSync(join(t.dir, 's', 'credentials'))).toBe(true);
      expect(statSync(join(t.dir, 's')).mode & 0o777).toBe(0o700);
      expect(readdirSync(join(t.dir, 's', PRINCIPALS_DIR))).toHaveLength(2);
      const s = cliIO();
      expect(await main(['sim', 'kms', 'credentials', 'add', '--state', join(t.dir, 's'), '--principal', ROLE, '--session'], s.io)).toBe(0);
      expect(s.out()).toMatch(/^# arn:aws:sts::111122223333:assumed-role\/enclave-parent\/enclavekit-sim \(temporary credentials, expire 2026-06-01T13:00:00.000Z\)\nexport AWS_ACCESS_KEY_ID='ASIA[A-Z2-7]{16}'\n.*\nexport AWS_SESSION_TOKEN='[A-Za-z0-9+/=]+'\n$/s);
    } finally {
      t.cleanup();
    }
  });

  it('usage errors exit 2 and print nothing secret; --json gives {"ok":false}', async () => {
    const t = tempDir();
    try {
      const bad: string[][] = [
        ['--principal', ROLE],
        ['--state', t.dir],
        ['--state', t.dir, '--principal', ROLE],
        ['--state', t.dir, '--principal', 'arn:aws:iam::111122223333:user/x', '--expires-in', '60'],
        ['--state', t.dir, '--principal', ROLE, '--session', '--expires-in', '0'],
        ['--state', t.dir, '--principal', ROLE, '--session', '--expires-in', '200000'],
        ['--state', t.dir, '--principal', ROLE, '--session-name', 'x1'],
        ['--state', t.dir, '--principal', '*'],
        ['--state', t.dir, '--principal', '111122223333'],
        ['--state', t.dir, '--principal', 'arn:aws:iam::111122223333:group/admins'],
        ['--state', t.dir, '--principal', ROLE, '--bogus'],
      ];
      for (const args of bad) {
        const { io, out, err } = cliIO();
        expect(await main(['sim', 'kms', 'credentials', 'add', ...args], io), args.join(' ')).toBe(2);
        expect(err()).toMatch(/^enclavekit sim( kms)?: /);
        expect(out()).toBe('');
      }
      const { io, out } = cliIO();
      expect(await main(['sim', 'kms', 'credentials', 'add', '--state', t.dir, '--principal', ROLE, '--json'], io)).toBe(2);
      expect(JSON.parse(out())).toMatchObject({ ok: false, code: 'ERR_USAGE', exit: 2, message: expect.stringContaining('--session') });
      for (const args of [['credentials'], ['credentials', 'remove']]) expect(await main(['sim', 'kms', ...args], cliIO().io), args.join(' ')).toBe(2);
      const help = cliIO();
      expect(await main(['sim', 'kms', 'credentials', '--help'], help.io)).toBe(0);
      expect(help.out()).toMatch(/credentials add --state DIR --principal ARN/);
    } finally {
      t.cleanup();
    }
  });
});

describe('the README\'s simulator examples', () => {
  it('every `sim kms credentials add` line of the README runs (state folder replaced) and prints working keys', async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('#### Principals and credentials'));
    const lines = section
      .slice(0, section.indexOf('Key policies are evaluated for the caller'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('enclavekit sim kms credentials add'));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    const t = tempDir();
    const sim = await startKmsSimulator({ stateDir: t.dir, now: () => NOW });
    try {
      for (const line of lines) {
        const args = line.replace('.enclavekit/kms', t.dir).split(/\s+/).slice(1);
        const { io, out, err } = cliIO();
        expect(await main(args, io), `${line}\n${err()}`).toBe(0);
        const text = out();
        const keys = args.includes('--json')
          ? (() => {
              const j = JSON.parse(text);
              return { accessKeyId: j.AccessKeyId, secretAccessKey: j.SecretAccessKey, sessionToken: j.SessionToken };
            })()
          : {
              accessKeyId: /AWS_ACCESS_KEY_ID='([^']+)'/.exec(text)![1]!,
              secretAccessKey: /AWS_SECRET_ACCESS_KEY='([^']+)'/.exec(text)![1]!,
              ...(/AWS_SESSION_TOKEN='([^']+)'/.exec(text) ? { sessionToken: /AWS_SESSION_TOKEN='([^']+)'/.exec(text)![1]! } : {}),
            };
        const c = kmsClient(sim, keys);
        try {
          expect((await c.send(new ListKeysCommand({}))).Keys, line).toBeInstanceOf(Array);
        } finally {
          c.destroy();
        }
      }
    } finally {
      await sim.close();
      t.cleanup();
    }
  });

  it('the SDK default chain reads STATE/credentials from AWS_SHARED_CREDENTIALS_FILE + AWS_PROFILE: `encrypt` needs nothing else', async () => {
    const t = tempDir();
    const sim = await startKmsSimulator({ stateDir: join(t.dir, 'kms'), now: () => new Date() });
    try {
      const root = kmsClient(sim, sim.credentials, new Date());
      const key = (await root.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
      root.destroy();
      const plain = join(t.dir, 'in.ndjson');
      writeFileSync(plain, '{"id":"a","email":"x@example.org"}\n{"id":"b","email":"y@example.org"}\n');
      const env: NodeJS.ProcessEnv = { ...process.env, AWS_SHARED_CREDENTIALS_FILE: sim.credentialsFile, AWS_PROFILE: 'enclavekit-sim', AWS_CONFIG_FILE: join(t.dir, 'no-config') };
      for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) delete env[k];
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', RUN_MAIN,
        'encrypt', '--in', plain, '--fields', 'email', '--id-field', 'id', '--dataset', 'ds', '--key-id', key, '--endpoint', sim.url,
        '--out', join(t.dir, 'out.ndjson'), '--manifest', join(t.dir, 'm.json')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
      let err = '';
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      const killer = setTimeout(() => child.kill('SIGKILL'), 25_000);
      const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      clearTimeout(killer);
      expect([code, err]).toEqual([0, '']);
      expect(readFileSync(join(t.dir, 'out.ndjson'), 'utf8')).not.toContain('x@example.org');
    } finally {
      await sim.close();
      t.cleanup();
    }
  }, 30_000);
});
