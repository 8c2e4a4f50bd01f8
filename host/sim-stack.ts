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
import { addSimulatorPrincipal, ensureRootCredentials, type SimCredentials } from './kms-sim/principals.js';
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

/** The stack's principals: see `SimStack.credentials`. */
export type SimPrincipalName = 'data-owner' | 'key-admin' | 'role' | 'root';

/** Role sessions the stack creates last this long (from the stack's clock). */
export const SIM_STACK_SESSION_SECONDS = 12 * 3600;

/**
 * The three principals of the stack's key policies (`buildEnclaveKeyPolicy`), IAM roles of the
 * simulator's account. The simulator checks SigV4 and evaluates the policy for the caller, so only the
 * data owner generates data keys (without a Recipient), only the role decrypts (with an attested
 * Recipient), and the key admin creates and manages keys without using them.
 */
export const SIM_STACK_PRINCIPALS = Object.freeze({
  keyAdmin: `arn:aws:iam::${DEFAULT_ACCOUNT_ID}:role/enclavekit-sim-key-admin`,
  dataOwner: `arn:aws:iam::${DEFAULT_ACCOUNT_ID}:role/enclavekit-sim-data-owner`,
  role: `arn:aws:iam::${DEFAULT_ACCOUNT_ID}:role/enclavekit-sim-parent`,
});

export interface SimStack {
  readonly dir: string;
  /** The simulator state folder (simulator CA, KMS keys, principals and `credentials`). */
  readonly stateDir: string;
  /** ARNs of the stack's key admin, data owner and parent-instance role. */
  readonly principals: typeof SIM_STACK_PRINCIPALS;
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
  /**
   * Credentials (AWS SDK shape) of one of the stack's principals, made in its state folder on first
   * call (the KMS simulator need not be running) and the same for the stack's life:
   * - `data-owner` (default): GenerateDataKey / Encrypt without a Recipient, as `encryptDataset` does;
   * - `role`: the parent instance's role, whose credentials the worker's attested Decrypt is signed with;
   * - `key-admin`: CreateKey and key administration (createEnclaveKey uses it), never key use;
   * each an assumed-role session (`arn:aws:sts::ACCT:assumed-role/NAME/enclavekit-sim`, a session
   * token, an expiry SIM_STACK_SESSION_SECONDS after the stack's clock);
   * - `root`: the account root (`STATE/credentials`), which the stack's key policies do not name.
   * Each call returns a fresh copy.
   */
  credentials(who?: SimPrincipalName): Promise<SimCredentials>;
  /** CreateKey (as the key admin) whose policy releases data keys only to the image with this PCR0. */
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
  const stateDir = join(dir, 'state');
  const stackNow = opts.now ?? (() => new Date());
  const made = new Map<SimPrincipalName, Promise<SimCredentials>>();
  const roleOf: Record<Exclude<SimPrincipalName, 'root'>, string> = {
    'data-owner': SIM_STACK_PRINCIPALS.dataOwner,
    'key-admin': SIM_STACK_PRINCIPALS.keyAdmin,
    role: SIM_STACK_PRINCIPALS.role,
  };
  const stack: SimStack = {
    dir,
    stateDir,
    principals: SIM_STACK_PRINCIPALS,
    async credentials(who = 'data-owner') {
      if (who !== 'root' && !Object.hasOwn(roleOf, who)) throw new TypeError(`"who" expected data-owner, key-admin, role or root, got ${JSON.stringify(String(who))}`);
      let p = made.get(who);
      if (p === undefined) {
        p =
          who === 'root'
            ? ensureRootCredentials(stateDir, { accountId: DEFAULT_ACCOUNT_ID, now: stackNow() })
            : addSimulatorPrincipal(stateDir, { principal: roleOf[who], session: true, expiresInSeconds: SIM_STACK_SESSION_SECONDS, now: stackNow() });
        made.set(who, p);
        p.catch(() => made.delete(who));
      }
      const c = await p;
      return { ...c, ...(c.expiration ? { expiration: new Date(c.expiration) } : {}) };
    },
    kmsUrl,
    kmsPort,
    kmsProxySocket,
    async simulatorRoot() {
      const r = await readSimulatorRootFromState(stateDir);
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
      const client = new KMSClient({ region: 'us-east-1', endpoint: kmsUrl, credentials: await stack.credentials('key-admin') });
      try {
        // Three distinct principals, as `enclavekit policy` requires, and the simulator checks who
        // signs: the data owner's GenerateDataKey (no Recipient) is allowed, the role's Decrypt only with
        // an attested Recipient of this PCR0, and nobody's Decrypt without attestation (explicit Deny).
        // The key admin creates the key (AWS's lockout check expects the creator to manage it).
        const policy = buildEnclaveKeyPolicy({
          pcrs: new Map([[0, pcr0]]),
          account: DEFAULT_ACCOUNT_ID,
          ...SIM_STACK_PRINCIPALS,
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
