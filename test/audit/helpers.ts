/**
 * A fake worker for audit tests: it keeps an audit chain and a privacy ledger exactly as
 * enclave/worker.ts does, builds real result and refusal documents (encodeResult/encodeRefusal) and
 * signs them with a simulator attestation (Nitro documents from attestation/sim/nitro.ts, or any
 * `attest` function such as SimSnpPlatform's). Records go into a log with appendAuditEntry.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { issueNitroDocument, type NitroSimCa } from '../../attestation/sim/nitro.js';
import { toHex } from '../../attestation/bytes.js';
import {
  AUDIT_CHAIN_GENESIS,
  encodeCanonical,
  encodeRefusal,
  encodeResult,
  nextAuditHead,
  queryDigest,
  sha384,
  type AuditLink,
  type LedgerLink,
  type Platform,
} from '../../enclave/protocol/index.js';
import { appendAuditEntry, type AuditEntry, type AuditRecord } from '../../host/audit.js';

export const T0 = new Date('2026-03-02T10:00:00.000Z');
export const PCR0 = new Uint8Array(48).fill(0xa0);
export const OTHER_PCR0 = new Uint8Array(48).fill(0xb0);
export const QUERY = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }] } as Record<string, unknown>;
export const SEAL = new Uint8Array(48).fill(0x5e);
export const DATASET_DIGEST = new Uint8Array(48).fill(0xdd);
export const KEY_ARN = 'arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555';
export const DATASET_ID = 'customers';

export type Attest = (o: { publicKey: Uint8Array; userData: Uint8Array; nonce: Uint8Array }, at: Date) => Promise<Uint8Array>;

/** Nitro simulator evidence with PCR0 = `pcr0`, issued at `at`. */
export function nitroAttest(ca: NitroSimCa, pcr0: Uint8Array = PCR0): Attest {
  return (o, at) => issueNitroDocument(ca, { moduleId: 'i-0123456789abcdef0-enc0123456789abcdef', timestamp: at, pcrs: new Map([[0, pcr0]]), publicKey: o.publicKey, userData: o.userData, nonce: o.nonce });
}

export interface FakeJob {
  record: AuditRecord;
  bytes: Uint8Array;
  evidence: Uint8Array;
  nonce: Uint8Array;
  time: Date;
  link: AuditLink;
}

export class FakeWorker {
  readonly instance = new Uint8Array(randomBytes(16));
  readonly publicKey = new Uint8Array(randomBytes(91));
  seq = 0;
  head: Uint8Array = AUDIT_CHAIN_GENESIS;
  /** The worker's in-memory ledger: one generation counter for the dataset. */
  generation = 0;
  jobs = 0;

  constructor(
    readonly attest: Attest,
    readonly opts: { platform?: Platform; measurements?: Record<string, string> } = {},
  ) {}

  /** What a restarted worker does with the sealed ledger the host hands it (or none). */
  adoptLedger(generation: number): void {
    if (generation > this.generation) this.generation = generation;
  }

