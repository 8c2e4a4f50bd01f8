import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { webcrypto, randomBytes, createHash } from 'node:crypto';
import * as tls from 'node:tls';
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { nativeBinding } from '../../native/binding.js';
import { SocketApi, type NativeStream, type NativeServer, VMADDR_CID_ANY, VMADDR_PORT_ANY } from '../../native/socket.js';
import { NativeError } from '../../native/errors.js';

const binding = nativeBinding();
const d = describe.runIf(binding !== null);

let dir = '';
let n = 0;
const sockPath = () => join(dir, `s${n++}.sock`);
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ek-native-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function collect(s: NativeStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (c: Buffer) => parts.push(c));
  return new Promise((res, rej) => {
    s.on('end', () => res(Buffer.concat(parts)));
    s.on('error', rej);
  });
}

async function echoServer(api: SocketApi, opts = {}): Promise<{ srv: NativeServer; path: string }> {
  const path = sockPath();
  const srv = api.listenUnix(path, opts);
  srv.on('connection', (s: NativeStream) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  return { srv, path };
}

d('native stream sockets over AF_UNIX', () => {
  const api = new SocketApi(binding!);

  it('echoes a large write (32 MiB) and small writes byte for byte', async () => {
    const { srv, path } = await echoServer(api);
    const c = await api.connectUnix(path);
    const big = randomBytes(32 * 1024 * 1024);
    const got = collect(c);
    c.write(big);
    for (let i = 0; i < 1000; i++) c.write(Buffer.from([i & 0xff]));
    c.end();
    const out = await got;
    expect(out.length).toBe(big.length + 1000);
    expect(createHash('sha256').update(out.subarray(0, big.length)).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
    expect(out[big.length + 999]).toBe(999 & 0xff);
    srv.close();
  });

  it('applies backpressure to a fast writer when the reader is slow', async () => {
    const path = sockPath();
    const srv = api.listenUnix(path);
    const conn = once(srv, 'connection') as Promise<[NativeStream]>;
    const c = await api.connectUnix(path, { writableHighWaterMark: 64 * 1024 });
    const [s] = await conn;
    s.pause();
    const chunk = Buffer.alloc(64 * 1024, 1);
    let writes = 0;
    while (c.write(chunk)) writes++;
    // The kernel buffers plus our high-water mark fill up long before 1 GiB.
    expect(writes).toBeLessThan(1024);
    let drained = false;
    c.once('drain', () => {
      drained = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(drained).toBe(false);
    let received = 0;
    s.on('data', (b: Buffer) => {
      received += b.length;
    });
    s.resume();
    await once(c, 'drain');
    expect(received).toBeGreaterThan(0);
    c.end();
    await once(s, 'end');
    expect(received).toBe((writes + 1) * chunk.length);
    s.destroy();
    srv.close();
  });

  it('half-closes: the client ends, the server still answers, then ends', async () => {
    const path = sockPath();
    const srv = api.listenUnix(path, { allowHalfOpen: true });
    srv.on('connection', (s: NativeStream) => {
      const parts: Buffer[] = [];
      s.on('data', (b: Buffer) => parts.push(b));
      s.on('end', () => {
        s.end(Buffer.concat([Buffer.from('got:'), ...parts]));
      });
    });
    const c = await api.connectUnix(path, { allowHalfOpen: true });
    const got = collect(c);
    const closed = once(c, 'close');
    c.end('ping');
    expect((await got).toString()).toBe('got:ping');
    await closed;
    srv.close();
  });

  it('reports an abrupt peer death as ECONNRESET/EPIPE with code, errno and syscall', async () => {
    const path = sockPath();
    const srv = api.listenUnix(path);
    // The peer dies with our bytes unread in its queue: the kernel resets the connection.
    srv.on('connection', (s: NativeStream) => {
      setTimeout(() => s.destroy(), 20);
    });
    const c = await api.connectUnix(path);
    const closed = new Promise((r) => c.on('close', r));
    const err = await new Promise<NativeError>((resolve) => {
      c.on('error', resolve);
      c.resume();
      const w = () => {
        if (c.destroyed) return;
        c.write(Buffer.alloc(65536), () => setImmediate(w));
      };
      w();
    });
    expect(err).toBeInstanceOf(NativeError);
    expect(['ECONNRESET', 'EPIPE']).toContain(err.code);
    expect(typeof err.errno).toBe('number');
    expect(err.errno! < 0).toBe(true);
    expect(['read', 'write']).toContain(err.syscall);
    await closed;
    srv.close();
  });

  it('serves many concurrent connections', async () => {
    const { srv, path } = await echoServer(api);
    const results = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const c = await api.connectUnix(path);
        const got = collect(c);
        const msg = Buffer.alloc(10_000 + i, i);
        c.end(msg);
        return (await got).equals(msg);
      }),
    );
    expect(results.every(Boolean)).toBe(true);
    srv.close();
  });

  it('gives EADDRINUSE, ENOENT and ECONNREFUSED as Node does', async () => {
    const path = sockPath();
    const srv = api.listenUnix(path);
    let e: unknown;
    try {
      api.listenUnix(path);
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(NativeError);
    expect((e as NativeError).code).toBe('EADDRINUSE');
    expect((e as NativeError).syscall).toBe('bind');
    expect((e as NativeError).errno).toBe(-98);
    srv.close();
    await once(srv, 'close');
    expect(existsSync(path)).toBe(false); // the server unlinks its path on close
    await expect(api.connectUnix(join(dir, 'missing.sock'))).rejects.toMatchObject({ code: 'ENOENT', syscall: 'connect' });
    const stale = sockPath();
    writeFileSync(stale, '');
    await expect(api.connectUnix(stale)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('destroy() closes both ends; writes after destroy fail cleanly', async () => {
    const path = sockPath();
    const srv = api.listenUnix(path);
    const conn = once(srv, 'connection') as Promise<[NativeStream]>;
    const c = await api.connectUnix(path);
    const [s] = await conn;
    const ended = collect(s);
    const closed = once(c, 'close');
    c.destroy();
    await closed;
    expect((await ended).length).toBe(0);
    expect(c.destroyed).toBe(true);
    srv.close();
  });

  it('carries TLS (tls.connect({socket})) with a self-signed certificate made here', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=enclavekit-test',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3600_000),
      keys,
      signingAlgorithm: alg,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'enclavekit-test' }])],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
    const certPem = cert.toString('pem');

    const path = sockPath();
    const srv = api.listenUnix(path);
    srv.on('connection', (raw: NativeStream) => {
      const t = new tls.TLSSocket(raw, { isServer: true, key: keyPem, cert: certPem });
      t.on('error', () => undefined);
      t.pipe(t);
    });
    const raw = await api.connectUnix(path);
    const t = tls.connect({ socket: raw, ca: certPem, servername: 'enclavekit-test' });
    await once(t, 'secureConnect');
    expect(t.authorized).toBe(true);
    const payload = randomBytes(3 * 1024 * 1024);
    const parts: Buffer[] = [];
    t.on('data', (b: Buffer) => parts.push(b));
    t.write(payload);
    while (Buffer.concat(parts).length < payload.length) await once(t, 'data');
    expect(Buffer.concat(parts).equals(payload)).toBe(true);
    t.destroy();
    srv.close();
  });
});

