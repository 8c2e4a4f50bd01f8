/**
 * The worker: what runs inside the TEE for each host connection. It owns one RSA key pair for its
 * lifetime (the KMS Recipient key, bound into every attestation), one privacy ledger and one audit
 * chain for the whole process, and per job (privacy.md):
 *
 *   job_start  -> the query against the owner's sealed release policy (before any key or record),
 *                 KMS Decrypt with Recipient for each sealed key (KeyId and context checked), the
 *                 seal checked under every data key, memory bound checked, then the job admitted
 *                 to the ledger: its epsilon reserved under the ledger lock, generation + 1
 *   records    -> dataset digest over the records as received, then decrypt + aggregate (job.ts)
 *   job_end    -> count and digest equal to the seal, or the constant refusal; the result (or the
 *                 refusal) attested with user_data = SHA-384(document) and the job's nonce, each
 *                 document linked into the worker's audit chain
 *
 * Every refusal is attested too. Data keys live in a per-job cache that is wiped when the job ends,
 * fails or the host goes away. Log lines name jobs, counts, codes and timings; never a value, key or
 * ciphertext.
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { ToolkitError } from '../attestation/errors.js';
import {
  AUDIT_CHAIN_GENESIS,
  checkQueryAgainstPolicy,
  encodeRefusal,
  encodedRecordsOf,
  nextAuditHead,
  openLedger,
  queryDigest,
  sealLedger,
  sha384,
  verifyManifestSeal,
  type AuditLink,
  type JobEndMessage,
  type JobStartMessage,
  type LedgerLink,
  type RecordsMessage,
  type ResolvedRelease,
} from './protocol/index.js';
import type { DataKeyCache, RecipientKeyPair } from './keys.js';
import { keyReferencesFromManifest, type KmsKeyReference } from './kms-client.js';
import type { Platform } from './platform/types.js';
import { nodeFieldDecryptor, type FieldDecryptor, type PackedDecryptResult, type PackedItems } from './field-decrypt.js';
import { createJob, jobRefused } from './job.js';
import { DEFAULT_MAX_GROUPS, groupMemoryBudgetCheck } from './analytics/engine.js';
import { JobRefusal, type ActiveJob, type JobContext, type SessionCredentials, type SessionHandler, type WorkerStatus } from './server.js';

/** The addon's batched AES-GCM behind the job's FieldDecryptor interface, or node:crypto. */
export async function pickFieldDecryptor(log: (l: string) => void = () => {}): Promise<FieldDecryptor> {
  try {
    const native = (await import('../native/index.js')) as unknown as {
      FieldDecryptor?: new () => {
        native: boolean;
        decryptFields(key: Uint8Array, fields: readonly { iv: Uint8Array; ciphertext: Uint8Array; tag: Uint8Array; aad?: Uint8Array }[]): {
          ok: Uint8Array;
          field(i: number): Uint8Array | null;
        };
        decryptPacked(key: Uint8Array, packed: PackedItems): PackedDecryptResult;
      };
    };
    if (typeof native.FieldDecryptor === 'function') {
      const d = new native.FieldDecryptor();
      if (d.native) {
        log('field decryption: native batched AES-256-GCM');
        const empty = new Uint8Array(0);
        return {
          decryptBatch(key, items) {
            const r = d.decryptFields(key, items);
            const ok = new Array<boolean>(items.length);
            const plaintexts = new Array<Uint8Array>(items.length);
            for (let i = 0; i < items.length; i++) {
              ok[i] = r.ok[i] === 1;
              plaintexts[i] = r.field(i) ?? empty;
            }
            return { ok, plaintexts };
          },
          // One packed buffer and offsets in, one plaintext buffer out: the job's hot path.
          decryptPacked: (key, packed) => d.decryptPacked(key, packed),
        };
      }
    }
  } catch {
    // fall through to node:crypto
  }
  if (process.env.ENCLAVEKIT_REQUIRE_NATIVE === '1')
    throw new ToolkitError('ERR_PLATFORM_UNAVAILABLE', 'ENCLAVEKIT_REQUIRE_NATIVE=1 but the native AES-GCM path is not available', { reason: 'native' });
  log('field decryption: node:crypto (native addon not available)');
  return nodeFieldDecryptor;
}

