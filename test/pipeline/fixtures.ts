import { PassThrough, Readable } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import type { DataKeySource } from '../../host/encrypt.js';
import { encryptDataset } from '../../host/encrypt.js';
import { syntheticCustomers } from '../../host/synthetic.js';
import { expect } from 'vitest';
import { ToolkitError } from '../../attestation/errors.js';
import { JOB_REFUSED_MESSAGE, createJob, type Job, type JobOptions, type ResultLinks } from '../../enclave/job.js';
import {
  DatasetDigest, checkQueryAgainstPolicy, verifyManifestSeal,
  type KeyManifest, type ReleasePolicy, type ResolvedRelease,
} from '../../enclave/protocol/index.js';

/** What a KMS key ARN looks like in KMS answers (and what the sealed manifest must name). */
export const TEST_KEY_ARN = 'arn:aws:kms:us-east-1:111122223333:key/test-key';
/** A fixed clock for policy verdicts (policies in these tests expire later, or never). */
export const NOW = new Date('2026-06-01T00:00:00Z');

/**
 * An in-memory DataKeySource: keys derived from a per-instance salt (random unless given), the
 * context and a call counter, so two owners never share a key; the "blob" names the key reference;
 * KMS answers with `answerKeyId` (a key ARN by default, as real KMS does). Remembers every key it
 * issued, by key reference.
 */
export class FakeKms implements DataKeySource {
  readonly issued = new Map<string, Uint8Array>();
  readonly requested: string[] = [];
  calls = 0;
  constructor(readonly answerKeyId: string = TEST_KEY_ARN, readonly salt: string = randomBytes(16).toString('hex')) {}
  async generateDataKey(keyId: string, ctx: Record<string, string>) {
    this.calls++;
    this.requested.push(keyId);
    const ref = ctx['enclavekit:key-ref']!;
    const key = new Uint8Array(createHash('sha256').update(`${this.salt}/${keyId}/${JSON.stringify(ctx)}/${this.calls}`).digest());
    this.issued.set(ref, key.slice());
    return { plaintext: key, ciphertextBlob: new TextEncoder().encode(`blob:${ref}`), keyId: this.answerKeyId };
  }
  /** Fresh copies (a job wipes what it is given). */
  keys(): Map<string, Uint8Array> {
    return new Map([...this.issued].map(([k, v]) => [k, v.slice()]));
  }
}

/** A release policy that allows exact (non-DP) queries of any field, extrema included. */
export function openPolicy(over: Partial<ReleasePolicy> = {}): ReleasePolicy {
  return {
    version: 1,
    minGroupSize: 10,
    dimensions: '*',
    aggregates: '*',
    filters: '*',
    dp: { required: false, epsilonMin: 0.01, epsilonMax: 10, budget: 100, delta: 1e-6 },
    exactExtrema: true,
    ...over,
  };
}

export async function collect(stream: PassThrough): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

export interface EncryptedDataset {
  kms: FakeKms;
  /** The sealed manifest exactly as `encryptDataset` returned it. */
  manifest: KeyManifest;
  /** The encrypted records as a reader of the written NDJSON sees them (do not hand these to a job: it decrypts in place). */
  records: Record<string, unknown>[];
  /** The plaintext NDJSON that was encrypted. */
  plaintext: string;
  /** Fresh copies of the data keys by key reference (a job wipes what it is given). */
  keys(): Map<string, Uint8Array>;
  /** The seal digest, as the worker gets it: `verifyManifestSeal` under every data key. */
  sealDigest: Uint8Array;
}

