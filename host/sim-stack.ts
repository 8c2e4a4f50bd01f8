/**
 * The whole pipeline on one machine, in simulator mode, the way the demo, the benchmark and the
 * end-to-end tests run it: a simulator state folder, simulated workers as separate processes on Unix
 * sockets, the KMS simulator on a free loopback port trusting that folder's simulator root, and the
 * KMS proxy (Unix socket in, TCP out, allow-listed to the simulator only).
 *
 * The image formulas (image id, PCR0, simulated MEASUREMENT) are attestation/sim/image.ts's, the
 * same the worker uses; the end-to-end tests check that a worker's attested PCR0 equals `simPcr0(...)`.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ToolkitError } from '../attestation/errors.js';
import { simImageIdFromContents, simImageIdFromDigests, simPcr0, simSnpMeasurement } from '../attestation/sim/image.js';
import { startKmsSimulator, DEFAULT_ACCOUNT_ID, type KmsSimulator } from './kms-sim/server.js';
import { readSimulatorRootFromState } from './kms-sim/sim-root.js';
export { readSnpSimulatorRootFromState } from './kms-sim/sim-root.js';
import { buildEnclaveKeyPolicy } from './key-policy.js';
import { startKmsProxy, type KmsProxy } from './kms-proxy.js';
import { startWorkerProcess, type WorkerProcess } from './worker-process.js';

/** Image id of files held in memory (attestation/sim/image.ts). */
export const simImageId = simImageIdFromContents;
export { simPcr0, simSnpMeasurement };

export async function simImageIdFromFiles(paths: readonly string[]): Promise<Uint8Array> {
  const digests: Uint8Array[] = [];
  for (const p of paths) digests.push(new Uint8Array(createHash('sha384').update(await readFile(p)).digest()));
  return simImageIdFromDigests(digests);
}

/**
 * A loopback port that is free right now. The KMS simulator binds it a moment later (the worker must be
 * told the KMS URL before the simulator can start: it trusts a root the worker creates); another process
 * taking the port in between makes the simulator's start fail with EADDRINUSE rather than misroute.
 */
export async function freeLoopbackPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface SimStackOptions {
  /** Parent of the temporary folder (default os.tmpdir()). */
  tmpParent?: string;
  /** Use this folder (kept on close) instead of a fresh temporary one: state and KMS keys persist. */
  dir?: string;
  /** KMS simulator port (default: a free loopback port). */
  kmsPort?: number;
  /** Worker and KMS log lines. */
  log?: (line: string) => void;
  /** KMS proxy: bound on concurrent connections. */
  now?: () => Date;
}

export interface SimWorkerOptions {
  /** Either an image id (48 bytes) or the files the image consists of. */
  imageId?: Uint8Array;
  imageFiles?: string[];
  name?: string;
  extraArgs?: string[];
  /** Point the worker at this KMS stream endpoint instead of the stack's proxy. */
  kms?: string;
  env?: NodeJS.ProcessEnv;
}

export interface SimStack {
  readonly dir: string;
  readonly kmsUrl: string;
  readonly kmsPort: number;
  /** Unix socket of the KMS proxy that workers use as `--kms`. */
  readonly kmsProxySocket: string;
  /** Present once the KMS simulator is started. */
  kms?: KmsSimulator;
  proxy?: KmsProxy;
  /** The simulator root of this stack's state (after the first worker created it). */
  simulatorRoot(): Promise<Uint8Array>;
  /** Start a simulated worker process; the first one creates the simulator state. */
  startWorker(o: SimWorkerOptions): Promise<WorkerProcess & { pcr0: Uint8Array; imageId: Uint8Array }>;
  /** Start the KMS simulator (trusting this stack's simulator root) and the proxy in front of it. */
  startKms(): Promise<void>;
  /** CreateKey whose policy releases data keys only to the image with this PCR0. */
  createEnclaveKey(pcr0: Uint8Array): Promise<string>;
  close(): Promise<void>;
}