d('ref/unref', () => {
  it('an unref\'ed listener does not keep a process alive; a ref\'ed one does', async () => {
    const { spawnSync } = await import('node:child_process');
    const addon = createRequire(import.meta.url).resolve('../../build/Release/enclavekit_native.node');
    const run = (unref: boolean) =>
      spawnSync(process.execPath, ['-e', `
        const b = require(${JSON.stringify(addon)});
        const s = b.listen('unix', ${JSON.stringify(sockPath())}, 16, () => {});
        ${unref ? 's.unref();' : ''}`], { timeout: 1500 });
    expect(run(true).status).toBe(0);
    const held = run(false);
    expect(held.status).toBeNull(); // still running when the timeout killed it
    expect(held.signal).toBe('SIGTERM');
  });
});

d('per-environment state', () => {
  it('a worker that leaves sockets open (even mid-connect) is torn down without a crash', async () => {
    const addon = createRequire(import.meta.url).resolve('../../build/Release/enclavekit_native.node');
    const path = sockPath();
    const code = `
      const b = require(${JSON.stringify(addon)});
      b.listen('unix', ${JSON.stringify(path)}, 16, () => {});
      b.connect('unix', ${JSON.stringify(path)}, () => {});
      require('node:worker_threads').parentPort.postMessage('up');`;
    for (let i = 0; i < 3; i++) {
      const w = new Worker(code, { eval: true });
      await once(w, 'message');
      await w.terminate();
    }
    expect(existsSync(path)).toBe(false); // the env cleanup hook closed the listener
  });
});

d('AF_VSOCK (create, bind on VMADDR_CID_ANY, listen, close only: never connect here)', () => {
  const api = new SocketApi(binding!);
  it('listens on CID ANY with a kernel-chosen port and closes', (ctx) => {
    let srv: NativeServer;
    try {
      srv = api.listenVsock(VMADDR_PORT_ANY);
    } catch (e) {
      // Kernels without the vsock transport refuse the socket family; that is not our bug.
      if (['EAFNOSUPPORT', 'ENODEV', 'EADDRNOTAVAIL'].includes((e as NativeError).code)) {
        ctx.skip();
        return;
      }
      throw e;
    }
    const a = srv.address();
    expect(a).toMatchObject({ family: 'vsock', cid: VMADDR_CID_ANY });
    expect((a as { port: number }).port).not.toBe(VMADDR_PORT_ANY);
    srv.close();
    expect(srv.listening).toBe(false);
  });
});
