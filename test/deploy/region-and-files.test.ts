/**
 * One region setting drives the KMS endpoint, the proxy allowlist and the image build: the endpoint
 * function agrees with the AWS SDK's own resolver, `enclavekit proxy allowlist` and `proxy serve`
 * follow it, and the deployment files in scripts/enclave/ (allocator.yaml, systemd units, scripts)
 * are well formed and only use flags the CLI accepts (checked with --help, which parses every flag
 * first; nothing here listens on or connects to vsock).
 */
import { describe, it, expect } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { KMSClient } from '@aws-sdk/client-kms';
import { kmsEndpointHost, kmsEndpointUrl, kmsAllowlistYaml, awsPartitionOf } from '../../enclave/protocol/kms-endpoint.js';
import { parseAllowlistYaml } from '../../host/kms-proxy.js';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const ROOT = new URL('../../', import.meta.url).pathname;
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

function io(): CliIO & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c) => (o += c));
  stderr.on('data', (c) => (e += c));
  return { stdout, stderr, stdin: new PassThrough(), env: {}, now: () => new Date(), out: () => o, err: () => e };
}

const REGIONS = ['us-east-1', 'us-west-2', 'eu-west-1', 'eu-central-2', 'ap-southeast-7', 'ca-west-1', 'mx-central-1', 'il-central-1', 'us-gov-west-1', 'us-gov-east-1', 'cn-north-1', 'cn-northwest-1', 'eusc-de-east-1'];

describe('KMS endpoints from one region setting', () => {
  it('agree with the AWS SDK\'s own KMS endpoint resolver, standard and FIPS', () => {
    const sdk = new KMSClient({ region: 'us-east-1' });
    for (const r of REGIONS)
      for (const fips of [false, true]) {
        const want = sdk.config.endpointProvider({ Region: r, UseFIPS: fips, UseDualStack: false }).url.href.replace(/\/$/, '');
        expect(kmsEndpointUrl(r, { fips }), `${r} fips=${fips}`).toBe(want);
      }
    sdk.destroy();
  });

  it('refuse what is not a region name, so a typo never becomes an allowlist entry', () => {
    for (const bad of ['', 'us-east', 'US-EAST-1', 'us-east-1.evil.example', 'kms.us-east-1.amazonaws.com', 'us-east-1 ', 'xx-east-1'])
      expect(() => kmsEndpointHost(bad), JSON.stringify(bad)).toThrow(RangeError);
    expect(awsPartitionOf('us-gov-west-1')).toBe('aws-us-gov');
    expect(awsPartitionOf('cn-north-1')).toBe('aws-cn');
  });

  it('scripts/enclave/vsock-proxy.yaml is the generated allowlist for us-east-1', () => {
    expect(read('scripts/enclave/vsock-proxy.yaml')).toBe(kmsAllowlistYaml('us-east-1'));
    expect(parseAllowlistYaml(kmsAllowlistYaml('eu-west-1', { fips: true }))).toEqual([{ host: 'kms-fips.eu-west-1.amazonaws.com', port: 443 }]);
  });

  it('enclavekit proxy allowlist --region R [--fips] [--json]', async () => {
    let t = io();
    expect(await main(['proxy', 'allowlist', '--region', 'eu-west-1'], t)).toBe(0);
    expect(parseAllowlistYaml(t.out())).toEqual([{ host: 'kms.eu-west-1.amazonaws.com', port: 443 }]);
    t = io();
    expect(await main(['proxy', 'allowlist', '--region', 'us-gov-west-1', '--fips', '--json'], t)).toBe(0);
    expect(JSON.parse(t.out())).toEqual({ ok: true, region: 'us-gov-west-1', fips: true, host: 'kms-fips.us-gov-west-1.amazonaws.com', port: 443, endpoint: 'https://kms-fips.us-gov-west-1.amazonaws.com' });
    t = io();
    expect(await main(['proxy', 'allowlist', '--region', 'eu-west-1.attacker.example'], t)).toBe(2);
    expect(await main(['proxy', 'allowlist'], io())).toBe(2);
  });

  it('the worker takes --region and --fips (and AWS_USE_FIPS_ENDPOINT), and refuses a bad region before anything else', () => {
    const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'enclave/cli.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env } });
    let r = run(['--listen', 'unix:/nonexistent/w.sock', '--platform', 'nitro', '--region', 'not-a-region']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--region: "not-a-region" is not an AWS region name/);
    r = run(['--listen', 'unix:/nonexistent/w.sock', '--platform', 'nitro', '--region', 'eu-west-1', '--fips', '--kms-endpoint', 'https://kms.eu-west-1.amazonaws.com']);
    expect(r.status).toBe(2);
    // With a valid region the worker goes on to open /dev/nsm (absent here): past the usage checks.
    r = run(['--listen', 'unix:/nonexistent/w.sock', '--platform', 'nitro', '--region', 'eu-west-1'], { AWS_USE_FIPS_ENDPOINT: 'true' });
    expect(r.stderr).toMatch(/ERR_PLATFORM_UNAVAILABLE/);
  });
});

