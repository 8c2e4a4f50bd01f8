/** The TS socket layer against a fake binding: no .node file needed. */
import { describe, expect, it, vi } from 'vitest';
import { once } from 'node:events';
import type { SockEventHandler, SockHandle, SocketBinding } from '../../native/binding.js';
import { SocketApi, parseEndpoint, formatEndpoint, VMADDR_CID_ANY, type NativeStream } from '../../native/socket.js';
import { NativeError } from '../../native/errors.js';

const EV = { CONNECTION: 1, CONNECT: 2, READ: 3, WRITE: 4 };

class FakeHandle implements SockHandle {
  cb: SockEventHandler | null = null;
  reading = false;
  closed = false;
  written: Uint8Array[][] = [];
  writeResult: 0 | 1 | Error = 0;
  shutdowns = 0;
  start(cb: SockEventHandler) { this.cb = cb; }
  readStart() { this.reading = true; }
  readStop() { this.reading = false; }
  write(chunks: Uint8Array[]) { this.written.push(chunks); return this.writeResult; }
  shutdown() { this.shutdowns++; return undefined; }
  close() { this.closed = true; }
  address() { return { family: 'unix' as const, path: '/x' }; }
  fd() { return 3; }
  refd = true;
  ref() { this.refd = true; }
  unref() { this.refd = false; }
  emit(type: number, err?: Error, a?: unknown, n?: number) { this.cb!(type, err, a, n); }
}

function fakeBinding() {
  const handles: FakeHandle[] = [];
  const calls: unknown[][] = [];
  const b = {
    socketEvents: EV,
    listen: vi.fn((...args: unknown[]) => {
      calls.push(['listen', ...args.slice(0, -1)]);
      const h = new FakeHandle();
      h.start(args[args.length - 1] as SockEventHandler);
      handles.push(h);
      return h;
    }),
    connect: vi.fn((...args: unknown[]) => {
      calls.push(['connect', ...args.slice(0, -1)]);
      const h = new FakeHandle();
      h.start(args[args.length - 1] as SockEventHandler);
      handles.push(h);
      return h;
    }),
  };
  return { binding: b as unknown as SocketBinding, handles, calls, raw: b };
}

async function connected(): Promise<{ s: NativeStream; h: FakeHandle }> {
  const f = fakeBinding();
  const api = new SocketApi(f.binding);
  const p = api.connectUnix('/tmp/x.sock');
  const h = f.handles[0]!;
  h.emit(EV.CONNECT);
  return { s: await p, h };
}

describe('argument validation before the boundary', () => {
  const f = fakeBinding();
  const api = new SocketApi(f.binding);
  it('unix paths: non-empty, no NUL, at most 107 bytes', () => {
    expect(() => api.listenUnix('')).toThrow(TypeError);
    expect(() => api.listenUnix('a\0b')).toThrow(RangeError);
    expect(() => api.listenUnix('/' + 'a'.repeat(107))).toThrow(/at most 107 bytes, got length=108/);
    expect(() => api.listenUnix('/' + 'é'.repeat(54))).toThrow(/length=109/);
    api.listenUnix('/' + 'a'.repeat(106)).close();
  });
  it('vsock CID and port ranges', () => {
    expect(() => api.connectVsock(0, 5000)).toThrow(RangeError); // the hypervisor
    expect(() => api.connectVsock(VMADDR_CID_ANY, 5000)).toThrow(RangeError);
    expect(() => api.connectVsock(3, -1)).toThrow(RangeError);
    expect(() => api.connectVsock(3, 2 ** 32)).toThrow(RangeError);
    expect(() => api.connectVsock(3.5, 1)).toThrow(RangeError);
    expect(() => api.listenVsock(2 ** 32)).toThrow(RangeError);
    expect(() => api.listenVsock(5000, { backlog: 0 })).toThrow(RangeError);
    expect(f.raw.connect).not.toHaveBeenCalled();
    api.listenVsock(5000).close();
    expect(f.calls.at(-1)).toEqual(['listen', 'vsock', VMADDR_CID_ANY, 5000, 511]);
  });
});