  async #attestLinked(nonce: Uint8Array, at: Date, build: (a: AuditLink) => Uint8Array): Promise<{ bytes: Uint8Array; evidence: Uint8Array; link: AuditLink }> {
    const link: AuditLink = { instance: this.instance, seq: this.seq, prev: this.head };
    const bytes = build(link);
    const evidence = await this.attest({ publicKey: this.publicKey, userData: sha384(bytes), nonce }, at);
    this.head = nextAuditHead(this.head, bytes);
    this.seq++;
    return { bytes, evidence, link };
  }

  #base(jobId: string | undefined, at: Date | undefined) {
    const n = this.jobs++;
    return { jobId: jobId ?? `job-${toHex(this.instance).slice(0, 6)}-${n}`, at: at ?? new Date(T0.getTime() + (n + 1) * 60_000), nonce: new Uint8Array(randomBytes(32)) };
  }

  #record(jobId: string, at: Date, nonce: Uint8Array, bytes: Uint8Array, evidence: Uint8Array, extra: Pick<AuditRecord, 'outcome' | 'code' | 'reason' | 'sealDigest'>): AuditRecord {
    return {
      jobId,
      time: new Date(at.getTime() + 1000).toISOString(),
      datasetId: DATASET_ID,
      datasetDigest: toHex(DATASET_DIGEST),
      queryDigest: toHex(queryDigest(QUERY)),
      keyIds: [KEY_ARN],
      platform: this.opts.platform ?? 'simulator',
      measurements: this.opts.measurements ?? { PCR0: toHex(PCR0) },
      ...extra,
      document: bytes,
      evidence,
      publicKey: this.publicKey,
      nonce,
    };
  }

  /** A released result; admitted to the ledger (next generation) unless `generation` is forced. */
  async result(o: { jobId?: string; at?: Date; generation?: number; groups?: number } = {}): Promise<FakeJob> {
    const { jobId, at, nonce } = this.#base(o.jobId, o.at);
    const ledger: LedgerLink = { generation: o.generation ?? ++this.generation, spent: 0 };
    const { bytes, evidence, link } = await this.#attestLinked(nonce, at, (audit) =>
      encodeResult({
        version: 2,
        jobId,
        datasetId: DATASET_ID,
        datasetDigest: DATASET_DIGEST,
        sealDigest: SEAL,
        keyArns: [KEY_ARN],
        query: QUERY,
        queryDigest: queryDigest(QUERY),
        counts: { records: 40 * (o.groups ?? 2), matched: 40 * (o.groups ?? 2), groups: o.groups ?? 2, suppressedGroups: 0 },
        groups: Array.from({ length: o.groups ?? 2 }, (_, i) => ({ key: [`region-${String(i).padStart(6, '0')}`], count: 40, aggregates: { n: 40 } })),
        privacy: { minGroupSize: 10, dp: null },
        ledger,
        audit,
        platform: this.opts.platform ?? 'simulator',
        workerVersion: '0.0.0-test',
      }),
    );
    return { record: this.#record(jobId, at, nonce, bytes, evidence, { outcome: 'released', code: null, reason: null, sealDigest: toHex(SEAL) }), bytes, evidence, nonce, time: at, link };
  }

  /** An attested refusal: after admission (a ledger link) unless `admitted` is false. */
  async refusal(o: { jobId?: string; at?: Date; admitted?: boolean; code?: string; reason?: string } = {}): Promise<FakeJob> {
    const { jobId, at, nonce } = this.#base(o.jobId, o.at);
    const admitted = o.admitted ?? true;
    const ledger: LedgerLink | null = admitted ? { generation: ++this.generation, spent: 0 } : null;
    const code = o.code ?? 'ERR_JOB_REFUSED';
    const reason = o.reason ?? 'refused';
    const { bytes, evidence, link } = await this.#attestLinked(nonce, at, (audit) =>
      encodeRefusal({
        version: 2,
        refused: true,
        jobId,
        datasetId: DATASET_ID,
        sealDigest: admitted ? SEAL : null,
        queryDigest: queryDigest(QUERY),
        code,
        reason,
        message: code === 'ERR_JOB_REFUSED' ? 'the job was refused; nothing was released' : `refused: ${reason}`,
        ledger,
        audit,
        platform: this.opts.platform ?? 'simulator',
        workerVersion: '0.0.0-test',
      }),
    );
    return { record: this.#record(jobId, at, nonce, bytes, evidence, { outcome: 'refused', code, reason, sealDigest: toHex(SEAL) }), bytes, evidence, nonce, time: at, link };
  }
}

/** A job that produced no attested document (worker unreachable). */
export function failedRecord(jobId: string, at: Date): AuditRecord {
  return {
    jobId,
    time: at.toISOString(),
    datasetId: DATASET_ID,
    sealDigest: toHex(SEAL),
    datasetDigest: toHex(DATASET_DIGEST),
    queryDigest: toHex(queryDigest(QUERY)),
    keyIds: [KEY_ARN],
    platform: 'unknown',
    measurements: {},
    outcome: 'failed',
    code: 'ERR_VSOCK_CONNECT',
    reason: 'connect: ERR_VSOCK_CONNECT: the worker is not listening',
    document: null,
    evidence: null,
    publicKey: null,
    nonce: null,
  };
}

export async function writeLog(path: string, records: readonly AuditRecord[]): Promise<void> {
  for (const r of records) await appendAuditEntry(path, r);
}

export async function readEntries(path: string): Promise<AuditEntry[]> {
  return (await readFile(path, 'utf8'))
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as AuditEntry);
}

/**
 * What a hostile host does after editing entries: renumber and recompute the whole host chain, so the
 * host-side hashes are all consistent again.
 */
export function rechain(entries: readonly AuditEntry[]): AuditEntry[] {
  let prev = '0'.repeat(96);
  return entries.map((e, i) => {
    const { hash: _h, ...body } = { ...e, seq: i, prev };
    const hash = createHash('sha384').update(encodeCanonical(body)).digest('hex');
    prev = hash;
    return { ...body, hash } as AuditEntry;
  });
}

export async function writeEntries(path: string, entries: readonly AuditEntry[]): Promise<void> {
  await writeFile(path, entries.map((e) => JSON.stringify(e) + '\n').join(''));
}

export const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