describe('enclavekit proxy serve', () => {
  it('forwards only to the allowed target, bytes untouched, until SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ek-proxy-'));
    const echo = createServer((s) => s.pipe(s));
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    const port = (echo.address() as { port: number }).port;
    try {
      const allow = join(dir, 'allow.yaml');
      writeFileSync(allow, `allowlist:\n  - {address: 127.0.0.1, port: ${port}}\n`);
      // Not allowed: refused before listening (usage, exit 2).
      const t = io();
      expect(await main(['proxy', 'serve', '--listen', `unix:${join(dir, 'no.sock')}`, '--target', '127.0.0.1:1', '--allow-file', allow], t)).toBe(2);
      expect(t.err()).toMatch(/not in the allowlist/);
      const sock = join(dir, 'kms.sock');
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '-e', `import('./host/cli/main.ts').then((m) => m.main(['proxy', 'serve', '--listen', 'unix:${sock}', '--target', '127.0.0.1:${port}', '--allow-file', '${allow}'])).then((c) => process.exit(c))`],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.on('data', (c) => (out += c));
      const deadline = Date.now() + 20_000;
      while (!out.includes('listening') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(out).toMatch(/enclavekit KMS proxy listening on unix:.* forwarding to 127\.0\.0\.1:\d+/);
      const c = connect(sock);
      await once(c, 'connect');
      c.write('TLS bytes, untouched');
      const [echoed] = (await once(c, 'data')) as [Buffer];
      expect(echoed.toString()).toBe('TLS bytes, untouched');
      c.destroy();
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number];
      expect(code).toBe(0);
      expect(out).toMatch(/stopped/);
    } finally {
      echo.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);
});