/** Encrypt `count` synthetic customers in memory and seal the manifest (with `policy`, or the default). */
export async function encryptedCustomers(
  count: number,
  opts: { rotateAfter?: number; fields?: string[]; policy?: ReleasePolicy | null; datasetId?: string; seed?: number } = {},
): Promise<EncryptedDataset> {
  const kms = new FakeKms();
  const text = [...syntheticCustomers({ count, seed: opts.seed ?? 7 })].map((c) => JSON.stringify(c)).join('\n') + '\n';
  const out = new PassThrough();
  const done = collect(out);
  const manifest: KeyManifest = await encryptDataset({
    input: Readable.from([Buffer.from(text)]),
    format: 'ndjson',
    fields: opts.fields ?? ['name', 'email', 'phone', 'address.street', 'complaint'],
    idField: 'id',
    datasetId: opts.datasetId ?? 'demo-1',
    keyId: 'alias/demo',
    kms,
    output: out,
    ...(opts.rotateAfter ? { rotateAfter: opts.rotateAfter } : {}),
    ...(opts.policy !== undefined ? { policy: opts.policy } : {}),
  });
  out.end();
  const records = (await done).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const sealDigest = verifyManifestSeal(manifest, kms.keys());
  return { kms, manifest, records, plaintext: text, keys: () => kms.keys(), sealDigest };
}

/** The plaintext records of a dataset, parsed. */
export function plainRecords(data: Pick<EncryptedDataset, 'plaintext'>): Record<string, any>[] {
  return data.plaintext.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
}

/** The owner's verdict on `query` for this dataset (throws ERR_QUERY_REFUSED / ERR_QUERY_INVALID). */
export function releaseFor(data: Pick<EncryptedDataset, 'manifest'>, query: Record<string, unknown>, now: Date = NOW): ResolvedRelease {
  return checkQueryAgainstPolicy(query, data.manifest, now);
}

/**
 * A job the way the worker opens one: the policy's verdict on the query, the seal checked under the
 * data keys, then `createJob` with fresh copies of those keys. `over` replaces any option.
 */
export function openJob(data: EncryptedDataset, query: Record<string, unknown>, over: Partial<JobOptions> = {}): Job {
  return createJob({
    jobId: 'job-1',
    datasetId: data.manifest.datasetId,
    query,
    release: over.release ?? releaseFor(data, query),
    manifest: data.manifest,
    sealDigest: data.sealDigest,
    keys: data.keys(),
    platform: 'simulator',
    workerVersion: '0.1.0',
    ...over,
  });
}

/** What the host computes and sends in job_end for these records. */
export function hostExpectation(datasetId: string, records: readonly unknown[]): { count: number; datasetDigest: Uint8Array } {
  const d = new DatasetDigest(datasetId);
  for (const r of records) d.add(r);
  return { count: d.count, datasetDigest: d.digest() };
}

/** Links as the worker adds them (first job of a fresh worker instance). */
export function testLinks(budget: ResultLinks['budget'] = null, generation = 1): ResultLinks {
  return {
    ledger: { generation, spent: budget?.spent ?? 0 },
    audit: { instance: new Uint8Array(16).fill(0x1a), seq: 0, prev: new Uint8Array(48) },
    budget,
  };
}

/** Deterministic bytes (SHA-256 in counter mode), so that DP noise in tests is reproducible. */
export function seededBytes(seed: string): (n: number) => Uint8Array {
  let ctr = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) out.set(createHash('sha256').update(`${seed}/${ctr++}`).digest().subarray(0, Math.min(32, n - off)), off);
    return out;
  };
}

export const clone = <T>(x: T): T => structuredClone(x);

/**
 * The one public refusal of a job once records flowed: always this code, text and reason, with no
 * cause attached (privacy.md 4). Returns it so callers can compare refusals with each other.
 */
export function expectJobRefused(fn: () => unknown): ToolkitError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, 'expected the constant job refusal').toBeInstanceOf(ToolkitError);
  const e = thrown as ToolkitError;
  expect({ code: e.code, reason: e.reason, message: e.message, cause: e.cause }).toEqual({
    code: 'ERR_JOB_REFUSED', reason: 'refused', message: JOB_REFUSED_MESSAGE, cause: undefined,
  });
  expect(Object.keys(e).sort()).toEqual(['code', 'name', 'reason']);
  return e;
}

/** The internal cause of a poisoned job (never sent anywhere): which check fired. */
export function failureOf(job: Job): { code: string; reason: string | undefined; message: string } {
  const f = (job as Job & { failureForTests: unknown }).failureForTests;
  expect(f, 'the job holds a failure').toBeInstanceOf(ToolkitError);
  const e = f as ToolkitError;
  return { code: e.code, reason: e.reason, message: e.message };
}

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
