/**
 * The `credentials`, `status_request` and `status` messages: strict validation (bounded strings,
 * no unknown keys, errors that name the key and never the value) and where the session accepts them
 * (credentials after hello, before and during a job; status between jobs), and that a job reads the
 * session's latest credentials while a session never sees another's.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { FrameDecoder, encodeFrame, validateMessage, MESSAGE_TYPES, type Message } from '../../enclave/protocol/index.js';
import { serveSession, type ActiveJob, type JobContext, type SessionCredentials } from '../../enclave/server.js';
import { EnclaveConnection, connectEnclave, probeWorker } from '../../host/enclave-conn.js';
import { ToolkitError } from '../../attestation/errors.js';
import { keyEncryptionContext } from '../../enclave/protocol/index.js';

const AKID = 'ASIAXAMPLEXAMPLE0001';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const TOKEN = 'IQoJb3JpZ2luX2VjEXAMPLETOKEN+/=' + 'A'.repeat(300);
const EXP = '2031-05-17T15:09:54Z';
const good = { t: 'credentials', id: 0, accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: TOKEN, expiration: EXP };

function reasonOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ToolkitError);
    expect((e as ToolkitError).code).toBe('ERR_PROTOCOL');
    // A validation error names the key, never the value.
    for (const s of [AKID, SECRET, TOKEN.slice(0, 30), 'not-a-time']) expect((e as Error).message).not.toContain(s);
    return (e as ToolkitError).reason;
  }
  return undefined;
}

describe('credentials / status messages', () => {
  it('are protocol message types and round-trip through frames', () => {
    for (const t of ['credentials', 'status_request', 'status']) expect(MESSAGE_TYPES).toContain(t);
    const samples: Message[] = [
      good as Message,
      { t: 'credentials', id: 1, accessKeyId: AKID, secretAccessKey: SECRET },
      { t: 'status_request', id: 2 },
      { t: 'status', id: 3, workerVersion: 'enclavekit-worker/0.2.0', platform: 'simulator', uptimeMs: 5, jobs: 0, credentials: false },
      { t: 'status', id: 4, workerVersion: 'w', platform: 'nitro', uptimeMs: 0, jobs: 9, credentials: true, credentialsExpiration: EXP },
    ];
    for (const m of samples) {
      const out = new FrameDecoder().push(encodeFrame(m));
      expect(out).toEqual([validateMessage(structuredClone(m))]);
    }
  });

  const bad: [string, Record<string, unknown>, string][] = [
    ['short access key id', { ...good, accessKeyId: 'ASIA123' }, 'accessKeyId'],
    ['access key id alphabet', { ...good, accessKeyId: 'ASIA/EXAMPLE/EXAMPLE' }, 'accessKeyId'],
    ['long access key id', { ...good, accessKeyId: 'A'.repeat(129) }, 'accessKeyId'],
    ['access key id type', { ...good, accessKeyId: 5 }, 'accessKeyId'],
    ['missing secret', (({ secretAccessKey: _s, ...r }) => r)(good), 'secretAccessKey'],
    ['secret with a space', { ...good, secretAccessKey: 'abc def ghi jkl mno' }, 'secretAccessKey'],
    ['secret too long', { ...good, secretAccessKey: 'x'.repeat(257) }, 'secretAccessKey'],
    ['secret as bytes', { ...good, secretAccessKey: new Uint8Array(40) }, 'secretAccessKey'],
    ['token too long', { ...good, sessionToken: 'x'.repeat(16 * 1024 + 1) }, 'sessionToken'],
    ['token with a newline', { ...good, sessionToken: 'abcdefghijklmnop\nq' }, 'sessionToken'],
    ['expiration not a time', { ...good, expiration: 'not-a-time' }, 'expiration'],
    ['expiration as a number', { ...good, expiration: 1_900_000_000 }, 'expiration'],
    ['expiration impossible date', { ...good, expiration: '2031-13-45T99:99:99Z' }, 'expiration'],
    ['unknown key', { ...good, region: 'us-east-1' }, 'region'],
    ['status_request with a key', { t: 'status_request', id: 0, nonce: new Uint8Array(16) }, 'nonce'],
    ['status uptime negative', { t: 'status', id: 0, workerVersion: 'w', platform: 'nitro', uptimeMs: -1, jobs: 0, credentials: false }, 'uptimeMs'],
    ['status credentials not boolean', { t: 'status', id: 0, workerVersion: 'w', platform: 'nitro', uptimeMs: 1, jobs: 0, credentials: 'yes' }, 'credentials'],
    ['status platform alphabet', { t: 'status', id: 0, workerVersion: 'w', platform: 'Nitro!', uptimeMs: 1, jobs: 0, credentials: false }, 'platform'],
  ];
  for (const [name, m, reason] of bad) {
    it(`refuses ${name}`, () => {
      expect(reasonOf(() => validateMessage(structuredClone(m)))).toBe(reason);
    });
  }
});

// A session over a real Unix socket, driven message by message from the host's end.
let dir: string | undefined;
let server: Server | undefined;
afterEach(() => {
  server?.close();
  server = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const manifest = {
  version: 2, datasetId: 'ds1', idField: 'id', fields: ['email'], schema: { id: 'string', email: 'string' },
  keys: { k0: { keyId: 'arn:aws:kms:us-east-1:111122223333:key/test-key', ciphertextBlob: 'AAEC', encryptionContext: keyEncryptionContext('ds1', 'k0') } },
  records: 1, digest: 'ab'.repeat(48), policy: null, seal: { k0: 'cd'.repeat(48) },
};

async function session(onJob: (ctx: JobContext) => void): Promise<{ path: string; logs: string[]; seen: (SessionCredentials | undefined)[] }> {
  dir = mkdtempSync(join(tmpdir(), 'ek-creds-'));
  const path = join(dir, 'w.sock');
  const logs: string[] = [];
  const seen: (SessionCredentials | undefined)[] = [];
  server = createServer((s) =>
    void serveSession(s, {
      attest: async () => new Uint8Array([0x84, 1, 2]),
      startJob: async (start, ctx): Promise<ActiveJob> => {
        seen.push(ctx.credentials());
        onJob(ctx);
        return {
          jobId: start.jobId,
          addBatch() {
            seen.push(ctx.credentials());
          },
          finish: async () => ({ result: new Uint8Array([0xa0]), evidence: new Uint8Array([1]) }),
          abort() {},
        };
      },
      status: () => ({ workerVersion: 'test-worker/1', platform: 'simulator', uptimeMs: 12_345.6, jobs: 3 }),
      log: (l) => logs.push(l),
    }),
  );
  server.listen(path);
  await once(server, 'listening');
  return { path, logs, seen };
}

const creds = (n: number, exp = EXP) => ({ accessKeyId: `ASIAXAMPLEXAMPLE000${n}`, secretAccessKey: `${SECRET}${n}`, sessionToken: `${TOKEN}${n}`, expiration: exp });

async function open(path: string): Promise<EnclaveConnection> {
  const c = new EnclaveConnection(await connectEnclave({ kind: 'unix', path }));
  await c.send({ t: 'hello', version: 1, nonce: new Uint8Array(32) });
  expect((await c.next(5000)).t).toBe('attestation');
  return c;
}

describe('the session and credentials', () => {
  it('refuses credentials before hello', async () => {
    const { path } = await session(() => {});
    const c = new EnclaveConnection(await connectEnclave({ kind: 'unix', path }));
    await c.send({ t: 'credentials', ...creds(1) });
    const m = await c.next(5000);
    expect(m).toMatchObject({ t: 'error', code: 'ERR_PROTOCOL' });
    expect(JSON.stringify(m)).not.toContain(SECRET);
    c.close();
  });

  it('a job reads the latest credentials: before job_start, and a refresh during the job; logs say only that they came', async () => {
    const { path, logs, seen } = await session(() => {});
    const c = await open(path);
    await c.send({ t: 'credentials', ...creds(1) });
    await c.send({ t: 'job_start', jobId: 'j1', datasetId: 'ds1', query: {}, manifest: manifest as never, nonce: new Uint8Array(32) });
    await c.send({ t: 'credentials', ...creds(2, '2031-06-01T00:00:00.000Z') });
    await c.send({ t: 'records', jobId: 'j1', seq: 0, records: [{ id: 'a' }] });
    await c.send({ t: 'job_end', jobId: 'j1', count: 1, datasetDigest: new Uint8Array(48) });
    expect((await c.next(5000)).t).toBe('result');
    c.close();
    expect(seen.map((x) => x?.accessKeyId)).toEqual(['ASIAXAMPLEXAMPLE0001', 'ASIAXAMPLEXAMPLE0002']);
    expect(seen[1]!.expiration!.toISOString()).toBe('2031-06-01T00:00:00.000Z');
    expect(logs.some((l) => l === 'session: credentials received (valid until 2031-05-17T15:09:54.000Z)')).toBe(true);
    expect(logs.some((l) => l.startsWith('session: credentials refreshed'))).toBe(true);
    for (const s of [SECRET, 'ASIAXAMPLEXAMPLE000', TOKEN.slice(0, 20)]) expect(logs.join('\n')).not.toContain(s);
  });

  it('sessions do not share credentials, and a job without any sees none', async () => {
    const { path, seen } = await session(() => {});
    const a = await open(path);
    const b = await open(path);
    await a.send({ t: 'credentials', ...creds(7) });
    await b.send({ t: 'job_start', jobId: 'jb', datasetId: 'ds1', query: {}, manifest: manifest as never, nonce: new Uint8Array(32) });
    await a.send({ t: 'job_start', jobId: 'ja', datasetId: 'ds1', query: {}, manifest: manifest as never, nonce: new Uint8Array(32) });
    await new Promise((r) => setTimeout(r, 200));
    a.close();
    b.close();
    expect(seen).toHaveLength(2);
    expect(seen.filter((x) => x === undefined)).toHaveLength(1);
    expect(seen.find((x) => x !== undefined)?.accessKeyId).toBe('ASIAXAMPLEXAMPLE0007');
  });

  it('status: between jobs only, numbers and whether credentials are held; probeWorker reads it', async () => {
    const { path } = await session(() => {});
    const p = await probeWorker(() => connectEnclave({ kind: 'unix', path }), { timeoutMs: 5000 });
    expect(p.status).toEqual({ workerVersion: 'test-worker/1', platform: 'simulator', uptimeMs: 12_345, jobs: 3, credentials: false });
    const c = await open(path);
    await c.send({ t: 'credentials', ...creds(3) });
    await c.send({ t: 'status_request' });
    const st = await c.next(5000);
    expect(st).toMatchObject({ t: 'status', credentials: true, credentialsExpiration: '2031-05-17T15:09:54.000Z' });
    expect(JSON.stringify(st)).not.toContain('ASIAXAMPLE');
    await c.send({ t: 'job_start', jobId: 'j2', datasetId: 'ds1', query: {}, manifest: manifest as never, nonce: new Uint8Array(32) });
    await c.send({ t: 'status_request' });
    expect(await c.next(5000)).toMatchObject({ t: 'error', code: 'ERR_PROTOCOL', jobId: 'j2' });
    c.close();
  });
});