describe('parseEndpoint', () => {
  it('parses the three forms', () => {
    expect(parseEndpoint('vsock:3:8000')).toEqual({ kind: 'vsock', cid: 3, port: 8000 });
    expect(parseEndpoint('vsock:ANY:5000')).toEqual({ kind: 'vsock', cid: VMADDR_CID_ANY, port: 5000 });
    expect(parseEndpoint('unix:/run/ek.sock')).toEqual({ kind: 'unix', path: '/run/ek.sock' });
    expect(formatEndpoint(parseEndpoint('vsock:ANY:5000'))).toBe('vsock:ANY:5000');
  });
  it.each(['vsock:3', 'vsock:-1:5', 'vsock:03:5', 'vsock:4294967296:1', 'vsock:3:4294967296', 'vsock:any:1', 'tcp:1.2.3.4:5', 'unix:', `unix:/${'a'.repeat(200)}`, 'vsock:3:8000 ', ''])('refuses %j', (t) => {
    expect(() => parseEndpoint(t)).toThrow(expect.objectContaining({ code: 'ERR_VSOCK_ENDPOINT_INVALID' }));
  });
});

describe('NativeStream over a fake handle', () => {
  it('reads only while the consumer wants data (backpressure)', async () => {
    const { s, h } = await connected();
    expect(h.reading).toBe(false);
    const chunks: Buffer[] = [];
    s.on('data', (b: Buffer) => chunks.push(b));
    await new Promise((r) => setImmediate(r));
    expect(h.reading).toBe(true);
    const buf = Buffer.alloc(100, 1);
    h.emit(EV.READ, undefined, buf, 10);
    expect(chunks[0]!.length).toBe(10); // sliced to n
    s.pause();
    // Overfill the readable buffer: the stream must tell the addon to stop reading.
    for (let i = 0; i < 20 && h.reading; i++) h.emit(EV.READ, undefined, Buffer.alloc(128 * 1024), 128 * 1024);
    expect(h.reading).toBe(false);
    s.destroy();
  });

  it('a pending write completes on the WRITE event; errors reach the callback', async () => {
    const { s, h } = await connected();
    h.writeResult = 1;
    const done = vi.fn();
    s.write(Buffer.from('abc'), done);
    await new Promise((r) => setImmediate(r));
    expect(done).not.toHaveBeenCalled();
    h.writeResult = 0;
    h.emit(EV.WRITE);
    await new Promise((r) => setImmediate(r));
    expect(done).toHaveBeenCalledWith(null);
    s.on('error', () => undefined);
    const e = Object.assign(new Error('write EPIPE: broken pipe'), { code: 'EPIPE', errno: -32, syscall: 'write' });
    h.writeResult = e;
    const cb = vi.fn();
    s.write(Buffer.from('x'), cb);
    await new Promise((r) => setImmediate(r));
    expect(cb.mock.calls[0]![0]).toMatchObject({ code: 'EPIPE', errno: -32, syscall: 'write' });
    expect(cb.mock.calls[0]![0]).toBeInstanceOf(NativeError);
    expect(h.closed).toBe(true);
  });

  it('end() shuts the write side down once; EOF ends the readable side; then it closes', async () => {
    const { s, h } = await connected();
    s.resume();
    s.end();
    await once(s, 'finish');
    expect(h.shutdowns).toBe(1);
    const closed = once(s, 'close');
    h.emit(EV.READ, undefined, undefined);
    await closed;
    expect(h.closed).toBe(true);
  });

  it('a read error destroys the stream with a NativeError', async () => {
    const { s, h } = await connected();
    s.resume();
    const err = once(s, 'error');
    h.emit(EV.READ, Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', errno: -104, syscall: 'read' }));
    const [e] = (await err) as [NativeError];
    expect(e.code).toBe('ECONNRESET');
    expect(h.closed).toBe(true);
  });

  it('connect errors reject and close the handle', async () => {
    const f = fakeBinding();
    const api = new SocketApi(f.binding);
    const p = api.connectVsock(3, 8000);
    f.handles[0]!.emit(EV.CONNECT, Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect' }));
    await expect(p).rejects.toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect' });
    expect(f.handles[0]!.closed).toBe(true);
  });

  it('a server hands out streams and reports accept errors', async () => {
    const f = fakeBinding();
    const api = new SocketApi(f.binding);
    const srv = api.listenUnix('/tmp/s.sock');
    const conn = once(srv, 'connection');
    f.handles[0]!.emit(EV.CONNECTION, undefined, new FakeHandle());
    const [s] = (await conn) as [NativeStream];
    expect(s.address()).toEqual({ family: 'unix', path: '/x' });
    const err = once(srv, 'error');
    f.handles[0]!.emit(EV.CONNECTION, Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', errno: -24, syscall: 'accept' }));
    expect(((await err) as [NativeError])[0].code).toBe('EMFILE');
    srv.close();
    await once(srv, 'close');
    expect(f.handles[0]!.closed).toBe(true);
    s.destroy();
  });
});
