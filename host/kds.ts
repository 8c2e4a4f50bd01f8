/**
 * VCEK retrieval from AMD's Key Distribution Service (KDS, spec #57230) for callers who have only a
 * report: the URL is built from the report (product, CHIP_ID, REPORTED_TCB), fetched with a timeout
 * and back-off on 429, and cached on disk by (product, hwID, reported TCB) so later runs, and fully
 * offline runs, need no network. What comes back is only a candidate: verifySevSnp still chains it
 * to the pinned ARK and binds it to the report.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { AttestationError, isToolkitError } from '../attestation/errors.js';
import { toHex } from '../attestation/bytes.js';
import { decodeTcb, parseSnpReport, productFromCpuid, SNP_PRODUCTS, type SnpProduct, type SnpReport } from '../attestation/sevsnp/abi.js';
import { parseAmdCert, pemToDer } from '../attestation/sevsnp/cert.js';

export const KDS_BASE_URL = 'https://kdsintf.amd.com';
const MAX_BODY = 64 * 1024;

export interface KdsOptions {
  /** Default https://kdsintf.amd.com. Tests point it at a loopback server. */
  baseUrl?: string;
  /** Injectable fetch (default: the global one). */
  fetch?: typeof globalThis.fetch;
  /** Disk cache folder; no caching when absent. */
  cacheDir?: string;
  /** Only use the cache; never touch the network. */
  offline?: boolean;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
  /** Attempts after the first on 429/503 or a network error (default 4). */
  retries?: number;
  /** First back-off delay; doubles each retry unless the server sends Retry-After (default 1 s). */
  backoffMs?: number;
  /** Injectable sleep, for tests. */
  sleep?: (ms: number) => Promise<void>;
  /** When the report (v2) does not say. */
  product?: SnpProduct;
}

export interface VcekResult {
  readonly der: Uint8Array;
  readonly url: string;
  readonly product: SnpProduct;
  readonly fromCache: boolean;
}

function fetchError(reason: string, message: string, cause?: unknown): AttestationError {
  return new AttestationError('ERR_SNP_VCEK_FETCH', `KDS: ${message}`, { reason, cause });
}

function reportProduct(r: SnpReport, option: SnpProduct | undefined): SnpProduct {
  const fromCpuid = r.cpuid ? productFromCpuid(r.cpuid.family, r.cpuid.model) : undefined;
  if (option !== undefined && !SNP_PRODUCTS.includes(option)) throw new TypeError(`"product" expected one of ${SNP_PRODUCTS.join(', ')}`);
  if (fromCpuid && option && fromCpuid !== option)
    throw fetchError('product_mismatch', `the report's CPUID says ${fromCpuid}, the option says ${option}`);
  const p = fromCpuid ?? option;
  if (!p) throw fetchError('product_unknown', 'the report (v2) does not name its product; pass `product`');
  return p;
}

interface VcekKey {
  product: SnpProduct;
  hwId: Uint8Array;
  query: [string, number][];
  tcbRaw: Uint8Array;
}

function vcekKey(report: Uint8Array | SnpReport, product?: SnpProduct): VcekKey {
  const r = report instanceof Uint8Array ? parseSnpReport(report) : report;
  if (r.signingKey !== 'VCEK') throw fetchError('vlek', 'the report is signed by a VLEK, which KDS does not serve (the CSP provides it)');
  const p = reportProduct(r, product);
  const hwId = p === 'Turin' ? r.chipId.slice(0, 8) : r.chipId.slice();
  if (hwId.every((b) => b === 0)) throw fetchError('chip_id_masked', 'CHIP_ID is masked (all zero); KDS cannot be asked');
  // KDS takes the TCB the VCEK was derived from: REPORTED_TCB, decoded with the product's layout.
  const t = decodeTcb(r.reportedTcb, p);
  const query: [string, number][] = [];
  if (p === 'Turin') query.push(['fmcSPL', t.fmc!]);
  query.push(['blSPL', t.bootloader], ['teeSPL', t.tee], ['snpSPL', t.snp], ['ucodeSPL', t.microcode]);
  return { product: p, hwId, query, tcbRaw: r.reportedTcb };
}

