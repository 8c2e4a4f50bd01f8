/**
 * Exercises every addon entry point once or a few times, for scripts/valgrind.sh (vitest under
 * valgrind is too slow). Exits non-zero if any check fails; valgrind adds its own error exit code.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCipheriv, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { requireBinding } from '../../native/binding.js';
import { SocketApi, VMADDR_PORT_ANY, type NativeStream } from '../../native/socket.js';
import { FieldDecryptor, packFields, nativeGcmCeiling, type GcmField } from '../../native/gcm.js';
import { NsmDeviceTransport, encodeNsmRequest } from '../../native/nsm.js';
import { snpGetExtReport } from '../../native/sevguest.js';

function check(cond: boolean, what: string): void {
  if (!cond) {
    console.error(`FAILED: ${what}`);
    process.exitCode = 1;
  } else {
    console.log(`ok ${what}`);
  }
}

const b = requireBinding('valgrind exercise');
const api = new SocketApi(b);
const dir = mkdtempSync(join(tmpdir(), 'ek-vg-'));
try {
  // Sockets: echo, half-close, reset, errors.
  const path = join(dir, 'e.sock');
  const srv = api.listenUnix(path);
  srv.on('connection', (s: NativeStream) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  const c = await api.connectUnix(path);
  const payload = randomBytes(4 * 1024 * 1024);
  const parts: Buffer[] = [];
  c.on('data', (d: Buffer) => parts.push(d));
  const ended = once(c, 'end');
  c.write(payload.subarray(0, 1000));
  c.write(payload.subarray(1000));
  c.end();
  await ended;
  check(Buffer.concat(parts).equals(payload), 'unix echo 4 MiB');
  try {
    api.listenUnix(path);
    check(false, 'EADDRINUSE');
  } catch (e) {
    check((e as { code?: string }).code === 'EADDRINUSE', 'EADDRINUSE');
  }
  const rs = join(dir, 'r.sock');
  const srv2 = api.listenUnix(rs);
  srv2.on('connection', (s: NativeStream) => setTimeout(() => s.destroy(), 20));
  const c2 = await api.connectUnix(rs);
  const err = await new Promise<{ code?: string }>((resolve) => {
    c2.on('error', resolve);
    c2.resume();
    const w = () => {
      if (!c2.destroyed) c2.write(Buffer.alloc(65536), () => setImmediate(w));
    };
    w();
  });
  check(err.code === 'ECONNRESET' || err.code === 'EPIPE', 'peer reset');
  srv.close();
  srv2.close();
  try {
    await api.connectUnix(join(dir, 'none.sock'));
    check(false, 'ENOENT');
  } catch (e) {
    check((e as { code?: string }).code === 'ENOENT', 'connect ENOENT');
  }
  try {
    const v = api.listenVsock(VMADDR_PORT_ANY);
    check(v.address() !== null, 'vsock listen ANY');
    v.close();
  } catch (e) {
    console.log(`vsock unavailable here: ${(e as { code?: string }).code}`);
  }

  // A worker that leaves a listener and a connecting socket open: the env cleanup hook closes them.
  const wpath = join(dir, 'w.sock');
  const addon = process.env.ENCLAVEKIT_NATIVE_PATH ?? join(process.cwd(), 'build/Release/enclavekit_native.node');
  const w = new Worker(
    `const b = require(${JSON.stringify(addon)});
     b.listen('unix', ${JSON.stringify(wpath)}, 16, () => {});
     b.connect('unix', ${JSON.stringify(wpath)}, () => {});
     require('node:worker_threads').parentPort.postMessage('up');`,
    { eval: true },
  );
  await once(w, 'message');
  await w.terminate();
  check(true, 'worker teardown with open sockets');

  // AES-GCM batch.
  const key = randomBytes(32);
  const fields: GcmField[] = [];
  for (let i = 0; i < 200; i++) {
    const iv = randomBytes(12);
    const ci = createCipheriv('aes-256-gcm', key, iv);
    ci.setAAD(Buffer.from([i]));
    const ct = Buffer.concat([ci.update(randomBytes(i % 50)), ci.final()]);
    const tag = ci.getAuthTag();
    if (i % 7 === 0) tag[0]! ^= 1;
    fields.push({ iv, ciphertext: ct, tag, aad: Buffer.from([i]) });
  }
  const r = new FieldDecryptor({ binding: b }).decryptFields(key, fields);
  check(r.okCount === 200 - Math.ceil(200 / 7), 'gcm batch ok flags');
  check(nativeGcmCeiling(key, packFields(fields), 3) === 3 * r.okCount, 'gcm ceiling');
  try {
    b.gcmDecryptBatch(key, new Uint8Array(8), new Uint32Array([0, 12, 0, 0, 0, 16, 0, 0]), new Uint8Array(0), new Uint8Array(1));
    check(false, 'gcm bounds');
  } catch {
    check(true, 'gcm bounds');
  }

  // Devices: error paths.
  const plain = join(dir, 'plain');
  writeFileSync(plain, 'x');
  try {
    await new NsmDeviceTransport({ path: plain }).request(encodeNsmRequest({ type: 'DescribeNSM' }));
    check(false, 'nsm ENOTTY');
  } catch (e) {
    check((e as { code?: string }).code === 'ERR_NSM_DEVICE', 'nsm ioctl ENOTTY');
  }
  try {
    await snpGetExtReport(new Uint8Array(64), { path: plain });
    check(false, 'sev ENOTTY');
  } catch (e) {
    check((e as { code?: string }).code === 'ERR_SEV_GUEST_IOCTL', 'sev ioctl ENOTTY');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
