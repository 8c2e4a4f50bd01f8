/**
 * Seeds for the fuzz targets: the real vectors in test/vectors (Nitro documents, SEV-SNP reports and
 * AMD chains, KMS CMS envelopes) and valid instances of the project's own formats built with its own
 * encoders (manifests, results, frames, queries, policies), so mutation starts from inputs that reach
 * every check.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import 'reflect-metadata';
import { pemToDer } from '../../attestation/sevsnp/cert.js';
import { createSnpSimChain, exportSnpSimChain, importSnpSimChain, issueSnpReport, issueSnpSimCrl, type SnpSimChain } from '../../attestation/sim/snp.js';
import { JOB_REFUSED_MESSAGE } from '../../enclave/job.js';
import {
  FrameWriter,
  RecordBatch,
  deriveSealKey,
  encodeCanonical,
  encodeRefusal,
  encodeResult,
  formatField,
  keyEncryptionContext,
  sealManifest,
  type KeyManifest,
  type ManifestBody,
  type Outgoing,
  type RefusalDocument,
  type ReleasePolicy,
  type ResultDocument,
} from '../../enclave/protocol/index.js';

export const VECTORS = fileURLToPath(new URL('../../test/vectors/', import.meta.url));
const enc = new TextEncoder();
export const utf8 = (s: string): Uint8Array => enc.encode(s);
export const file = (rel: string): Uint8Array => new Uint8Array(readFileSync(join(VECTORS, rel)));
export const json = (v: unknown): Uint8Array => utf8(JSON.stringify(v));

export interface NitroVector {
  name: string;
  bytes: Uint8Array;
  /** A time inside the document's validity (its own timestamp). */
  at: Date;
}

export function nitroVectors(): NitroVector[] {
  const index = JSON.parse(readFileSync(join(VECTORS, 'nitro/index.json'), 'utf8')) as { attestation_documents: { file: string; timestamp: string }[] };
  return index.attestation_documents.map((d) => ({ name: d.file, bytes: file(`nitro/${d.file}`), at: new Date(d.timestamp) }));
}

export interface SnpVector {
  id: string;
  report: Uint8Array;
  /** The VCEK or VLEK, DER. */
  leaf: Uint8Array;
  kind: 'vcek' | 'vlek';
  product: 'Milan' | 'Genoa' | 'Turin';
  /** Inside every certificate's validity. */
  at: Date;
}

export function snpVectors(): SnpVector[] {
  const dir = join(VECTORS, 'sev-snp');
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { vectors: { id: string }[] };
  return index.vectors.map(({ id }) => {
    const meta = JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8')) as { product: SnpVector['product']; endorsement_cert: { not_before: string } };
    const leafFile = ['vcek.der', 'vcek.pem', 'vlek.der'].map((e) => `${id}.${e}`).find((f) => existsSync(join(dir, f)))!;
    let leaf = file(`sev-snp/${leafFile}`);
    if (leafFile.endsWith('.pem')) leaf = pemToDer(new TextDecoder().decode(leaf))[0]!;
    return {
      id,
      report: file(`sev-snp/${id}.report.bin`),
      leaf,
      kind: leafFile.includes('.vlek.') ? 'vlek' : 'vcek',
      product: meta.product,
      at: new Date(new Date(meta.endorsement_cert.not_before).getTime() + 86_400_000),
    };
  });
}

/** DER certificates of a PEM file under test/vectors. */
export function pemCerts(rel: string): Uint8Array[] {
  return pemToDer(new TextDecoder().decode(file(rel)));
}

/** Every AMD certificate in the vectors: ARKs, ASKs, ASVKs, VCEKs, VLEKs. */
export function amdCertificates(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const p of ['milan', 'genoa', 'turin']) for (const k of ['ark', 'ask', 'asvk']) out.push(...pemCerts(`sev-snp/${k}-${p}.pem`));
  for (const v of snpVectors()) out.push(v.leaf);
  return dedupe(out);
}