export const WORKER_VERSION = 'enclavekit-worker/0.2.0';

export interface WorkerOptions {
  platform: Platform;
  keyPair: RecipientKeyPair;
  /**
   * Fetches a job's data keys (EnclaveKms.loadKeys in production), signing with the session's
   * credentials: `credentials` reads the latest the host sent (undefined: none).
   */
  loadKeys: (refs: KmsKeyReference[], credentials: () => SessionCredentials | undefined) => Promise<DataKeyCache>;
  /** Batched AES-GCM (the addon's, or node:crypto). */
  decryptor: FieldDecryptor;
  log?: (line: string) => void;
  /**
   * The operator's floor on top of the owner's policy: refuse queries without differential privacy
   * even where the owner's policy allows exact ones. The shipped image sets it.
   */
  requireDp?: boolean;
  workerVersion?: string;
  /** Monotonic milliseconds, for log timings. */
  now?: () => number;
  /** Wall clock, for the release policy's expiry. */
  clock?: () => Date;
  randomBytes?: (n: number) => Uint8Array;
  maxGroups?: number;
}

interface Admission {
  link: LedgerLink;
  blob: Uint8Array;
  budget: { limit: number; spent: number } | null;
}

/** A promise-chain mutex: one holder at a time, in arrival order. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();
  async run<T>(f: () => Promise<T> | T): Promise<T> {
    const prev = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((r) => (release = r));
    await prev;
    try {
      return await f();
    } finally {
      release();
    }
  }
}

/** The grouping bound a query can reach, known before any record: domain sizes, else the sealed count. */
function groupBound(release: ResolvedRelease, records: number): number {
  const g = release.query.groupBy;
  if (g.length === 0) return 1;
  let product = 1;
  for (const f of g) {
    const d = release.publicDomains.get(f);
    if (!d) return Math.max(1, records);
    product *= d.length;
  }
  // Policy domains are non-empty, so the product is at least 1.
  return product;
}

export class Worker {
  readonly #o: WorkerOptions;
  readonly #log: (line: string) => void;
  readonly #random: (n: number) => Uint8Array;
  /** Seal digest (hex) -> the dataset's ledger entry, for this process's life (privacy.md 3). */
  readonly #ledger = new Map<string, LedgerLink>();
  readonly #ledgerLock = new Mutex();
  /** The audit chain of this worker process (privacy.md 6). */
  readonly #auditLock = new Mutex();
  readonly #instance: Uint8Array;
  /** Monotonic start time, for `status` (uptime). */
  readonly #startedAt = performance.now();
  #auditSeq = 0;
  #auditHead: Uint8Array = AUDIT_CHAIN_GENESIS;

  constructor(options: WorkerOptions) {
    this.#o = options;
    this.#log = options.log ?? (() => {});
    this.#random = options.randomBytes ?? ((n) => new Uint8Array(nodeRandomBytes(n)));
    this.#instance = this.#random(16);
  }

  /** The per-connection protocol handler (enclave/server.ts drives it). */
  handler(): SessionHandler {
    return {
      attest: (nonce) => this.#o.platform.attest({ publicKey: this.#o.keyPair.publicKeySpki, nonce }),
      publicKey: this.#o.keyPair.publicKeySpki,
      startJob: (msg, ctx) => this.#startJob(msg, ctx),
      status: () => this.status(),
      log: this.#log,
    };
  }

  /** Numbers for an operator's health check: version, platform, uptime, documents attested. */
  status(): WorkerStatus {
    return {
      workerVersion: this.#o.workerVersion ?? WORKER_VERSION,
      platform: this.#o.platform.kind,
      uptimeMs: performance.now() - this.#startedAt,
      jobs: this.#auditSeq,
    };
  }

