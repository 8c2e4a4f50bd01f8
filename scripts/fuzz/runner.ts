/**
 * Runs one target in a worker thread with a watchdog: an execution longer than the timeout is a hang
 * (the worker is terminated and the input saved), a worker that runs out of its heap bound is a memory
 * finding, a worker that dies is a crash. After either, the worker restarts with the corpus found so
 * far and the time left. Findings are saved (one file per distinct signature) for `--replay`.
 */
import { Worker } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SAB_HEADER, type Finding, type FindingKind, type TargetStats, type WorkerInput, type WorkerMessage } from './types.js';

export const TARGETS_DIR = fileURLToPath(new URL('./targets/', import.meta.url));
const BOOT = new URL('./worker-boot.mjs', import.meta.url);

/** Target names: scripts/fuzz/targets/NAME.ts (files starting with `_` are helpers). */
export function targetNames(): string[] {
  return readdirSync(TARGETS_DIR)
    .filter((f) => f.endsWith('.ts') && !f.startsWith('_'))
    .map((f) => f.slice(0, -3))
    .sort();
}

export function targetModule(nameOrFile: string): string {
  if (nameOrFile.endsWith('.ts') || nameOrFile.includes('/')) return pathToFileURL(nameOrFile).href;
  return pathToFileURL(join(TARGETS_DIR, `${nameOrFile}.ts`)).href;
}

export interface RunOptions {
  seconds: number;
  seed: number;
  timeoutMs: number;
  maxRssMb: number;
  maxHeapMb: number;
  findingsDir: string;
  /** Extra starting inputs (from --corpus). */
  corpus?: Uint8Array[];
  /** Called with each new corpus entry (to save it). */
  onCorpus?: (input: Uint8Array) => void;
  onProgress?: (s: TargetStats) => void;
  /** Stop restarting after this many hangs/crashes. */
  maxRestarts?: number;
  maxInputBytes?: number;
  /** Also report the points seen but never reached. */
  unreached?: boolean;
}

export interface Unreached {
  url: string;
  line: number;
  code: string;
}

export interface RunResult {
  stats: TargetStats;
  findings: Finding[];
  unreached?: Unreached[];
}

function save(dir: string, f: Finding): string {
  mkdirSync(dir, { recursive: true });
  const id = createHash('sha256').update(f.input).digest('hex').slice(0, 16);
  const base = join(dir, `${f.kind}-${id}`);
  writeFileSync(`${base}.bin`, f.input);
  writeFileSync(
    `${base}.txt`,
    `target: ${f.target}\nkind: ${f.kind}\nsignature: ${f.signature}\nerror: ${f.name}: ${f.message}\n` +
      `replay: npm run fuzz -- ${f.target} --replay ${base}.bin\n\n${f.stack}\n`,
  );
  return `${base}.bin`;
}

interface Attempt {
  done?: TargetStats;
  unreached?: Unreached[];
  last?: TargetStats;
  ended: 'done' | 'hang' | 'memory' | 'crash';
  error?: string;
  fuzzSeconds: number;
}

/** Fuzz `name` for `o.seconds` of fuzzing time (setup not counted). */
export async function runTarget(name: string, o: RunOptions): Promise<RunResult> {
  const findings = new Map<string, Finding>();
  const corpus = [...(o.corpus ?? [])];
  let remaining = o.seconds;
  let restarts = 0;
  let execsBefore = 0;
  let final: TargetStats | undefined;
  let maxExecMs = 0;
  const maxRestarts = o.maxRestarts ?? 5;
  for (;;) {
    const a = await attempt(name, { ...o, seconds: remaining }, corpus, findings, restarts);
    const s = a.done ?? a.last;
    if (s) {
      execsBefore += s.execs;
      maxExecMs = Math.max(maxExecMs, s.maxExecMs);
      final = s;
    }
    remaining -= a.fuzzSeconds;
    if (a.ended === 'done' || restarts >= maxRestarts || remaining < 0.25) {
      const stats: TargetStats = {
        ...(final ?? emptyStats(name)),
        execs: execsBefore,
        seconds: o.seconds - Math.max(0, remaining),
        execsPerSecond: execsBefore / Math.max(1e-3, o.seconds - Math.max(0, remaining)),
        findings: [...findings.values()].length,
        maxExecMs,
        restarts,
      };
      return { stats, findings: [...findings.values()], ...(a.unreached ? { unreached: a.unreached } : {}) };
    }
    restarts++;
  }
}

