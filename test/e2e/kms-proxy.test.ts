import { describe, it, expect, afterEach } from 'vitest';
import { createServer, createConnection, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import {
  startKmsProxy,
  parseAllowlistYaml,
  parseHostPort,
  hostPortOfUrl,
  type KmsProxy,
} from '../../host/kms-proxy.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function echoServer(): Promise<{ port: number; server: Server; accepted: () => number }> {
  let n = 0;
  const server = createServer((s) => {
    n++;
    s.pipe(s);
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as { port: number }).port, server, accepted: () => n };
}

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'ek-proxy-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function roundTrip(path: string, payload: Buffer): Promise<Buffer> {
  const s = createConnection(path);
  await once(s, 'connect');
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.end(payload);
  await once(s, 'close');
  return Buffer.concat(chunks);
}

describe('KMS proxy', () => {
  it('forwards bytes untouched, both ways, to the allow-listed endpoint', async () => {
    const echo = await echoServer();
    const path = join(tmp(), 'kms.sock');
    const proxy = await startKmsProxy({
      listen: { kind: 'unix', path },
      target: { host: '127.0.0.1', port: echo.port },
      allow: [{ host: '127.0.0.1', port: echo.port }],
    });
    cleanups.push(() => proxy.close());
    const payload = Buffer.alloc(300_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) & 0xff;
    expect((await roundTrip(path, payload)).equals(payload)).toBe(true);
    expect(echo.accepted()).toBe(1);
  });

  it('refuses to start toward an endpoint that is not allow-listed', async () => {
    const path = join(tmp(), 'kms.sock');
    await expect(
      startKmsProxy({ listen: { kind: 'unix', path }, target: { host: '10.0.0.1', port: 443 }, allow: [{ host: '127.0.0.1', port: 443 }] }),
    ).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID', reason: 'not_allowed' });
    expect(existsSync(path)).toBe(false);
  });

  it('bounds concurrent connections and closes everything on shutdown', async () => {
    const echo = await echoServer();
    const path = join(tmp(), 'kms.sock');
    const proxy: KmsProxy = await startKmsProxy({
      listen: { kind: 'unix', path },
      target: { host: '127.0.0.1', port: echo.port },
      allow: [{ host: '127.0.0.1', port: echo.port }],
      maxConnections: 2,
    });
    const socks: Socket[] = [];
    for (let i = 0; i < 2; i++) {
      const s = createConnection(path);
      s.on('error', () => {});
      await once(s, 'connect');
      s.write('x');
      await once(s, 'data');
      socks.push(s);
    }
    expect(proxy.active()).toBe(2);
    const third = createConnection(path);
    third.on('error', () => {});
    await once(third, 'close');
    expect(proxy.active()).toBe(2);
    const closed = socks.map((s) => once(s, 'close'));
    await proxy.close();
    await Promise.all(closed);
    expect(proxy.active()).toBe(0);
    expect(existsSync(path)).toBe(false);
  });

  it('closes the client when the upstream is unreachable', async () => {
    const echo = await echoServer();
    const port = echo.port;
    await new Promise<void>((r) => echo.server.close(() => r()));
    const path = join(tmp(), 'kms.sock');
    const proxy = await startKmsProxy({ listen: { kind: 'unix', path }, target: { host: '127.0.0.1', port }, allow: [{ host: '127.0.0.1', port }] });
    cleanups.push(() => proxy.close());
    const s = createConnection(path);
    s.on('error', () => {});
    await once(s, 'close');
    expect(proxy.active()).toBe(0);
  });

  it('parses vsock-proxy allowlist YAML strictly', () => {
    expect(parseAllowlistYaml('allowlist:\n- {address: kms.us-east-1.amazonaws.com, port: 443}\n- {address: "::1", port: 8443}\n')).toEqual([
      { host: 'kms.us-east-1.amazonaws.com', port: 443 },
      { host: '::1', port: 8443 },
    ]);
    for (const bad of ['allowlist: 3', 'other: []', 'allowlist:\n- {address: a, port: 0}', 'allowlist:\n- {address: a, port: 1, extra: 2}', 'allowlist: [', '- a']) {
      expect(() => parseAllowlistYaml(bad)).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }));
    }
  });

  it('parses HOST:PORT and endpoint URLs', () => {
    expect(parseHostPort('127.0.0.1:8443')).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(parseHostPort('[::1]:443')).toEqual({ host: '::1', port: 443 });
    expect(() => parseHostPort('host:99999')).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }));
    expect(() => parseHostPort('host')).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }));
    expect(hostPortOfUrl('https://kms.eu-west-1.amazonaws.com')).toEqual({ host: 'kms.eu-west-1.amazonaws.com', port: 443 });
    expect(hostPortOfUrl('http://127.0.0.1:4000/')).toEqual({ host: '127.0.0.1', port: 4000 });
  });
});
