/**
 * The KDS helper against a local HTTP server on 127.0.0.1 serving the real certificates from
 * test/vectors (never the internet): URL forms, 429 back-off, timeout, disk cache, offline mode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { fetchCertChain, fetchVcek, kdsVcekUrl } from '../../host/kds.js';
import { verifySevSnp } from '../../attestation/sevsnp/node.js';
import { toHex } from '../../attestation/bytes.js';
import { loadVectors, vecFile } from './_vectors.js';

const vectors = loadVectors();
const byId = (id: string) => vectors.find((v) => v.id === id)!;
const der = (id: string) => {
  const v = byId(id);
  if (v.leafPath.endsWith('.der')) return v.leaf;
  const b64 = new TextDecoder().decode(v.leaf).replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return new Uint8Array(Buffer.from(b64, 'base64'));
};

let server: Server;
let base: string;
const hits: string[] = [];
let throttle = 0;
const routes = new Map<string, Uint8Array>();

beforeAll(async () => {
  for (const id of ['oak-1', 'oak-2', 'virtee-1']) routes.set(new URL(kdsVcekUrl(byId(id).report, { product: byId(id).product })).pathname, der(id));
  routes.set('/vcek/v1/Turin/cert_chain', vecFile('cert_chain-turin.pem'));
  server = createServer((req, res): void => {
    hits.push(req.url ?? '');
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/hang') return; // never answers
    if (throttle > 0) {
      throttle--;
      res.writeHead(429, { 'retry-after': '0' });
      res.end();
      return;
    }
    const body = routes.get(u.pathname);
    if (!body) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(Buffer.from(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server?.closeAllConnections();
  server?.close();
});
const noSleep = async () => {};

describe('KDS URLs', () => {
  it('Milan/Genoa use the 64-byte hwID, Turin the 8-byte one plus fmcSPL (as recorded in the vectors)', () => {
    expect(kdsVcekUrl(byId('oak-2').report)).toBe(byId('oak-2').meta.kds_vcek_url);
    expect(kdsVcekUrl(byId('virtee-1').report, { product: 'Milan' })).toBe(byId('virtee-1').meta.kds_vcek_url);
    expect(kdsVcekUrl(byId('oak-1').report)).toBe('https://kdsintf.amd.com/vcek/v1/Turin/3b42092f69c656d3?fmcSPL=0&blSPL=1&teeSPL=0&snpSPL=2&ucodeSPL=71');
  });
  it('v2 reports need a product; VLEK reports and masked chip ids cannot be fetched', () => {
    expect(() => kdsVcekUrl(byId('virtee-1').report)).toThrow(expect.objectContaining({ code: 'ERR_SNP_VCEK_FETCH', reason: 'product_unknown' }));
    expect(() => kdsVcekUrl(byId('trustee-vlek-1').report)).toThrow(expect.objectContaining({ reason: 'vlek' }));
  });
});

describe('fetchVcek', () => {
  it('fetches, caches on disk, then works offline; the result verifies the report', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'ek-kds-'));
    const v = byId('oak-1');
    const a = await fetchVcek(v.report, { baseUrl: base, cacheDir, sleep: noSleep });
    expect(a.fromCache).toBe(false);
    expect(toHex(a.der)).toBe(toHex(der('oak-1')));
    expect(verifySevSnp(v.report, { vcek: a.der }, { now: v.at, cache: false }).product).toBe('Turin');
    const before = hits.length;
    const failingFetch = (async () => {
      throw new Error('network must not be used');
    }) as unknown as typeof fetch;
    const b = await fetchVcek(v.report, { baseUrl: base, cacheDir, offline: true, fetch: failingFetch });
    expect(b.fromCache).toBe(true);
    expect(hits.length).toBe(before);
    expect(readdirSync(join(cacheDir, 'vcek', 'Turin', '3b42092f69c656d3'))).toEqual(['0001000200000047.der']);
    await expect(fetchVcek(byId('oak-2').report, { cacheDir, offline: true })).rejects.toMatchObject({ reason: 'offline_miss' });
  });

  it('backs off on 429 and then succeeds', async () => {
    throttle = 2;
    const slept: number[] = [];
    const r = await fetchVcek(byId('oak-2').report, { baseUrl: base, sleep: async (ms) => void slept.push(ms) });
    expect(r.product).toBe('Genoa');
    expect(slept).toEqual([0, 0]);
    throttle = 10;
    await expect(fetchVcek(byId('oak-2').report, { baseUrl: base, retries: 2, sleep: noSleep })).rejects.toMatchObject({
      code: 'ERR_SNP_VCEK_FETCH',
      reason: 'rate_limited',
    });
    throttle = 0;
  });

  it('times out on a server that never answers', async () => {
    const hang = (async (_u: string, init: RequestInit) => fetch(`${base}/hang`, init)) as unknown as typeof fetch;
    await expect(fetchVcek(byId('oak-2').report, { fetch: hang, timeoutMs: 200, retries: 1, sleep: noSleep })).rejects.toMatchObject({
      reason: 'timeout',
    });
  });

  it('refuses a certificate that is not this chip\'s VCEK, and 404s', async () => {
    const wrong = (async () => new Response(Buffer.from(der('oak-2')))) as unknown as typeof fetch;
    await expect(fetchVcek(byId('oak-1').report, { fetch: wrong })).rejects.toMatchObject({ reason: 'wrong_certificate' });
    const garbage = (async () => new Response('hello')) as unknown as typeof fetch;
    await expect(fetchVcek(byId('oak-1').report, { fetch: garbage })).rejects.toMatchObject({ reason: 'bad_certificate' });
    await expect(fetchVcek(byId('oak-3').report, { baseUrl: base, sleep: noSleep })).rejects.toMatchObject({ reason: 'http_status' });
  });

  it('fetches and caches the product cert_chain (CRLF PEM)', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'ek-kds-'));
    const c = await fetchCertChain('Turin', 'vcek', { baseUrl: base, cacheDir, sleep: noSleep });
    expect(c.fromCache).toBe(false);
    const d = await fetchCertChain('Turin', 'vcek', { cacheDir, offline: true });
    expect(d.fromCache).toBe(true);
    expect(toHex(d.ark)).toBe(toHex(c.ark));
  });
});
