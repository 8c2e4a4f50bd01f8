/**
 * The worker: what runs inside the TEE for each host connection. It owns one RSA key pair for its
 * lifetime (the KMS Recipient key, bound into every attestation), and per job:
 *
 *   job_start  -> KMS Decrypt with Recipient for each manifest key (through the host's proxy)
 *   records    -> dataset digest over the records as received, then decrypt + aggregate (job.ts)
 *   job_end    -> check count and digest against the host's, encode the canonical result, attest it
 *                 with user_data = SHA-384(result) and the job's nonce
 *
 * Data keys live in a per-job cache that is wiped when the job ends, fails or the host goes away.
 * Log lines name jobs, counts, codes and timings; never a value, key or ciphertext.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { ToolkitError } from '../attestation/errors.js';
import { encodedRecordsOf, type JobEndMessage, type JobStartMessage, type RecordsMessage } from './protocol/index.js';
import type { DataKeyCache, RecipientKeyPair } from './keys.js';
import { keyReferencesFromManifest, type KmsKeyReference } from './kms-client.js';
import type { Platform } from './platform/types.js';
import { nodeFieldDecryptor, type FieldDecryptor, type PackedDecryptResult, type PackedItems } from './field-decrypt.js';
import { createJob } from './job.js';
import { PrivacyBudget } from './analytics/privacy.js';
import { MAX_EPSILON } from './analytics/query.js';
import type { ActiveJob, SessionHandler } from './server.js';

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

export const WORKER_VERSION = 'enclavekit-worker/0.1.0';

export interface WorkerOptions {
  platform: Platform;
  keyPair: RecipientKeyPair;
  /** Fetches a job's data keys (EnclaveKms.loadKeys in production). */
  loadKeys: (refs: KmsKeyReference[]) => Promise<DataKeyCache>;
  /** Batched AES-GCM (the addon's, or node:crypto). */
  decryptor: FieldDecryptor;
  log?: (line: string) => void;
  /** Per-dataset differential-privacy budget file (kept by the worker across jobs). */
  privacyBudgetFile?: string;
  /**
   * Refuse queries without differential privacy. Exact aggregates let whoever writes queries learn
   * one record's encrypted values by differencing (two queries whose filters differ by one record);
   * deployments whose query authors are not trusted by the data owners should set this.
   */
  requireDp?: boolean;
  workerVersion?: string;
  now?: () => number;
}

export class Worker {
  readonly #o: WorkerOptions;
  readonly #log: (line: string) => void;
  constructor(options: WorkerOptions) {
    this.#o = options;
    this.#log = options.log ?? (() => {});
  }

  /** The per-connection protocol handler (enclave/server.ts drives it). */
  handler(): SessionHandler {
    return {
      attest: (nonce) => this.#o.platform.attest({ publicKey: this.#o.keyPair.publicKeySpki, nonce }),
      publicKey: this.#o.keyPair.publicKeySpki,
      startJob: (msg) => this.#startJob(msg),
      log: this.#log,
    };
  }

  async #budget(): Promise<PrivacyBudget | undefined> {
    const f = this.#o.privacyBudgetFile;
    if (f === undefined) return undefined;
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new PrivacyBudget({ limit: MAX_EPSILON });
      throw new ToolkitError('ERR_CONFIG_INVALID', 'privacy budget file cannot be read', { reason: 'budget', cause: e });
    }
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new ToolkitError('ERR_CONFIG_INVALID', 'privacy budget file is not JSON', { reason: 'budget', cause: e });
    }
    return PrivacyBudget.fromJSON(v);
  }

  async #saveBudget(b: PrivacyBudget): Promise<void> {
    const f = this.#o.privacyBudgetFile!;
    const tmp = `${f}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(b.toJSON()) + '\n', { mode: 0o600 });
    await rename(tmp, f);
  }

  async #startJob(start: JobStartMessage): Promise<ActiveJob> {
    const now = this.#o.now ?? (() => performance.now());
    const t0 = now();
    if (this.#o.requireDp && (start.query as { privacy?: { dp?: unknown } } | null)?.privacy?.dp === undefined)
      throw new ToolkitError('ERR_QUERY_INVALID', 'this worker answers only differentially private queries ($.privacy.dp)', {
        reason: 'dp_required',
      });
    const budget = await this.#budget();
    const cache: DataKeyCache = await this.#o.loadKeys(keyReferencesFromManifest(start.manifest));
    this.#log(`job ${start.jobId}: ${cache.size} data key(s) released by KMS in ${Math.round(now() - t0)} ms`);
    // The job takes the same byte arrays, so its wipe and the cache's reach the same memory.
    const keys = new Map<string, Uint8Array>(cache.refs().map((r) => [r, cache.get(r)!]));
    const wipe = () => {
      cache.wipe();
      for (const k of keys.values()) k.fill(0);
      keys.clear();
    };
    let job;
    try {
      job = createJob({
        jobId: start.jobId,
        datasetId: start.datasetId,
        query: start.query,
        manifest: start.manifest,
        keys,
        decryptor: this.#o.decryptor,
        platform: this.#o.platform.kind,
        workerVersion: this.#o.workerVersion ?? WORKER_VERSION,
        ...(budget ? { budget } : {}),
      });
    } catch (e) {
      wipe();
      throw e;
    }
    const platform = this.#o.platform;
    const publicKey = this.#o.keyPair.publicKeySpki;
    const log = this.#log;
    const saveBudget = budget && (start.query as { privacy?: { dp?: unknown } }).privacy?.dp ? () => this.#saveBudget(budget) : undefined;
    return {
      jobId: start.jobId,
      addBatch(msg: RecordsMessage) {
        try {
          job.addBatch(msg.records, encodedRecordsOf(msg));
        } catch (e) {
          wipe();
          throw e;
        }
      },
      async finish(end: JobEndMessage) {
        let out;
        try {
          out = job.finish({ count: end.count, datasetDigest: end.datasetDigest });
        } finally {
          // Keys are not needed past the last batch; wiped before anything leaves.
          wipe();
        }
        if (saveBudget) await saveBudget();
        const evidence = await platform.attest({ publicKey, nonce: start.nonce, userData: out.resultDigest });
        log(`job ${start.jobId}: ${job.count} records, ${Math.round(now() - t0)} ms, peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB`);
        return { result: out.resultBytes, evidence };
      },
      abort() {
        job.abort();
        wipe();
      },
    };
  }
}
