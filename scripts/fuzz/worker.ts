/**
 * One target's fuzz loop, in a worker thread so the runner can stop a hung execution (terminate) and
 * bound its heap (resourceLimits). Before each execution the input and the start time go into shared
 * memory; the runner's watchdog reads them, so a hang is saved with the input that caused it.
 *
 * Coverage is taken once per batch of executions; a batch that reached something new is bisected
 * (halves replayed) down to the inputs that did, which are kept. Batches double while nothing new
 * turns up (up to 64) and halve when something does, so the cost of a coverage take (a few ms) is
 * shared by many executions once the easy points are found.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { getHeapStatistics } from 'node:v8';
import { ToolkitError } from '../../attestation/errors.js';
import { classify, isProjectFile, type Verdict } from './classify.js';
import { CoverageTracker, type ScriptKind } from './coverage.js';
import { mutate, type MutateContext } from './mutate.js';
import { Rng } from './rng.js';
import { SAB_HEADER, type FuzzTarget, type TargetStats, type WorkerInput, type WorkerMessage } from './types.js';

const wd = workerData as WorkerInput;
const port = parentPort!;
const send = (m: WorkerMessage) => port.postMessage(m);

const f64 = new Float64Array(wd.sab, 0, 2);
const len32 = new Uint32Array(wd.sab, 16, 1);
const sabBytes = new Uint8Array(wd.sab, SAB_HEADER);

function classifyUrl(url: string): ScriptKind {
  if (!url.startsWith('file://')) return undefined;
  if (isProjectFile(url)) return 'project';
  if (/\/node_modules\/(cbor-x|@peculiar\/asn1-[a-z]+)\//.test(url)) return 'lib';
  return undefined;
}

const mod = (await import(wd.targetModule)) as { default: FuzzTarget<unknown> };
const target = mod.default;
const t0 = performance.now();
const ctx = await target.setup?.();
const seeds = await target.seeds(ctx);
const setupMs = performance.now() - t0;
send({ type: 'ready', setupMs, seeds: seeds.length, timeoutMs: target.timeoutMs });

let execs = 0;
let maxExecMs = 0;
let findings = 0;
const seen = new Set<string>();
let rssReported = false;
const maxRssKb = wd.maxRssMb * 1024;

async function exec(input: Uint8Array): Promise<Verdict | undefined> {
  const n = Math.min(input.length, sabBytes.length);
  sabBytes.set(input.subarray(0, n));
  len32[0] = n;
  const start = Date.now();
  f64[0] = start;
  const t = performance.now();
  let verdict: Verdict | undefined;
  try {
    const r = target.run(input, ctx);
    if (r !== undefined && typeof (r as Promise<void>).then === 'function') await r;
  } catch (e) {
    verdict = classify(e, target);
  }
  const ms = performance.now() - t;
  f64[0] = 0;
  execs++;
  if (ms > maxExecMs) maxExecMs = ms;
  if (!rssReported && process.resourceUsage().maxRSS > maxRssKb) {
    rssReported = true;
    verdict ??= { kind: 'memory', signature: 'memory:rss', name: 'Memory', message: `peak RSS passed ${wd.maxRssMb} MB during this execution`, stack: '' };
  }
  if ((execs & 255) === 0) {
    const h = getHeapStatistics();
    const mb = (h.used_heap_size + ((h as { external_memory?: number }).external_memory ?? 0)) / 1048576;
    if (mb > wd.maxHeapMb && !seen.has('memory:heap')) verdict ??= { kind: 'memory', signature: 'memory:heap', name: 'Memory', message: `heap + external memory ${mb.toFixed(0)} MB after this execution (bound ${wd.maxHeapMb} MB)`, stack: '' };
  }
  if (verdict !== undefined) {
    if (seen.has(verdict.signature)) send({ type: 'duplicate', signature: verdict.signature });
    else {
      seen.add(verdict.signature);
      findings++;
      send({ type: 'finding', verdict, input: input.slice() });
    }
  }
  return verdict;
}

if (wd.mode === 'replay') {
  for (let i = 0; i < wd.inputs.length; i++) {
    const input = wd.inputs[i]!;
    let outcome = 'accepted';
    let verdict: Verdict | undefined;
    try {
      const r = target.run(input, ctx);
      if (r !== undefined && typeof (r as Promise<void>).then === 'function') await r;
    } catch (e) {
      verdict = classify(e, target);
      outcome = e instanceof ToolkitError ? `refused ${e.code}${e.reason ? ` (${e.reason})` : ''}` : verdict ? 'finding' : `refused ${(e as Error)?.name}`;
    }
    send({ type: 'replayed', index: i, outcome, ...(verdict ? { verdict } : {}) });
  }
} else {
  const rng = new Rng(wd.seed);
  const cov = new CoverageTracker(classifyUrl);
  const corpus: Uint8Array[] = [];
  // The target's own tokens are worth more than words found in the seeds: repeated so that they make
  // up about half of the picks.
  const auto = tokensOf(seeds).filter((t) => !(target.dict ?? []).includes(t));
  const own = target.dict ?? [];
  const dictText = [...Array.from({ length: Math.max(1, Math.ceil(auto.length / Math.max(1, own.length))) }, () => own).flat(), ...auto];
  const enc = new TextEncoder();
  const mctx: MutateContext = { format: target.format, maxLen: target.maxLen, donors: corpus, dict: dictText.map((t) => enc.encode(t)), dictText };
  const stats = (): TargetStats => ({
    target: target.name,
    execs,
    seconds: (performance.now() - fuzzStart) / 1000,
    execsPerSecond: execs / Math.max(1e-3, (performance.now() - fuzzStart) / 1000),
    coverage: cov.projectPoints,
    coverageKnown: cov.projectKnown,
    libCoverage: cov.libPoints,
    corpus: corpus.length,
    seeds: seeds.length,
    findings,
    maxExecMs: Math.round(maxExecMs * 10) / 10,
    restarts: 0,
    setupMs: Math.round(setupMs),
    coverageTakes: cov.takes,
    coverageSeconds: Math.round(cov.takeMs) / 1000,
  });

  const keep = (input: Uint8Array, ids: number[], announce: boolean) => {
    cov.commit(ids);
    corpus.push(input);
    if (announce) send({ type: 'corpus', input });
  };

  cov.take();
  const fuzzStart = performance.now();
  // The seeds and any corpus handed in (after a restart) first, one at a time; all of them are kept.
  for (const s of [...seeds, ...wd.corpus]) {
    cov.take();
    await exec(s);
    keep(s.length > target.maxLen ? s.subarray(0, target.maxLen) : s, cov.novel(cov.take()), false);
  }
  const deadline = fuzzStart + wd.seconds * 1000;
  let batch = 4;
  let lastProgress = performance.now();
  const recent = 16;

  /** Runs `group` (whose union reached something new) and keeps the members that did: halves, not one by one. */
  const attribute = async (group: Uint8Array[]): Promise<void> => {
    if (group.length === 1) {
      cov.take();
      await exec(group[0]!);
      const own = cov.novel(cov.take());
      if (own.length > 0) keep(group[0]!, own, true);
      return;
    }
    const half = group.length >> 1;
    for (const part of [group.slice(0, half), group.slice(half)]) {
      cov.take();
      for (const c of part) await exec(c);
      if (cov.novel(cov.take()).length > 0) await attribute(part);
    }
  };

  while (performance.now() < deadline && corpus.length > 0) {
    const children: Uint8Array[] = [];
    for (let i = 0; i < batch; i++) {
      const parent = rng.chance(0.3) ? corpus[corpus.length - 1 - rng.below(Math.min(recent, corpus.length))]! : rng.pick(corpus);
      const child = mutate(rng, parent, mctx);
      await exec(child);
      children.push(child);
    }
    const ids = cov.novel(cov.take());
    if (ids.length > 0) {
      if (children.length === 1) keep(children[0]!, ids, true);
      else await attribute(children);
      // What no single child reproduced on its own (state carried between executions) is still
      // marked reached, so it is not chased again.
      cov.commit(ids);
      batch = Math.max(2, batch >> 1);
    } else batch = Math.min(batch * 2, 64);
    const now = performance.now();
    if (now - lastProgress > 250) {
      lastProgress = now;
      send({ type: 'progress', stats: stats() });
    }
  }
  const final = stats();
  const unreached = wd.unreached ? cov.unreached() : undefined;
  cov.close();
  await target.teardown?.(ctx);
  send({ type: 'done', stats: final, ...(unreached ? { unreached } : {}) });
}

/** Word-like runs of 3..40 characters in the seeds: field names and magic strings for the dictionary. */
function tokensOf(inputs: readonly Uint8Array[]): string[] {
  const out = new Set<string>();
  const latin1 = new TextDecoder('latin1');
  for (const b of inputs) {
    for (const m of latin1.decode(b.subarray(0, 1 << 16)).matchAll(/[A-Za-z0-9_.:*\/-]{3,40}/g)) {
      out.add(m[0]);
      if (out.size >= 400) return [...out];
    }
  }
  return [...out];
}
