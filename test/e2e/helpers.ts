/** Shared set-up for the end-to-end tests: a small encrypted dataset behind a simulated stack. */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectEnclave } from '../../host/enclave-conn.js';
import { encryptDataset, KmsDataKeySource } from '../../host/encrypt.js';
import { startSimStack, type SimStack } from '../../host/sim-stack.js';
import type { KeyManifest, ReleasePolicy } from '../../enclave/protocol/index.js';
import type { RunJobOptions } from '../../host/run.js';

export const REGIONS = ['north', 'south', 'east', 'west'];
export const SECRET_WORDS = ['zanzibarquux', 'plughxyzzy', 'frobnicated'];

/** Deterministic records; the email, spend and complaint fields get encrypted. */
export function makeRecords(n: number): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      id: `r${i}`,
      region: REGIONS[i % REGIONS.length],
      email: `person${i}@secret-mail.example`,
      spend: 10 + ((i * 37) % 90),
      complaint: `the delivery was late and the ${SECRET_WORDS[i % SECRET_WORDS.length]} box arrived broken`,
    });
  }
  return out;
}

export const QUERY = {
  version: 1,
  groupBy: ['region'],
  aggregates: [
    { name: 'n', op: 'count' },
    { name: 'spend_mean', op: 'mean', field: 'spend' },
    { name: 'spend_max', op: 'max', field: 'spend' },
    { name: 'sentiment', op: 'sentiment', field: 'complaint' },
  ],
  privacy: { minGroupSize: 10 },
};

/** An owner who trusts its analysts: exact aggregates and extrema allowed, any field. */
export const OPEN_POLICY: ReleasePolicy = {
  version: 1,
  minGroupSize: 10,
  dimensions: '*',
  aggregates: '*',
  filters: '*',
  dp: { required: false, epsilonMin: 0.01, epsilonMax: 10, budget: 10, delta: 1e-6 },
  exactExtrema: true,
};

export interface Fixture {
  stack: SimStack;
  worker: Awaited<ReturnType<SimStack['startWorker']>>;
  keyId: string;
  plainPath: string;
  datasetPath: string;
  manifest: KeyManifest;
  root: Uint8Array;
  logs: string[];
  baseRun(over?: Partial<RunJobOptions>): RunJobOptions;
}

export const IMAGE_A = new Uint8Array(48).fill(0xa1);
export const IMAGE_B = new Uint8Array(48).fill(0xb2);

export async function setUp(records = 200, opts: { datasetId?: string; policy?: ReleasePolicy | null } = {}): Promise<Fixture> {
  const logs: string[] = [];
  const stack = await startSimStack({ log: (l) => logs.push(l) });
  try {
    const worker = await stack.startWorker({ imageId: IMAGE_A, name: 'a' });
    await stack.startKms();
    const keyId = await stack.createEnclaveKey(worker.pcr0);
    const plainPath = join(stack.dir, 'plain.ndjson');
    writeFileSync(plainPath, makeRecords(records).map((r) => JSON.stringify(r)).join('\n') + '\n');
    const datasetPath = join(stack.dir, 'data.ndjson');
    // Signed as the data owner: the simulator checks SigV4 and the key policy lets only it generate data keys.
    const kms = new KmsDataKeySource({ endpoint: stack.kmsUrl, region: 'us-east-1', credentials: await stack.credentials('data-owner') });
    const manifest = await encryptDataset({
      input: plainPath,
      format: 'ndjson',
      fields: ['email', 'spend', 'complaint'],
      idField: 'id',
      datasetId: opts.datasetId ?? 'e2e-ds',
      keyId,
      kms,
      output: datasetPath,
      policy: opts.policy === undefined ? OPEN_POLICY : opts.policy,
    });
    kms.client.destroy();
    const root = await stack.simulatorRoot();
    const fx: Fixture = {
      stack,
      worker,
      keyId,
      plainPath,
      datasetPath,
      manifest,
      root,
      logs,
      baseRun: (over = {}) => ({
        dataset: datasetPath,
        manifest,
        query: QUERY,
        connect: () => connectEnclave({ kind: 'unix', path: worker.socketPath }),
        expect: { pcrs: new Map([[0, worker.pcr0]]), simulatorRoots: [root] },
        // The instance role's session (the simulator checks SigV4): the worker signs Decrypt with it.
        credentials: () => stack.credentials('role'),
        batchSize: 50,
        ...over,
      }),
    };
    return fx;
  } catch (e) {
    await stack.close();
    throw e;
  }
}