describe('scripts/enclave: deployment files', () => {
  it('allocator.yaml: exactly memory_mib and cpu_count, sized for the measured worker and nitro-cli\'s 4x EIF rule', () => {
    const a = parseYaml(read('scripts/enclave/allocator.yaml')) as Record<string, unknown>;
    expect(Object.keys(a).sort()).toEqual(['cpu_count', 'memory_mib']);
    expect(a.cpu_count).toBe(2);
    const mib = a.memory_mib as number;
    expect(Number.isInteger(mib) && mib % 2 === 0).toBe(true);
    // An EIF near 300 MiB needs 1200 MiB; the unit and run-enclave.sh default to the same figure.
    expect(mib).toBeGreaterThanOrEqual(1200);
    expect(read('scripts/enclave/run-enclave.sh')).toContain(`"\${2:-${mib}}"`);
    expect(read('scripts/enclave/systemd/enclavekit.env')).toContain(`ENCLAVE_MEMORY_MIB=${mib}`);
  });

  it('shell scripts parse', () => {
    for (const f of ['build-eif.sh', 'run-enclave.sh', 'wait-healthy.sh']) {
      const r = spawnSync('bash', ['-n', join(ROOT, 'scripts/enclave', f)], { encoding: 'utf8' });
      expect(r.status, `${f}: ${r.stderr}`).toBe(0);
    }
  });

  /** systemd unit files: [Section] and Key=Value lines (continuations and comments aside). */
  function unit(path: string): Map<string, Map<string, string[]>> {
    const out = new Map<string, Map<string, string[]>>();
    let sec: Map<string, string[]> | undefined;
    for (const line of read(path).split('\n')) {
      const t = line.trim();
      if (t === '' || t.startsWith('#') || t.startsWith(';')) continue;
      const s = /^\[(\w+)\]$/.exec(t);
      if (s) {
        sec = new Map();
        out.set(s[1]!, sec);
        continue;
      }
      const kv = /^([A-Za-z]+)=(.*)$/.exec(t);
      expect(kv, `${path}: ${t}`).not.toBeNull();
      expect(sec, `${path}: key before any section`).toBeDefined();
      sec!.set(kv![1]!, [...(sec!.get(kv![1]!) ?? []), kv![2]!]);
    }
    return out;
  }

  /** systemd's expansion: ${X} one word, $X split on spaces (empty: no word). */
  function expand(cmd: string, env: Record<string, string>): string[] {
    const words: string[] = [];
    for (const w of cmd.split(/\s+/).filter(Boolean)) {
      const whole = /^\$([A-Z_]+)$/.exec(w);
      if (whole) words.push(...(env[whole[1]!] ?? '').split(/\s+/).filter(Boolean));
      else words.push(w.replace(/\$\{([A-Z_]+)\}/g, (_m, k: string) => env[k] ?? ''));
    }
    return words;
  }

  it('systemd units: sections, the env file they read, and enclavekit commands the CLI accepts', async () => {
    const env: Record<string, string> = {};
    for (const line of read('scripts/enclave/systemd/enclavekit.env').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      if (m) env[m[1]!] = m[2]!;
    }
    env.ENCLAVEKIT_STATUS_EXPECT = `--expect-pcr 0=${'ab'.repeat(48)} --expect-pcr 0=${'cd'.repeat(48)}`;
    env.ENCLAVEKIT_FIPS_FLAG = '--fips';
    const files = readdirSync(join(ROOT, 'scripts/enclave/systemd')).filter((f) => /\.(service|timer)$/.test(f)).sort();
    expect(files).toEqual(['enclavekit-health.service', 'enclavekit-health.timer', 'enclavekit-host.service', 'enclavekit-kms-proxy.service']);
    let checked = 0;
    for (const f of files) {
      const u = unit(`scripts/enclave/systemd/${f}`);
      expect(u.has('Unit')).toBe(true);
      if (f.endsWith('.timer')) {
        expect(u.get('Timer')?.get('OnUnitActiveSec')).toEqual(['1min']);
        continue;
      }
      const svc = u.get('Service')!;
      expect(svc.get('EnvironmentFile')).toEqual(['/etc/enclavekit/enclavekit.env']);
      for (const cmd of svc.get('ExecStart') ?? []) {
        const words = expand(cmd, env);
        const i = words.findIndex((w) => w.endsWith('/bin/enclavekit.js'));
        if (i < 0) {
          expect(words[0]).toBe('/usr/bin/nitro-cli');
          expect(words).toContain('--enclave-cid');
          continue;
        }
        // --help after every flag: parseArgs checks each flag first, then the command only prints help.
        const t = io();
        const code = await main([...words.slice(i + 1), '--help'], t);
        expect(code, `${f}: ${words.slice(i + 1).join(' ')}: ${t.err()}`).toBe(0);
        checked++;
      }
    }
    expect(checked).toBe(2);
  });
});