function emptyStats(name: string): TargetStats {
  return { target: name, execs: 0, seconds: 0, execsPerSecond: 0, coverage: 0, coverageKnown: 0, libCoverage: 0, corpus: 0, seeds: 0, findings: 0, maxExecMs: 0, restarts: 0, setupMs: 0, coverageTakes: 0, coverageSeconds: 0 };
}

function attempt(name: string, o: RunOptions, corpus: Uint8Array[], findings: Map<string, Finding>, restarts: number): Promise<Attempt> {
  const sab = new SharedArrayBuffer(SAB_HEADER + (o.maxInputBytes ?? 1 << 20));
  const f64 = new Float64Array(sab, 0, 2);
  const len32 = new Uint32Array(sab, 16, 1);
  const bytes = new Uint8Array(sab, SAB_HEADER);
  const data: WorkerInput = {
    mode: 'fuzz',
    targetModule: targetModule(name),
    seconds: o.seconds,
    seed: (o.seed + restarts * 7919) >>> 0,
    corpus: corpus.slice(),
    inputs: [],
    sab,
    maxRssMb: o.maxRssMb,
    maxHeapMb: o.maxHeapMb,
    unreached: o.unreached === true,
  };
  const worker = new Worker(BOOT, { workerData: data, resourceLimits: { maxOldGenerationSizeMb: o.maxHeapMb, maxYoungGenerationSizeMb: 64 }, stdout: true, stderr: true });
  // A target's own console output is not the runner's: drop it (ENCLAVEKIT_FUZZ_DEBUG shows it).
  if (process.env.ENCLAVEKIT_FUZZ_DEBUG) {
    worker.stdout.pipe(process.stderr);
    worker.stderr.pipe(process.stderr);
  } else {
    worker.stdout.resume();
    worker.stderr.resume();
  }
  let timeoutMs = o.timeoutMs;
  let started = 0;
  let last: TargetStats | undefined;
  const record = (kind: FindingKind, signature: string, nameOf: string, message: string, stack: string, input: Uint8Array): void => {
    const existing = findings.get(signature);
    if (existing) {
      existing.count++;
      return;
    }
    const f: Finding = { target: name, kind, signature, name: nameOf, message, stack, input, count: 1 };
    f.file = save(join(o.findingsDir, basename(name, '.ts')), f);
    findings.set(signature, f);
  };
  const currentInput = (): Uint8Array => bytes.slice(0, len32[0]!);
  return new Promise<Attempt>((resolve) => {
    let settled = false;
    const finish = (r: Omit<Attempt, 'fuzzSeconds'>) => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      const fuzzSeconds = started === 0 ? 0 : (Date.now() - started) / 1000;
      void worker.terminate().then(() => resolve({ ...r, fuzzSeconds }));
    };
    const watchdog = setInterval(() => {
      const t = f64[0]!;
      if (t > 0 && Date.now() - t > timeoutMs) {
        const input = currentInput();
        record('hang', 'hang', 'Hang', `one execution ran longer than ${timeoutMs} ms`, '', input);
        finish({ ended: 'hang', ...(last ? { last } : {}) });
      }
    }, 25);
    worker.on('message', (m: WorkerMessage) => {
      switch (m.type) {
        case 'ready':
          started = Date.now();
          if (m.timeoutMs !== undefined) timeoutMs = m.timeoutMs;
          break;
        case 'corpus':
          corpus.push(m.input);
          o.onCorpus?.(m.input);
          break;
        case 'finding':
          record(m.verdict.kind, m.verdict.signature, m.verdict.name, m.verdict.message, m.verdict.stack, m.input);
          break;
        case 'duplicate': {
          const f = findings.get(m.signature);
          if (f) f.count++;
          break;
        }
        case 'progress':
          last = m.stats;
          o.onProgress?.(m.stats);
          break;
        case 'done':
          finish({ ended: 'done', done: m.stats, ...(m.unreached ? { unreached: m.unreached } : {}) });
          break;
        default:
          break;
      }
    });
    worker.on('error', (e: Error & { code?: string }) => {
      const input = currentInput();
      if (e.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        record('memory', 'memory:heap-limit', 'Memory', `the worker ran out of its ${o.maxHeapMb} MB heap`, '', input);
        finish({ ended: 'memory', ...(last ? { last } : {}) });
      } else {
        // An error outside any execution (setup, the loop itself, an unhandled rejection of a target).
        record('crash', `crash:${e.name}:${e.message.slice(0, 80)}`, e.name, e.message, e.stack ?? '', input);
        finish({ ended: 'crash', error: e.message, ...(last ? { last } : {}) });
      }
    });
    worker.on('exit', (code) => {
      if (!settled) {
        record('crash', `crash:exit:${code}`, 'Exit', `the worker exited with code ${code}`, '', currentInput());
        finish({ ended: 'crash', ...(last ? { last } : {}) });
      }
    });
  });
}