export async function startSimStack(opts: SimStackOptions = {}): Promise<SimStack> {
  const keep = opts.dir !== undefined;
  if (opts.dir !== undefined) await mkdir(opts.dir, { recursive: true, mode: 0o700 });
  const dir = opts.dir ?? (await mkdtemp(join(opts.tmpParent ?? tmpdir(), 'enclavekit-')));
  const log = opts.log ?? (() => {});
  const kmsPort = opts.kmsPort ?? (await freeLoopbackPort());
  const kmsUrl = `http://127.0.0.1:${kmsPort}`;
  const kmsProxySocket = join(dir, 'kms.sock');
  const workers: WorkerProcess[] = [];
  let n = 0;
  const stack: SimStack = {
    dir,
    kmsUrl,
    kmsPort,
    kmsProxySocket,
    async simulatorRoot() {
      const r = await readSimulatorRootFromState(join(dir, 'state'));
      if (!r) throw new ToolkitError('ERR_SIMULATOR_STATE', 'the simulator state has no root yet (start a worker first)');
      return r;
    },
    async startWorker(o) {
      const imageId = o.imageId ?? (o.imageFiles ? await simImageIdFromFiles(o.imageFiles) : undefined);
      if (!imageId) throw new TypeError('startWorker: give imageId or imageFiles');
      const name = o.name ?? `worker${++n}`;
      const w = await startWorkerProcess({
        socketPath: join(dir, `${name}.sock`),
        args: [
          '--platform', 'simulator',
          '--sim-state', join(dir, 'state'),
          '--image-id', Buffer.from(imageId).toString('hex'),
          '--kms', o.kms ?? `unix:${kmsProxySocket}`,
          '--kms-endpoint', kmsUrl,
          ...(o.extraArgs ?? []),
        ],
        onLog: (l) => log(`[${name}] ${l}`),
        ...(o.env ? { env: o.env } : {}),
      });
      workers.push(w);
      return Object.assign(w, { pcr0: simPcr0(imageId), imageId });
    },
    async startKms() {
      stack.kms = await startKmsSimulator({
        host: '127.0.0.1',
        port: kmsPort,
        stateDir: join(dir, 'state'),
        trustSimulator: true,
        ...(opts.now ? { now: opts.now } : {}),
        log: (l) => log(`[kms] ${l}`),
      });
      stack.proxy = await startKmsProxy({
        listen: { kind: 'unix', path: kmsProxySocket },
        target: { host: '127.0.0.1', port: kmsPort },
        allow: [{ host: '127.0.0.1', port: kmsPort }],
        log: (l) => log(`[proxy] ${l}`),
      });
    },
    async createEnclaveKey(pcr0) {
      const { KMSClient, CreateKeyCommand } = await import('@aws-sdk/client-kms');
      const client = new KMSClient({
        region: 'us-east-1',
        endpoint: kmsUrl,
        credentials: { accessKeyId: 'enclavekit-simulator', secretAccessKey: 'enclavekit-simulator' },
      });
      try {
        // Three distinct principals, as `enclavekit policy` requires. The simulator checks no
        // signature, so every caller is every principal of its account: the demo's encrypt step
        // (GenerateDataKey, no Recipient) passes as the data owner and the worker's attested Decrypt as
        // the role, while a Decrypt without attestation still meets the explicit Deny.
        const policy = buildEnclaveKeyPolicy({
          pcrs: new Map([[0, pcr0]]),
          account: DEFAULT_ACCOUNT_ID,
          keyAdmin: `arn:aws:iam::${DEFAULT_ACCOUNT_ID}:role/enclavekit-sim-key-admin`,
          dataOwner: `arn:aws:iam::${DEFAULT_ACCOUNT_ID}:role/enclavekit-sim-data-owner`,
          role: `arn:aws:iam::${DEFAULT_ACCOUNT_ID}:role/enclavekit-sim-parent`,
        });
        const out = await client.send(new CreateKeyCommand({ Policy: policy, Description: 'enclavekit demo key' }));
        const id = out.KeyMetadata?.KeyId;
        if (!id) throw new ToolkitError('ERR_KMS_REQUEST', 'CreateKey returned no key id', { reason: 'create_key' });
        return id;
      } finally {
        client.destroy();
      }
    },
    async close() {
      await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
      await stack.proxy?.close().catch(() => undefined);
      await stack.kms?.close().catch(() => undefined);
      if (!keep) await rm(dir, { recursive: true, force: true });
      else await rm(kmsProxySocket, { force: true });
    },
  };
  return stack;
}
