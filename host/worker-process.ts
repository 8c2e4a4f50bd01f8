/**
 * Start the enclave worker as a separate process on a Unix socket, exactly as the host would reach a
 * real enclave over vsock: the host never imports the worker's code, it only speaks the frame protocol.
 * Used by `enclavekit run --enclave sim`, the demo, the benchmark and the end-to-end tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ToolkitError } from '../attestation/errors.js';

/** The repository (or installed package) root, from this file's place in `host/` or `dist/host/`. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin', 'enclavekit.js'))) return dir;
    dir = dirname(dir);
  }
  throw new ToolkitError('ERR_CONFIG_INVALID', 'cannot locate the enclavekit package root to start the worker');
}

/**
 * How to start `enclavekit enclave`: from the TypeScript sources through tsx when this module itself
 * runs from sources (tests, `npm run bench`), otherwise from the compiled `dist/` through the bin.
 */
export function workerCommand(): { command: string; args: string[]; cwd: string } {
  const root = packageRoot();
  // ENCLAVEKIT_WORKER_ENTRY=dist|source overrides the choice (e.g. a benchmark run from sources that
  // should measure the compiled worker, as an enclave image would run it).
  const forced = process.env.ENCLAVEKIT_WORKER_ENTRY;
  const fromSource = forced === 'source' || (forced !== 'dist' && import.meta.url.endsWith('.ts'));
  if (fromSource) return { command: process.execPath, args: ['--import', 'tsx', resolve(root, 'enclave/cli.ts')], cwd: root };
  return { command: process.execPath, args: [resolve(root, 'bin/enclavekit.js'), 'enclave'], cwd: root };
}

export interface WorkerProcessOptions {
  /** Unix socket path the worker listens on. */
  socketPath: string;
  /** Extra `enclavekit enclave` flags (platform, sim state, image, KMS). */
  args: readonly string[];
  /** Each line the worker writes to stderr (its logs carry no plaintext, keys or ciphertext). */
  onLog?: (line: string) => void;
  /** How long to wait for the worker's `listening` line (default 30 s: tsx compiles on first start). */
  startTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface WorkerProcess {
  readonly pid: number;
  readonly socketPath: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export async function startWorkerProcess(opts: WorkerProcessOptions): Promise<WorkerProcess> {
  const { command, args, cwd } = workerCommand();
  // Extra Node flags for the worker (profiling, heap limits): not part of the protocol, a tool for us.
  const nodeArgs = (opts.env ?? process.env).ENCLAVEKIT_WORKER_NODE_ARGS?.split(' ').filter((a) => a.length > 0) ?? [];
  // stdin is a pipe the worker watches (--exit-with-stdin): if this process dies, even by SIGKILL,
  // the pipe closes and the worker exits instead of lingering on its socket.
  const child = spawn(command, [...nodeArgs, ...args, '--listen', `unix:${opts.socketPath}`, '--exit-with-stdin', ...opts.args], {
    cwd,
    env: { ...(opts.env ?? process.env), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  child.stdin!.on('error', () => {});
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('exit', (code, signal) => res({ code, signal }));
    child.once('error', () => res({ code: null, signal: null }));
  });
  let ready!: () => void;
  const readyP = new Promise<void>((r) => (ready = r));
  let buf = '';
  const tail: string[] = [];
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      tail.push(line);
      if (tail.length > 20) tail.shift();
      if (/\blistening\b/.test(line)) ready();
      opts.onLog?.(line);
    }
  });
  const stop = async (graceMs = 2000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(t);
  };
  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    readyP.then(() => 'ready' as const),
    exited.then(() => 'exited' as const),
    new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (outcome !== 'ready') {
    await stop(200);
    throw new ToolkitError(
      'ERR_PLATFORM_UNAVAILABLE',
      `the worker process ${outcome === 'exited' ? 'exited before listening' : `did not listen within ${timeoutMs} ms`}${tail.length ? `: ${tail.slice(-3).join(' | ')}` : ''}`,
      { reason: 'worker_start' },
    );
  }
  return { pid: child.pid!, socketPath: opts.socketPath, child, exited, stop };
}