export interface ReplayResult {
  outcome: string;
  finding: boolean;
  kind?: FindingKind;
  message?: string;
  stack?: string;
}

/** Run `inputs` through the target once each, with the same hang and memory bounds. */
export async function replay(name: string, inputs: Uint8Array[], o: Pick<RunOptions, 'timeoutMs' | 'maxRssMb' | 'maxHeapMb'>): Promise<ReplayResult[]> {
  const sab = new SharedArrayBuffer(SAB_HEADER + Math.max(1, ...inputs.map((i) => i.length)));
  const data: WorkerInput = { mode: 'replay', targetModule: targetModule(name), seconds: 0, seed: 1, corpus: [], inputs, sab, maxRssMb: o.maxRssMb, maxHeapMb: o.maxHeapMb };
  const worker = new Worker(BOOT, { workerData: data, resourceLimits: { maxOldGenerationSizeMb: o.maxHeapMb, maxYoungGenerationSizeMb: 64 } });
  const results: ReplayResult[] = [];
  let timeoutMs = o.timeoutMs;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (extra?: ReplayResult) => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      if (extra) results.push(extra);
      void worker.terminate().then(() => resolve(results));
    };
    // Armed once the target's setup is done; each input restarts the clock.
    let current = 0;
    const watchdog = setInterval(() => {
      if (current > 0 && Date.now() - current > timeoutMs) finish({ outcome: `hang (> ${timeoutMs} ms)`, finding: true, kind: 'hang' });
    }, 25);
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'ready') {
        current = Date.now();
        if (m.timeoutMs !== undefined) timeoutMs = m.timeoutMs;
      } else if (m.type === 'replayed') {
        current = Date.now();
        results.push({ outcome: m.outcome, finding: m.verdict !== undefined, ...(m.verdict ? { kind: m.verdict.kind, message: `${m.verdict.name}: ${m.verdict.message}`, stack: m.verdict.stack } : {}) });
        if (results.length === inputs.length) finish();
      }
    });
    worker.on('error', (e: Error & { code?: string }) =>
      finish({ outcome: e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'out of memory' : `crash: ${e.message}`, finding: true, kind: e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'memory' : 'crash', stack: e.stack ?? '' }),
    );
    worker.on('exit', (code) => finish(results.length === inputs.length ? undefined : { outcome: `worker exited (${code})`, finding: true, kind: 'crash' }));
  });
}