export function dedupe(xs: Uint8Array[]): Uint8Array[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const h = createHash('sha256').update(x).digest('hex');
    if (seen.has(h)) return false;
    seen.add(h);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// Pipeline formats

export const NOW = new Date('2026-06-01T00:00:00Z');
export const KEY_ARN = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
/** Fixed data keys (ref -> 32 bytes), so seals made here verify in the targets. */
export const DATA_KEYS: ReadonlyMap<string, Uint8Array> = new Map([
  ['k0', new Uint8Array(32).fill(7)],
  ['k1', new Uint8Array(32).fill(9)],
]);

export const SCHEMA = { id: 'string', region: 'string', name: 'string', 'orders.total': 'number', complaint: 'string', vip: 'boolean', notes: 'mixed' } as const;

export const POLICIES: ReleasePolicy[] = [
  {
    version: 1,
    minGroupSize: 10,
    dimensions: { region: { domain: ['ap-south', 'eu-central', 'eu-west', 'us-east', 'us-west', 'sa-east'] } },
    aggregates: { 'orders.total': { ops: ['sum', 'mean', 'histogram'], bounds: [0, 10000] }, complaint: { ops: ['sentiment'] } },
    filters: { region: ['eq', 'in'] },
    dp: { required: true, epsilonMin: 0.1, epsilonMax: 1, budget: 10, delta: 1e-6 },
    exactExtrema: false,
    expires: '2027-06-30T00:00:00Z',
  },
  {
    version: 1,
    minGroupSize: 5,
    dimensions: '*',
    aggregates: '*',
    filters: '*',
    dp: { required: false, epsilonMin: 0.01, epsilonMax: 10, budget: 100, delta: 1e-6 },
    exactExtrema: true,
  },
  {
    version: 1,
    minGroupSize: 10,
    dimensions: { region: {}, vip: { domain: [true, false] } },
    aggregates: { 'orders.total': { ops: ['sum', 'mean', 'min', 'max', 'stddev', 'quantiles', 'histogram'] }, name: { ops: ['distinctCount', 'topTerms'] } },
    filters: { 'orders.total': ['lt', 'lte', 'gt', 'gte'], region: ['eq', 'ne', 'in'] },
    dp: { required: false, epsilonMin: 0.5, epsilonMax: 2, budget: 4, delta: 1e-9 },
    exactExtrema: true,
  },
];

export const QUERIES: unknown[] = [
  {
    version: 1,
    filter: { op: 'and', args: [{ op: 'in', field: 'region', values: ['eu-west', 'eu-central'] }, { op: 'gte', field: 'orders.total', value: 10 }] },
    groupBy: ['region'],
    aggregates: [
      { name: 'customers', op: 'count' },
      { name: 'spend', op: 'sum', field: 'orders.total' },
      { name: 'avgSpend', op: 'mean', field: 'orders.total', clamp: [0, 5000] },
      { name: 'spendQ', op: 'quantiles', field: 'orders.total', q: [0.5, 0.9] },
      { name: 'spendHist', op: 'histogram', field: 'orders.total', bins: [0, 100, 500, 1000, 5000] },
      { name: 'cities', op: 'distinctCount', field: 'name' },
      { name: 'terms', op: 'topTerms', field: 'complaint', k: 10 },
      { name: 'mood', op: 'sentiment', field: 'complaint' },
    ],
    privacy: { minGroupSize: 20, dp: { epsilon: 1.0 } },
  },
  {
    version: 1,
    groupBy: ['region'],
    aggregates: [
      { name: 'n', op: 'count' },
      { name: 'spend', op: 'sum', field: 'orders.total', clamp: [0, 1000] },
      { name: 'avg', op: 'mean', field: 'orders.total' },
      { name: 'h', op: 'histogram', field: 'orders.total', bins: [0, 10, 100] },
      { name: 'mood', op: 'sentiment', field: 'complaint' },
    ],
    privacy: { dp: { epsilon: 0.5 } },
  },
  {
    version: 1,
    filter: { op: 'or', args: [{ op: 'not', arg: { op: 'eq', field: 'region', value: 'eu-west' } }, { op: 'lt', field: 'orders.total', value: 5 }, { op: 'ne', field: 'vip', value: true }] },
    groupBy: ['region', 'vip'],
    aggregates: [
      { name: 'n', op: 'count' },
      { name: 'lo', op: 'min', field: 'orders.total' },
      { name: 'hi', op: 'max', field: 'orders.total' },
      { name: 'sd', op: 'stddev', field: 'orders.total' },
      { name: 'names', op: 'topTerms', field: 'name', k: 3 },
    ],
    privacy: { minGroupSize: 10 },
  },
  { version: 1, aggregates: [{ name: 'n', op: 'count' }] },
  { version: 1, filter: { op: 'gt', field: 'name', value: 'm' }, groupBy: [], aggregates: [{ name: 'n', op: 'count' }, { name: 'd', op: 'distinctCount', field: 'notes' }] },
];

export function manifestBody(policy: ReleasePolicy | null, keys = ['k0']): ManifestBody {
  const datasetId = 'customers-2026-01';
  return {
    version: 2,
    datasetId,
    idField: 'id',
    fields: ['name', 'orders.total', 'complaint'],
    schema: { ...SCHEMA },
    keys: Object.fromEntries(keys.map((ref) => [ref, { keyId: KEY_ARN, ciphertextBlob: 'AQIDBAUGBwgJCgsMDQ4PEA==', encryptionContext: keyEncryptionContext(datasetId, ref) }])),
    records: 100,
    digest: 'ab'.repeat(48),
    policy,
  };
}

/** Sealed manifests (under DATA_KEYS), with and without a release policy. */
export function manifests(): KeyManifest[] {
  const seal = (b: ManifestBody) => sealManifest(b, new Map([...DATA_KEYS].map(([r, k]) => [r, deriveSealKey(k)])));
  return [seal(manifestBody(null)), seal(manifestBody(POLICIES[0]!)), seal(manifestBody(POLICIES[2]!, ['k0', 'k1']))];
}

export function resultDocs(): ResultDocument[] {
  const base: ResultDocument = {
    version: 2, jobId: 'job-1', datasetId: 'customers-2026-01', datasetDigest: new Uint8Array(48).fill(3), sealDigest: new Uint8Array(48).fill(5), keyArns: [KEY_ARN],
    query: QUERIES[3] as Record<string, unknown>, queryDigest: new Uint8Array(48).fill(1), counts: { records: 20, matched: 20, groups: 2, suppressedGroups: 1 },
    groups: [
      { key: ['eu-west', null], count: 12, aggregates: { n: 12, m: 1.25, q: [{ q: 0.5, value: 3 }], h: { edges: [0, 10], counts: [1, 2], below: 0, above: null }, t: [{ term: 'late', count: 11 }] } },
      { key: ['us-east', true], count: 13, aggregates: { n: 13, m: null } },
    ],
    privacy: { minGroupSize: 10, dp: null }, ledger: { generation: 1, spent: 0 },
    audit: { instance: new Uint8Array(16).fill(2), seq: 0, prev: new Uint8Array(48) }, platform: 'simulator', workerVersion: '0.1.0',
  };
  const dp: ResultDocument = {
    ...base,
    counts: { records: 20, matched: null, groups: 1, suppressedGroups: null },
    groups: [{ key: ['eu-west'], count: 17, aggregates: { n: 17, s: 1234.5 } }],
    privacy: { minGroupSize: 10, dp: { mechanism: 'discrete-laplace', epsilon: 1, delta: 1e-6, threshold: 42, budget: { limit: 3, spent: 1 } } },
    ledger: { generation: 4, spent: 1 },
    audit: { instance: new Uint8Array(16).fill(2), seq: 7, prev: new Uint8Array(48).fill(9) },
    platform: 'nitro',
  };
  return [base, dp];
}

export function refusalDocs(): RefusalDocument[] {
  const r: RefusalDocument = {
    version: 2, refused: true, jobId: 'job-1', datasetId: 'customers-2026-01', sealDigest: new Uint8Array(48).fill(5), queryDigest: new Uint8Array(48).fill(1),
    code: 'ERR_JOB_REFUSED', reason: 'refused', message: JOB_REFUSED_MESSAGE, ledger: { generation: 2, spent: 0.5 },
    audit: { instance: new Uint8Array(16).fill(2), seq: 3, prev: new Uint8Array(48).fill(4) }, platform: 'sev-snp', workerVersion: '0.1.0',
  };
  return [r, { ...r, sealDigest: null, ledger: null, code: 'ERR_QUERY_REFUSED', reason: 'dp_required', message: "the owner's release policy requires differential privacy ($.privacy.dp)" }];
}

export const canonicalResults = (): Uint8Array[] => [...resultDocs().map(encodeResult), ...refusalDocs().map(encodeRefusal)];

export const RECORDS: Record<string, unknown>[] = [
  { id: 'c-1', region: 'eu-west', name: formatField('k0', new Uint8Array(12).fill(1), new Uint8Array(24).fill(2)), orders: { total: 12.5 }, complaint: 'late delivery', vip: true },
  { id: 2, region: 'us-east', name: formatField('k0', new Uint8Array(12).fill(3), new Uint8Array(16).fill(4)), orders: { total: 0 }, notes: ['a', 1, null, { deep: [1.5, -2] }] },
  { id: 'c-3', region: null, orders: {}, complaint: '' },
];

/** One frame of each message type, in a plausible session order (host -> enclave and back). */
export function frames(): Uint8Array[] {
  const w = new FrameWriter();
  const m = manifests()[1]!;
  const batch = new RecordBatch();
  for (const r of RECORDS) batch.add(r);
  const msgs: Outgoing[] = [
    { t: 'hello', version: 1, nonce: new Uint8Array(32).fill(1), maxFrame: 1 << 20 },
    { t: 'attestation', evidence: new Uint8Array(64).fill(0x84), publicKey: new Uint8Array(32).fill(2) },
    { t: 'credentials', accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', sessionToken: 'FwoGZXIvYXdzEXAMPLETOKEN0123456789', expiration: '2026-06-01T01:00:00Z' },
    { t: 'job_start', jobId: 'job-1', datasetId: m.datasetId, query: QUERIES[1] as Record<string, unknown>, manifest: m as unknown as Record<string, unknown>, nonce: new Uint8Array(32).fill(3) },
    { t: 'job_end', jobId: 'job-1', count: 3, datasetDigest: new Uint8Array(48).fill(4) },
    { t: 'result', jobId: 'job-1', result: canonicalResults()[0]!, evidence: new Uint8Array(100).fill(0x84), ledger: new Uint8Array(40).fill(5) },
    { t: 'refusal', jobId: 'job-1', refusal: canonicalResults()[2]!, evidence: new Uint8Array(100).fill(0x84) },
    { t: 'error', jobId: 'job-1', code: 'ERR_QUERY_REFUSED', message: 'no' },
    { t: 'status_request' },
    { t: 'status', workerVersion: '0.1.0', platform: 'simulator', uptimeMs: 1234, jobs: 1, credentials: true, credentialsExpiration: '2026-06-01T01:00:00Z' },
  ] as Outgoing[];
  const out: Uint8Array[] = [];
  for (const msg of msgs) {
    out.push(w.encode(msg));
    if (msg.t === 'job_start') out.push(w.encodeRecords('job-1', 0, batch));
  }
  return out;
}

export const concat = (parts: readonly Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

/** A canonical value of every kind the canonical encoder knows. */
export function canonicalValues(): Uint8Array[] {
  return [
    encodeCanonical({ v: 1, dataset: 'ab'.repeat(48), generation: 3, spent: 0.25 }),
    encodeCanonical([0, 23, 24, 255, 256, 65536, -1, -25, 2 ** 32, 1.5, 0.1, 1e300, -0, 'é', null, true, false, new Uint8Array([1, 2])]),
    encodeCanonical({ t: 'records', id: 3, seq: 0, jobId: 'job-1', records: RECORDS }),
    encodeCanonical({ a: { b: { c: [[[{ d: 'deep' }]]] } } }),
  ];
}

// ---------------------------------------------------------------------------------------------
// A simulated SEV-SNP chain (RSA key generation is slow: cached under the OS temp folder)

export interface SimSnp {
  chain: SnpSimChain;
  at: Date;
  vcekReport: Uint8Array;
  vlekReport: Uint8Array;
  crl: Uint8Array;
  revokingCrl: Uint8Array;
}

export const SIM_SNP_AT = new Date('2026-06-01T00:00:00Z');

export async function simSnp(): Promise<SimSnp> {
  const cacheFile = join(tmpdir(), 'enclavekit-fuzz', 'cache', 'snp-sim-chain-v1.json');
  let chain: SnpSimChain | undefined;
  try {
    chain = await importSnpSimChain(JSON.parse(readFileSync(cacheFile, 'utf8')));
  } catch {
    chain = await createSnpSimChain({ now: SIM_SNP_AT, product: 'Genoa', rsaBits: 2048 });
    mkdirSync(dirname(cacheFile), { recursive: true });
    writeFileSync(cacheFile, JSON.stringify(await exportSnpSimChain(chain)), { mode: 0o600 });
  }
  const measurement = new Uint8Array(48).fill(0x11);
  const reportData = new Uint8Array(64).fill(0x22);
  return {
    chain,
    at: SIM_SNP_AT,
    vcekReport: await issueSnpReport(chain, { measurement, reportData, hostData: new Uint8Array(32).fill(3), vmpl: 1 }),
    vlekReport: await issueSnpReport(chain, { signingKey: 'VLEK', version: 3, measurement, reportData }),
    crl: await issueSnpSimCrl(chain, { thisUpdate: new Date(SIM_SNP_AT.getTime() - 86_400_000), nextUpdate: new Date(SIM_SNP_AT.getTime() + 30 * 86_400_000) }),
    revokingCrl: await issueSnpSimCrl(chain, { thisUpdate: new Date(SIM_SNP_AT.getTime() - 86_400_000), revoke: ['ask', 'asvk'] }),
  };
}
