/**
 * The frame protocol under abuse, both directions: a raw client against the real worker process, and
 * a fake worker (a plain socket server) against the host's job runner.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { once } from 'node:events';
import { FrameDecoder, encodeFrame, PROTOCOL_VERSION, type Message } from '../../enclave/protocol/index.js';
import { encodeCborFast } from '../../enclave/protocol/cbor.js';
import { runJob } from '../../host/run.js';
import { connectEnclave } from '../../host/enclave-conn.js';
import { setUp, type Fixture } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await setUp(60);
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

const nonce = () => new Uint8Array(32).fill(7);
const hello = (id = 0) => encodeFrame({ t: 'hello', id, version: PROTOCOL_VERSION, nonce: nonce() } as Message);
function rawFrame(body: Uint8Array): Uint8Array {
  const f = new Uint8Array(4 + body.length);
  new DataView(f.buffer).setUint32(0, body.length);
  f.set(body, 4);
  return f;
}

/** Send bytes to the worker; collect its messages until it closes. */
async function talk(chunks: Uint8Array[], opts: { end?: boolean } = {}): Promise<Message[]> {
  const s = createConnection(fx.worker.socketPath);
  s.on('error', () => {});
  await once(s, 'connect');
  const dec = new FrameDecoder();
  const got: Message[] = [];
  s.on('data', (c: Buffer) => got.push(...dec.push(new Uint8Array(c))));
  for (const c of chunks) s.write(c);
  if (opts.end) s.end();
  await once(s, 'close');
  return got;
}

describe('worker side: bad frames from the host', () => {
  it('a malformed frame body gets an error frame, then the connection closes', async () => {
    const got = await talk([rawFrame(new Uint8Array([0xff, 0x00, 0x13]))]);
    expect(got.at(-1)).toMatchObject({ t: 'error', code: 'ERR_PROTOCOL' });
  });
  it('an unknown message shape is refused', async () => {
    const got = await talk([rawFrame(encodeCborFast({ t: 'hello', id: 0, version: 1, nonce: nonce(), extra: 1 }))]);
    expect(got.at(-1)).toMatchObject({ t: 'error', code: 'ERR_PROTOCOL' });
  });
  it('an oversized frame is refused from its header', async () => {
    const h = new Uint8Array(4);
    new DataView(h.buffer).setUint32(0, 0xfffffff0);
    const got = await talk([h]);
    expect(got.at(-1)).toMatchObject({ t: 'error', code: 'ERR_FRAME_TOO_LARGE' });
  });
  it('a truncated frame (peer ends mid-frame) is an error', async () => {
    const f = hello();
    const got = await talk([f.subarray(0, f.length - 3)], { end: true });
    expect(got.at(-1)).toMatchObject({ t: 'error', code: 'ERR_PROTOCOL' });
  });
  it('out of order: records before hello, a skipped message id, job_end without a job', async () => {
    let got = await talk([encodeFrame({ t: 'records', id: 0, jobId: 'j1', seq: 0, records: [{ a: 1 }] } as Message)]);
    expect(got.at(-1)).toMatchObject({ t: 'error', code: 'ERR_PROTOCOL' });
    got = await talk([hello(0), hello(2)]);
    expect(got[0]!.t).toBe('attestation');
    expect(got.at(-1)).toMatchObject({ t: 'error', code: 'ERR_PROTOCOL' });
    got = await talk([hello(0), encodeFrame({ t: 'job_end', id: 1, jobId: 'j1', count: 0, datasetDigest: new Uint8Array(48) } as Message)]);
    expect(got.at(-1)).toMatchObject({ t: 'error', code: 'ERR_PROTOCOL' });
  });
  it('the worker survives all of that and still runs a job', async () => {
    const out = await runJob(fx.baseRun());
    expect(out.ok).toBe(true);
  });
});

/** A fake worker that answers the host with scripted bytes. */
async function fakeWorker(script: (sock: Socket, dec: FrameDecoder) => void): Promise<{ path: string; server: Server }> {
  const path = join(fx.stack.dir, `fake-${Math.random().toString(36).slice(2)}.sock`);
  const server = createServer((s) => {
    s.on('error', () => {});
    script(s, new FrameDecoder());
  });
  server.listen(path);
  await once(server, 'listening');
  return { path, server };
}

async function runAgainst(script: (sock: Socket, dec: FrameDecoder) => void) {
  const { path, server } = await fakeWorker(script);
  try {
    return await runJob(fx.baseRun({ connect: () => connectEnclave({ kind: 'unix', path }), helloTimeoutMs: 3000, resultTimeoutMs: 3000 }));
  } finally {
    server.close();
  }
}

describe('host side: bad frames from the worker', () => {
  it('garbage instead of an attestation', async () => {
    const out = await runAgainst((s) => s.write(rawFrame(new Uint8Array([0x9f, 0x01]))));
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.code).toBe('ERR_PROTOCOL');
  });
  it('an oversized frame header', async () => {
    const out = await runAgainst((s) => s.write(Uint8Array.of(0x7f, 0xff, 0xff, 0xff)));
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.code).toBe('ERR_FRAME_TOO_LARGE');
  });
  it('a truncated frame then close', async () => {
    const out = await runAgainst((s) => {
      const f = encodeFrame({ t: 'attestation', id: 0, evidence: new Uint8Array(100) } as Message);
      s.end(f.subarray(0, 20));
    });
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.code).toBe('ERR_PROTOCOL');
  });
  it('out of order: a result instead of an attestation, or a repeated message id', async () => {
    let out = await runAgainst((s) =>
      s.write(encodeFrame({ t: 'result', id: 0, jobId: 'x', result: new Uint8Array(1), evidence: new Uint8Array(1) } as Message)),
    );
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.code).toBe('ERR_PROTOCOL');
    out = await runAgainst((s) => {
      s.write(encodeFrame({ t: 'error', id: 1, code: 'ERR_X', message: 'skipped id 0' } as Message));
    });
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.code).toBe('ERR_PROTOCOL');
  });
  it('a worker that never answers times out', async () => {
    const out = await runAgainst(() => {});
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.reason).toBe('timeout');
  });
  it('an attestation that is not evidence fails verification', async () => {
    const out = await runAgainst((s) => s.write(encodeFrame({ t: 'attestation', id: 0, evidence: new Uint8Array([0x84, 1, 2, 3]) } as Message)));
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.code).toMatch(/^ERR_(NITRO|EVIDENCE)/);
  });
});