/** The KDS VCEK URL for a report (Milan/Genoa: 64-byte hwID; Turin: 8-byte hwID and fmcSPL). */
export function kdsVcekUrl(report: Uint8Array | SnpReport, options: { baseUrl?: string; product?: SnpProduct } = {}): string {
  const k = vcekKey(report, options.product);
  const base = (options.baseUrl ?? KDS_BASE_URL).replace(/\/+$/, '');
  return `${base}/vcek/v1/${k.product}/${toHex(k.hwId)}?${k.query.map(([n, v]) => `${n}=${v}`).join('&')}`;
}

const defaultSleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

/** GET with a timeout, retrying 429/503 and network errors with back-off; returns the body. */
async function get(url: string, o: KdsOptions, accept: string): Promise<Uint8Array> {
  const f = o.fetch ?? globalThis.fetch;
  const retries = o.retries ?? 4;
  const sleep = o.sleep ?? defaultSleep;
  let delay = o.backoffMs ?? 1000;
  for (let attempt = 0; ; attempt++) {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), o.timeoutMs ?? 10_000);
    let res: Response;
    try {
      res = await f(url, { signal: ac.signal, headers: { accept } });
    } catch (cause) {
      clearTimeout(timer);
      if (attempt < retries) {
        await sleep(delay);
        delay *= 2;
        continue;
      }
      throw fetchError(ac.signal.aborted ? 'timeout' : 'network', `GET ${url} failed${ac.signal.aborted ? ' (timeout)' : ''}`, cause);
    }
    try {
      if ((res.status === 429 || res.status === 503) && attempt < retries) {
        const ra = Number(res.headers.get('retry-after'));
        await res.body?.cancel().catch(() => {});
        clearTimeout(timer);
        // Honour Retry-After (seconds) when given, bounded so a hostile server cannot park us forever.
        await sleep(Number.isFinite(ra) && ra >= 0 && res.headers.get('retry-after') !== null ? Math.min(ra * 1000, 60_000) : delay);
        delay *= 2;
        continue;
      }
      if (res.status === 429) throw fetchError('rate_limited', `GET ${url}: still rate-limited after ${retries} retries`);
      if (res.status !== 200) throw fetchError('http_status', `GET ${url}: HTTP ${res.status}`);
      const len = Number(res.headers.get('content-length'));
      if (Number.isFinite(len) && len > MAX_BODY) throw fetchError('too_large', `GET ${url}: body of ${len} bytes`);
      // Read incrementally so an endless body is cut off at MAX_BODY.
      const chunks: Uint8Array[] = [];
      let n = 0;
      if (res.body) {
        for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
          n += c.length;
          if (n > MAX_BODY) {
            ac.abort();
            throw fetchError('too_large', `GET ${url}: body over ${MAX_BODY} bytes`);
          }
          chunks.push(c);
        }
      }
      const out = new Uint8Array(n);
      let off = 0;
      for (const c of chunks) {
        out.set(c, off);
        off += c.length;
      }
      return out;
    } catch (cause) {
      if (isToolkitError(cause)) throw cause;
      throw fetchError(ac.signal.aborted ? 'timeout' : 'network', `GET ${url}: reading the body failed`, cause);
    } finally {
      clearTimeout(timer);
    }
  }
}

async function readCache(path: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fetchError('cache', `cannot read the KDS cache ${path}`, e);
  }
}

