/**
 * `npm run bench -- pipeline`: the whole pipeline end to end in simulator mode, against the
 * decrypt-only throughput of the same records in the same run.
 *
 * - dataset: 1M synthetic customers (ENCLAVEKIT_BENCH_RECORDS to change) with three encrypted fields
 *   each (`email`, `orders.total`, `complaint`), generated once into a cache folder under the OS temp
 *   dir with its KMS simulator state, and reused by later runs;
 * - end to end: host process reads the file, streams batches over a Unix socket to the worker process,
 *   which fetches the data key from the KMS simulator (Recipient + attestation, through the KMS proxy),
 *   decrypts and aggregates; the result's attestation is verified. Timed from connect to verified result;
 * - decrypt-only: this process reads and parses the same file and opens the same three fields per
 *   record with the same batched AES-GCM (the addon's when built), nothing else;
 * - enclave_peak_rss_mb: the worker process's VmHWM from /proc/<pid>/status after the job.
 *
 * Last line: RESULT pipeline records=.. records_per_s=.. decrypt_only_records_per_s=.. ratio=.. enclave_peak_rss_mb=..
 */
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encryptDataset, KmsDataKeySource } from '../../host/encrypt.js';
import { REGIONS, writeSyntheticDataset } from '../../host/synthetic.js';
import { startSimStack } from '../../host/sim-stack.js';
import { runJob } from '../../host/run.js';
import { connectEnclave } from '../../host/enclave-conn.js';
import { readDataset } from '../../host/dataset.js';
import { parseManifest, parseField, fieldAad, getPath, type KeyManifest, type ReleasePolicy } from '../../enclave/protocol/index.js';
import { EnclaveKms, keyReferencesFromManifest } from '../../enclave/kms-client.js';
import { generateRecipientKeyPair } from '../../enclave/keys.js';
import { SimNitroPlatform } from '../../enclave/platform/sim-nitro.js';
import { openSimulatorState } from '../../enclave/sim-state.js';
import { FieldDecryptor as NativeDecryptor } from '../../native/gcm.js';
import { fmt } from './_stats.js';

const RECORDS = Number(process.env.ENCLAVEKIT_BENCH_RECORDS ?? 1_000_000);
const FIELDS = ['email', 'orders.total', 'complaint'];
const IMAGE = new Uint8Array(48).fill(0x5e);
const QUERY = {
  version: 1,
  groupBy: ['region'],
  aggregates: [
    { name: 'customers', op: 'count' },
    { name: 'spend_mean', op: 'mean', field: 'orders.total' },
    { name: 'spend_stddev', op: 'stddev', field: 'orders.total' },
    { name: 'sentiment', op: 'sentiment', field: 'complaint' },
  ],
  privacy: { minGroupSize: 10 },
};

/** The owner allows this benchmark's exact query: region is a declared dimension, spend is bounded. */
const POLICY: ReleasePolicy = {
  version: 1,
  minGroupSize: 10,
  dimensions: { region: { domain: [...REGIONS] } },
  aggregates: { 'orders.total': { ops: ['mean', 'stddev'], bounds: [0, 100_000] }, complaint: { ops: ['sentiment'] } },
  filters: '*',
  dp: { required: false, epsilonMin: 0.1, epsilonMax: 1, budget: 10, delta: 1e-6 },
  exactExtrema: false,
};

function vmHwmMb(pid: number): number {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(s);
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * The worker runs compiled, as an enclave image runs it (not through the tsx loader this script uses):
 * build dist/ first unless ENCLAVEKIT_WORKER_ENTRY says otherwise.
 */
function useCompiledWorker(): void {
  if (process.env.ENCLAVEKIT_WORKER_ENTRY !== undefined) return;
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const t = performance.now();
  try {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'ignore' });
  } catch {
    // tsc exits non-zero on type errors but still emits; the worker entry must exist, checked below
  }
  if (!existsSync(join(root, 'dist/enclave/cli.js'))) throw new Error('could not build dist/ for the compiled worker');
  process.env.ENCLAVEKIT_WORKER_ENTRY = 'dist';
  console.log(`pipeline: built the compiled worker in ${fmt((performance.now() - t) / 1000)} s`);
}

