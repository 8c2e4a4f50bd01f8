import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { ListKeysCommand } from '@aws-sdk/client-kms';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kmsClient, tempDir } from './helpers.js';
import { openSimulatorState } from '../../enclave/sim-state.js';

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
      const c = kmsClient(url);
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

  it('refuses a non-loopback host and --trust-simulator without a root (exit 2)', async () => {
    const t = tempDir();
    try {
      for (const args of [
        ['--state', t.dir, '--host', '0.0.0.0'],
        ['--state', t.dir, '--trust-simulator'],
        ['--port', '99999', '--state', t.dir],
        ['--port', '0'],
      ]) {
        const child = spawnCli(['sim', 'kms', ...args]);
        let err = '';
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
        expect({ args, code }).toEqual({ args, code: 2 });
        expect(err).toMatch(/enclavekit sim: /);
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