  /** Attest a document under the audit lock: it takes the next link of the chain. */
  async #attestLinked(nonce: Uint8Array, build: (link: AuditLink) => Uint8Array): Promise<{ bytes: Uint8Array; evidence: Uint8Array }> {
    return this.#auditLock.run(async () => {
      const link: AuditLink = { instance: this.#instance, seq: this.#auditSeq, prev: this.#auditHead };
      const bytes = build(link);
      const evidence = await this.#o.platform.attest({ publicKey: this.#o.keyPair.publicKeySpki, nonce, userData: sha384(bytes) });
      this.#auditHead = nextAuditHead(this.#auditHead, bytes);
      this.#auditSeq++;
      return { bytes, evidence };
    });
  }

  /** An attested refusal, as the error the session sends (server.ts). */
  async #refusal(
    start: JobStartMessage,
    err: ToolkitError,
    sealDigest: Uint8Array | null,
    ledger: LedgerLink | null,
    ledgerBlob: Uint8Array | undefined,
  ): Promise<JobRefusal> {
    let qd: Uint8Array;
    try {
      qd = queryDigest(start.query);
    } catch {
      qd = new Uint8Array(48);
    }
    const { bytes, evidence } = await this.#attestLinked(start.nonce, (audit) =>
      encodeRefusal({
        version: 2,
        refused: true,
        jobId: start.jobId,
        datasetId: start.datasetId,
        sealDigest,
        queryDigest: qd,
        code: err.code,
        reason: (err.reason ?? 'refused').slice(0, 64),
        message: err.message.slice(0, 1024),
        ledger,
        audit,
        platform: this.#o.platform.kind,
        workerVersion: this.#o.workerVersion ?? WORKER_VERSION,
      }),
    );
    return new JobRefusal(err, { refusal: bytes, evidence, ...(ledgerBlob ? { ledger: ledgerBlob } : {}) });
  }

  /**
   * Admit a job to the dataset's ledger under the lock: adopt a newer sealed state from the host (a
   * restarted worker), refuse an older one (rollback while this worker lives), reserve epsilon.
   */
  async #admit(sealHex: string, seal: Uint8Array, keys: ReadonlyMap<string, Uint8Array>, blob: Uint8Array | undefined, release: ResolvedRelease): Promise<Admission> {
    return this.#ledgerLock.run(() => {
      let cur = this.#ledger.get(sealHex) ?? { generation: 0, spent: 0 };
      if (blob !== undefined) {
        const held = openLedger(blob, keys, seal);
        if (held.generation < cur.generation)
          throw new ToolkitError('ERR_PRIVACY_BUDGET', `the host returned ledger generation ${held.generation}, older than this worker's ${cur.generation}`, { reason: 'ledger_rollback' });
        if (held.generation > cur.generation) cur = { generation: held.generation, spent: held.spent };
      }
      let spent = cur.spent;
      let budget: { limit: number; spent: number } | null = null;
      if (release.dp) {
        const limit = release.budget ?? 0;
        const after = spent + release.dp.epsilon;
        if (after > limit + 1e-9)
          throw new ToolkitError('ERR_PRIVACY_BUDGET', `epsilon ${release.dp.epsilon} exceeds the dataset's remaining budget ${Math.max(0, limit - spent)} of ${limit}`, { reason: 'exhausted' });
        spent = after;
        budget = { limit, spent };
      }
      const link: LedgerLink = { generation: cur.generation + 1, spent };
      // Charged now, before any record: a job that fails later has spent its epsilon.
      this.#ledger.set(sealHex, link);
      return { link, blob: sealLedger({ dataset: sealHex, ...link }, keys, seal, this.#random), budget };
    });
  }

  async #startJob(start: JobStartMessage, ctx?: JobContext): Promise<ActiveJob> {
    const now = this.#o.now ?? (() => performance.now());
    const t0 = now();
    const manifest = start.manifest;
    let release: ResolvedRelease;
    // Before any key or record: the owner's verdict on the query (an untrusted policy so far; the
    // seal check below proves it is the owner's, and the verdict stands only then).
    try {
      release = checkQueryAgainstPolicy(start.query, manifest, (this.#o.clock ?? (() => new Date()))());
      if (this.#o.requireDp && !release.dp)
        throw new ToolkitError('ERR_QUERY_REFUSED', 'this worker answers only differentially private queries ($.privacy.dp)', { reason: 'dp_required' });
      const bound = groupBound(release, manifest.records);
      const maxGroups = this.#o.maxGroups ?? DEFAULT_MAX_GROUPS;
      if (bound > maxGroups)
        throw new ToolkitError('ERR_QUERY_REFUSED', `grouping by ${release.query.groupBy.join(', ')} may form up to ${bound} groups, more than ${maxGroups}; the owner can declare a public domain for these fields`, { reason: 'group_bound' });
      groupMemoryBudgetCheck(release.query, bound);
    } catch (e) {
      throw await this.#refusal(start, asToolkit(e), null, null, undefined);
    }
    let cache: DataKeyCache;
    try {
      cache = await this.#o.loadKeys(keyReferencesFromManifest(manifest), () => ctx?.credentials());
    } catch (e) {
      throw await this.#refusal(start, asToolkit(e), null, null, undefined);
    }
    this.#log(`job ${start.jobId}: ${cache.size} data key(s) released by KMS in ${Math.round(now() - t0)} ms`);
    // The job takes the same byte arrays, so its wipe and the cache's reach the same memory.
    const keys = new Map<string, Uint8Array>(cache.refs().map((r) => [r, cache.get(r)!]));
    const wipe = () => {
      cache.wipe();
      for (const k of keys.values()) k.fill(0);
      keys.clear();
    };
    let seal: Uint8Array;
    let admitted: Admission | undefined;
    let job;
    try {
      seal = verifyManifestSeal(manifest, keys);
    } catch (e) {
      wipe();
      throw await this.#refusal(start, asToolkit(e), null, null, undefined);
    }
    const sealHex = Buffer.from(seal).toString('hex');
    try {
      admitted = await this.#admit(sealHex, seal, keys, start.ledger, release);
    } catch (e) {
      wipe();
      throw await this.#refusal(start, asToolkit(e), seal, null, undefined);
    }
    const ad = admitted;
    try {
      job = createJob({
        jobId: start.jobId,
        datasetId: start.datasetId,
        query: start.query,
        release,
        manifest,
        sealDigest: seal,
        keys,
        decryptor: this.#o.decryptor,
        platform: this.#o.platform.kind,
        workerVersion: this.#o.workerVersion ?? WORKER_VERSION,
        randomBytes: this.#random,
        ...(this.#o.maxGroups !== undefined ? { maxGroups: this.#o.maxGroups } : {}),
      });
    } catch (e) {
      wipe();
      throw await this.#refusal(start, asToolkit(e), seal, ad.link, ad.blob);
    }
    this.#log(`job ${start.jobId}: admitted (ledger generation ${ad.link.generation}${release.dp ? `, epsilon ${release.dp.epsilon} reserved` : ''})`);
    const log = this.#log;
    const refuse = (e: ToolkitError) => this.#refusal(start, e, seal, ad.link, ad.blob);
    const attest = (build: (l: AuditLink) => Uint8Array) => this.#attestLinked(start.nonce, build);
    return {
      jobId: start.jobId,
      addBatch(msg: RecordsMessage) {
        // Never throws for what the records hold (job.ts); a poisoned job drops the rest.
        job.addBatch(msg.records, encodedRecordsOf(msg));
        if (job.state === 'failed') wipe();
      },
      async finish(end: JobEndMessage) {
        let completion;
        try {
          completion = job.finish({ count: end.count, datasetDigest: end.datasetDigest });
        } catch {
          wipe();
          throw await refuse(jobRefused());
        } finally {
          // Keys are not needed past the last batch; wiped before anything leaves.
          wipe();
        }
        const { bytes, evidence } = await attest((audit) => completion.build({ ledger: ad.link, audit, budget: ad.budget }).resultBytes);
        log(`job ${start.jobId}: ${job.count} records, ${Math.round(now() - t0)} ms, peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB`);
        return { result: bytes, evidence, ledger: ad.blob };
      },
      abort() {
        job.abort();
        wipe();
      },
    };
  }
}

function asToolkit(e: unknown): ToolkitError {
  return e instanceof ToolkitError ? e : new ToolkitError('ERR_JOB_FAILED', 'internal error in the worker', { reason: 'internal', cause: e });
}