export async function main(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  useCompiledWorker();
  const cache = join(tmpdir(), `enclavekit-bench-pipeline-v2-${RECORDS}`);
  const datasetPath = join(cache, 'customers.enc.ndjson');
  const manifestPath = join(cache, 'manifest.json');
  const stack = await startSimStack({ dir: cache });
  try {
    const worker = await stack.startWorker({ imageId: IMAGE, name: 'bench-worker' });
    await stack.startKms();
    let manifest: KeyManifest;
    if (existsSync(manifestPath) && existsSync(datasetPath)) {
      manifest = parseManifest(readFileSync(manifestPath, 'utf8'));
      console.log(`pipeline: reusing ${datasetPath}`);
    } else {
      const t = performance.now();
      const plain = join(cache, 'customers.ndjson');
      await writeSyntheticDataset(plain, { count: RECORDS, seed: 7 });
      const keyId = await stack.createEnclaveKey(worker.pcr0);
      const kms = new KmsDataKeySource({ endpoint: stack.kmsUrl, region: 'us-east-1', credentials: await stack.credentials('data-owner') });
      try {
        manifest = await encryptDataset({
          input: plain,
          format: 'ndjson',
          fields: FIELDS,
          idField: 'id',
          datasetId: 'bench-customers',
          keyId,
          kms,
          output: `${datasetPath}.tmp`,
          rotateAfter: 10_000_000,
          policy: POLICY,
        });
      } finally {
        kms.client.destroy();
      }
      renameSync(`${datasetPath}.tmp`, datasetPath);
      writeFileSync(manifestPath, JSON.stringify(manifest));
      console.log(`pipeline: generated and encrypted ${RECORDS} records in ${fmt((performance.now() - t) / 1000)} s -> ${datasetPath}`);
    }
    const size = statSync(datasetPath).size;
    console.log(`pipeline: dataset ${fmt(size / 1e6)} MB, ${RECORDS} records, fields ${FIELDS.join(', ')}`);

    // End to end.
    const root = await stack.simulatorRoot();
    const t0 = performance.now();
    const out = await runJob({
      dataset: datasetPath,
      manifest,
      query: QUERY,
      connect: () => connectEnclave({ kind: 'unix', path: worker.socketPath }),
      expect: { pcrs: new Map([[0, worker.pcr0]]), simulatorRoots: [root] },
      // The instance role's session: the worker signs its KMS Decrypt (SigV4) with it.
      credentials: () => stack.credentials('role'),
      resultTimeoutMs: 600_000,
    });
    const e2eSecs = (performance.now() - t0) / 1000;
    if (!out.ok) throw new Error(`pipeline job failed: ${out.error.code}: ${out.error.message}`);
    const rss = vmHwmMb(worker.pid);
    const e2eRate = out.records / e2eSecs;
    console.log(`end to end:   ${out.records} records in ${fmt(e2eSecs, 2)} s = ${fmt(e2eRate, 0)} records/s (result verified, ${out.result.counts.groups} groups)`);
    console.log(`worker peak RSS (VmHWM): ${fmt(rss)} MB`);

    // Decrypt-only: same file, same fields, same batched AES-GCM, in this process.
    const state = await openSimulatorState(join(cache, 'state'), { now: new Date() });
    const keyPair = await generateRecipientKeyPair();
    const kms = new EnclaveKms({
      platform: new SimNitroPlatform({ ca: state.nitroCa, identity: { imageId: IMAGE } }),
      keyPair,
      region: 'us-east-1',
      endpoint: stack.kmsUrl,
      allowPlainHttp: true,
      credentials: () => stack.credentials('role'),
      connect: async () => {
        const s = createConnection({ host: '127.0.0.1', port: stack.kmsPort });
        await new Promise((r, j) => s.once('connect', r).once('error', j));
        return s;
      },
    });
    const keys = await kms.loadKeys(keyReferencesFromManifest(manifest));
    await kms.close();
    const dec = new NativeDecryptor();
    const segs = FIELDS.map((f) => f.split('.'));
    const t1 = performance.now();
    let n = 0;
    let opened = 0;
    let batch: { iv: Uint8Array; ciphertext: Uint8Array; tag: Uint8Array; aad: Uint8Array }[] = [];
    let ref = '';
    const flush = () => {
      if (batch.length === 0) return;
      const r = dec.decryptFields(keys.get(ref)!, batch);
      opened += r.okCount;
      r.wipe();
      batch = [];
    };
    for await (const { record } of readDataset(datasetPath, { format: 'ndjson' })) {
      n++;
      const id = String(record.id);
      for (let i = 0; i < FIELDS.length; i++) {
        const p = parseField(getPath(record, segs[i]!));
        if (p.keyRef !== ref) {
          flush();
          ref = p.keyRef;
        }
        batch.push({ iv: p.iv, ciphertext: p.ciphertext, tag: p.tag, aad: fieldAad(manifest.datasetId, id, FIELDS[i]!, p.keyRef) });
      }
      if (batch.length >= 6000) flush();
    }
    flush();
    const decSecs = (performance.now() - t1) / 1000;
    keys.wipe();
    if (opened !== n * FIELDS.length) throw new Error(`decrypt-only opened ${opened} of ${n * FIELDS.length} fields`);
    const decRate = n / decSecs;
    console.log(`decrypt-only: ${n} records in ${fmt(decSecs, 2)} s = ${fmt(decRate, 0)} records/s (${dec.native ? 'native' : 'node:crypto'} AES-GCM, parse + open ${FIELDS.length} fields)`);
    console.log(
      `RESULT pipeline records=${out.records} records_per_s=${fmt(e2eRate, 0)} decrypt_only_records_per_s=${fmt(decRate, 0)} ratio=${fmt(e2eRate / decRate, 2)} enclave_peak_rss_mb=${fmt(rss, 1)}`,
    );
  } finally {
    await stack.close();
  }
}
