/**
 * Fixtures for the CLI behaviour tests that need no KMS: a sealed manifest made with a fake data-key
 * source, and a worker in this process (the real session code over a Unix socket, a simulated Nitro
 * platform) that answers honestly or fails in a chosen way.
 */
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ToolkitError } from '../../attestation/errors.js';
import { simPcr0 } from '../../attestation/sim/image.js';
import { serveSession, type ActiveJob } from '../../enclave/server.js';
import { SimNitroPlatform } from '../../enclave/platform/sim-nitro.js';
import { openSimulatorState } from '../../enclave/sim-state.js';
import { generateRecipientKeyPair } from '../../enclave/keys.js';
import { encodeResult, manifestBody, queryDigest, sealDigest, sha384, type KeyManifest, type ReleasePolicy } from '../../enclave/protocol/index.js';
import { encryptDataset } from '../../host/encrypt.js';
import { FakeKms } from '../pipeline/fixtures.js';

export const IMAGE = new Uint8Array(48).fill(0x5c);
export const PCR0_HEX = Buffer.from(simPcr0(IMAGE)).toString('hex');

export const POLICY: ReleasePolicy = {
  version: 1,
  minGroupSize: 10,
  dimensions: { region: { domain: ['north', 'south'] } },
  aggregates: { spend: { ops: ['sum', 'mean'], bounds: [0, 200] } },
  filters: '*',
  dp: { required: false, epsilonMin: 0.1, epsilonMax: 1, budget: 5, delta: 1e-6 },
  exactExtrema: false,
};

export const QUERY = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }, { name: 's', op: 'mean', field: 'spend' }] };

export interface Files {
  dir: string;
  plain: string;
  dataset: string;
  manifest: string;
  manifestObj: KeyManifest;
  query: string;
  cleanup(): void;
}

/** A small dataset, encrypted and sealed under fake data keys (no KMS), with its manifest and a query. */
export async function sealedFiles(records = 40): Promise<Files> {
  const dir = mkdtempSync(join(tmpdir(), 'ek-cli-'));
  const plain = join(dir, 'plain.ndjson');
  const lines: string[] = [];
  for (let i = 0; i < records; i++) lines.push(JSON.stringify({ id: `r${i}`, region: i % 2 ? 'north' : 'south', spend: 10 + i, email: `p${i}@example.test` }));
  writeFileSync(plain, lines.join('\n') + '\n');
  const dataset = join(dir, 'data.ndjson');
  const manifestObj = await encryptDataset({ input: plain, format: 'ndjson', fields: ['email', 'spend'], idField: 'id', datasetId: 'cli-ds', keyId: 'alias/x', kms: new FakeKms(), output: dataset, policy: POLICY });
  const manifest = join(dir, 'manifest.json');
  writeFileSync(manifest, JSON.stringify(manifestObj));
  const query = join(dir, 'query.json');
  writeFileSync(query, JSON.stringify(QUERY));
  return { dir, plain, dataset, manifest, manifestObj, query, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** How the in-process worker behaves once a job starts. */
export type WorkerMode =
  | 'honest'
  /** The result's user_data is not SHA-384 of the result: the host must refuse it (a verdict). */
  | 'lie'
  /** The job fails with this worker error code (sent in an `error` frame). */
  | { fail: string; reason?: string };

export interface FakeWorker {
  socket: string;
  stateDir: string;
  close(): Promise<void>;
}

export async function startFakeWorker(dir: string, mode: WorkerMode): Promise<FakeWorker> {
  const stateDir = join(dir, 'state');
  const state = await openSimulatorState(stateDir, { now: new Date() });
  const platform = new SimNitroPlatform({ ca: state.nitroCa, identity: { imageId: IMAGE } });
  const keys = await generateRecipientKeyPair();
  const socket = join(dir, `w-${Math.random().toString(36).slice(2, 8)}.sock`);
  const server: Server = createServer((s) =>
    void serveSession(s, {
      attest: (nonce) => platform.attest({ publicKey: keys.publicKeySpki, nonce }),
      startJob: async (start): Promise<ActiveJob> => {
        if (typeof mode === 'object') throw new ToolkitError(mode.fail as ToolkitError['code'], `fake worker: ${mode.fail}`, { reason: mode.reason ?? 'fake' });
        return {
          jobId: start.jobId,
          addBatch() {},
          abort() {},
          finish: async (end) => {
            const result = encodeResult({
              version: 2,
              jobId: start.jobId,
              datasetId: start.datasetId,
              datasetDigest: end.datasetDigest,
              sealDigest: sealDigest(manifestBody(start.manifest)),
              keyArns: [...new Set(Object.values(start.manifest.keys).map((k) => k.keyId))].sort(),
              query: start.query,
              queryDigest: queryDigest(start.query),
              counts: { records: end.count, matched: end.count, groups: 0, suppressedGroups: 0 },
              groups: [],
              privacy: { minGroupSize: 10, dp: null },
              ledger: { generation: 1, spent: 0 },
              audit: { instance: new Uint8Array(16), seq: 0, prev: new Uint8Array(48) },
              platform: 'simulator',
              workerVersion: 'fake/1',
            });
            const userData = mode === 'lie' ? sha384(new Uint8Array([1, 2, 3])) : sha384(result);
            return { result, evidence: await platform.attest({ publicKey: keys.publicKeySpki, nonce: start.nonce, userData }) };
          },
        };
      },
      log: () => {},
    }),
  );
  server.listen(socket);
  await once(server, 'listening');
  return { socket, stateDir, close: () => new Promise<void>((r) => server.close(() => r())) };
}