async function writeCache(path: string, dir: string, data: Uint8Array): Promise<void> {
  await mkdir(dir, { recursive: true });
  // Write then rename, so a concurrent reader never sees half a certificate.
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** The fetched certificate must be the VCEK for this chip and TCB, or it is not cached. */
function checkVcek(der: Uint8Array, k: VcekKey, url: string): void {
  let c;
  try {
    c = parseAmdCert(der, 'VCEK from KDS');
  } catch (cause) {
    throw fetchError('bad_certificate', `GET ${url}: the body is not a DER certificate`, cause);
  }
  const t = decodeTcb(k.tcbRaw, k.product);
  const x = c.amd;
  const ok =
    c.subjectCN === 'SEV-VCEK' &&
    x.hwID !== undefined &&
    toHex(x.hwID) === toHex(k.hwId) &&
    x.blSPL === t.bootloader &&
    x.teeSPL === t.tee &&
    x.snpSPL === t.snp &&
    x.ucodeSPL === t.microcode &&
    (k.product !== 'Turin' || x.fmcSPL === t.fmc);
  if (!ok) throw fetchError('wrong_certificate', `GET ${url}: the certificate is not the VCEK for this chip and TCB`);
}

/**
 * The VCEK for a report: from the disk cache if present, else from KDS (then cached). With
 * `offline: true` only the cache is used.
 */
export async function fetchVcek(report: Uint8Array | SnpReport, options: KdsOptions = {}): Promise<VcekResult> {
  const k = vcekKey(report, options.product);
  const url = kdsVcekUrl(report, options);
  let dir: string | undefined;
  let path: string | undefined;
  if (options.cacheDir !== undefined) {
    dir = join(options.cacheDir, 'vcek', k.product, toHex(k.hwId));
    path = join(dir, `${toHex(k.tcbRaw)}.der`);
    const cached = await readCache(path);
    if (cached !== undefined) {
      checkVcek(cached, k, path);
      return Object.freeze({ der: cached, url, product: k.product, fromCache: true });
    }
  }
  if (options.offline) throw fetchError('offline_miss', `offline and no cached VCEK for ${k.product} ${toHex(k.hwId).slice(0, 16)}...`);
  const der = await get(url, options, 'application/octet-stream');
  checkVcek(der, k, url);
  if (dir !== undefined && path !== undefined) await writeCache(path, dir, der);
  return Object.freeze({ der, url, product: k.product, fromCache: false });
}

/**
 * AMD's cert_chain for a product (ASK or ASVK, then ARK), cached like VCEKs. Only a convenience: the
 * verifier ships these and trusts only its pinned ARKs.
 */
export async function fetchCertChain(
  product: SnpProduct,
  kind: 'vcek' | 'vlek',
  options: KdsOptions = {},
): Promise<{ intermediate: Uint8Array; ark: Uint8Array; fromCache: boolean }> {
  if (!SNP_PRODUCTS.includes(product)) throw new TypeError(`"product" expected one of ${SNP_PRODUCTS.join(', ')}`);
  const base = (options.baseUrl ?? KDS_BASE_URL).replace(/\/+$/, '');
  const url = `${base}/${kind}/v1/${product}/cert_chain`;
  const dir = options.cacheDir !== undefined ? join(options.cacheDir, kind, product) : undefined;
  const path = dir !== undefined ? join(dir, 'cert_chain.pem') : undefined;
  let body = path !== undefined ? await readCache(path) : undefined;
  const fromCache = body !== undefined;
  if (body === undefined) {
    if (options.offline) throw fetchError('offline_miss', `offline and no cached ${kind} cert_chain for ${product}`);
    body = await get(url, options, 'application/x-pem-file');
  }
  let blocks: Uint8Array[];
  try {
    blocks = pemToDer(new TextDecoder().decode(body));
  } catch (cause) {
    throw fetchError('bad_certificate', `${url}: not PEM`, cause);
  }
  if (blocks.length !== 2) throw fetchError('bad_certificate', `${url}: expected 2 certificates, got ${blocks.length}`);
  if (!fromCache && dir !== undefined && path !== undefined) await writeCache(path, dir, body);
  return { intermediate: blocks[0]!, ark: blocks[1]!, fromCache };
}

/** AMD's CRL for a product (DER). Not cached: freshness is its point. */
export async function fetchCrl(product: SnpProduct, kind: 'vcek' | 'vlek', options: KdsOptions = {}): Promise<Uint8Array> {
  if (!SNP_PRODUCTS.includes(product)) throw new TypeError(`"product" expected one of ${SNP_PRODUCTS.join(', ')}`);
  if (options.offline) throw fetchError('offline_miss', 'offline: CRLs are not cached');
  const base = (options.baseUrl ?? KDS_BASE_URL).replace(/\/+$/, '');
  return get(`${base}/${kind}/v1/${product}/crl`, options, 'application/pkix-crl');
}
