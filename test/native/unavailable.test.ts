/** Without the addon, importing still works and native calls name what is missing. */
import { afterAll, expect, it, vi } from 'vitest';
import { randomBytes, createCipheriv } from 'node:crypto';

const saved = process.env.ENCLAVEKIT_NATIVE_PATH;
afterAll(() => {
  if (saved === undefined) delete process.env.ENCLAVEKIT_NATIVE_PATH;
  else process.env.ENCLAVEKIT_NATIVE_PATH = saved;
});

it('imports, reports the reason, throws ERR_NATIVE_UNAVAILABLE, and keeps the pure paths', async () => {
  vi.resetModules();
  process.env.ENCLAVEKIT_NATIVE_PATH = '/nonexistent/enclavekit_native.node';
  const m = await import('../../native/index.js');
  expect(m.nativeStatus().available).toBe(false);
  expect(() => m.listenUnix('/tmp/x.sock')).toThrow(expect.objectContaining({ code: 'ERR_NATIVE_UNAVAILABLE', message: expect.stringContaining('enclavekit_native.node') }));
  expect(() => m.connectVsock(3, 8000)).toThrow(expect.objectContaining({ code: 'ERR_NATIVE_UNAVAILABLE' }));
  await expect(m.openNsm().getRandom()).rejects.toMatchObject({ code: 'ERR_NATIVE_UNAVAILABLE' });
  await expect(m.snpGetExtReport(new Uint8Array(64))).rejects.toMatchObject({ code: 'ERR_NATIVE_UNAVAILABLE' });
  // AES-GCM falls back to node:crypto with the same API.
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update('fallback'), c.final()]);
  const d = new m.FieldDecryptor();
  expect(d.native).toBe(false);
  const r = d.decryptFields(key, [{ iv, ciphertext: ct, tag: c.getAuthTag() }]);
  expect(Buffer.from(r.field(0)!).toString()).toBe('fallback');
  expect(() => m.nativeGcmCeiling(key, m.packFields([]), 1)).toThrow(expect.objectContaining({ code: 'ERR_NATIVE_UNAVAILABLE' }));
});
