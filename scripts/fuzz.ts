/**
 * `npm run fuzz -- NAME... [--seconds N]`: coverage-guided fuzzing of the parsers of untrusted input
 * (scripts/fuzz/targets/NAME.ts), guided by V8's precise block coverage. `--list` lists the targets,
 * `--all` runs every one, `--replay FILE|DIR` re-runs saved findings. Prints a table and, per target,
 * `RESULT fuzz target=... execs=... execs_per_s=... coverage=... findings=...`. Exit 1 on any finding.
 */
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createHash, randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { replay, runTarget, targetModule, targetNames, type RunResult } from './fuzz/runner.js';
import type { FuzzTarget, TargetStats } from './fuzz/types.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE = `usage: npm run fuzz -- NAME... | --all [options]
       npm run fuzz -- --list
       npm run fuzz -- NAME --replay FILE|DIR

options:
  --seconds N       fuzzing time per target, setup not counted (default 10)
  --seed N          PRNG seed (default: random, printed)
  --jobs N          targets fuzzed at once, one worker thread each (default 1)
  --timeout-ms N    an execution longer than this is a hang (default 2000)
  --max-heap-mb N   heap bound of the worker (default 512); --max-rss-mb N peak RSS bound (default 2048)
  --findings DIR    where findings are saved (default: $TMPDIR/enclavekit-fuzz/findings)
  --corpus DIR      load inputs from DIR/NAME/ and save new corpus entries there
  --max-restarts N  restarts after hangs, memory findings and crashes before a target stops (default 5)
  --json FILE       also write the figures and findings as JSON
  --unreached DIR   write DIR/NAME.txt: the project's blocks each target saw but never reached
  --quiet           no progress lines`;

interface Args {
  names: string[];
  all: boolean;
  list: boolean;
  seconds: number;
  seed: number;
  jobs: number;
  timeoutMs: number;
  maxHeapMb: number;
  maxRssMb: number;
  findingsDir: string;
  corpusDir: string | undefined;
  json: string | undefined;
  replay: string | undefined;
  quiet: boolean;
  maxRestarts: number;
  unreached: string | undefined;
}

function usage(message?: string): never {
  if (message) console.error(message);
  console.error(USAGE);
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    names: [],
    all: false,
    list: false,
    seconds: 10,
    seed: randomInt(1, 2 ** 31),
    jobs: 1,
    timeoutMs: 2000,
    maxHeapMb: 512,
    maxRssMb: 2048,
    findingsDir: join(tmpdir(), 'enclavekit-fuzz', 'findings'),
    corpusDir: undefined,
    json: undefined,
    replay: undefined,
    quiet: !process.stderr.isTTY,
    maxRestarts: 5,
    unreached: undefined,
  };
  const num = (v: string | undefined, flag: string): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0) usage(`${flag} expects a non-negative number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    switch (x) {
      case '--list': a.list = true; break;
      case '--all': a.all = true; break;
      case '--quiet': a.quiet = true; break;
      case '--seconds': a.seconds = num(argv[++i], x); break;
      case '--seed': a.seed = Math.floor(num(argv[++i], x)); break;
      case '--jobs': a.jobs = Math.max(1, Math.floor(num(argv[++i], x))); break;
      case '--timeout-ms': a.timeoutMs = num(argv[++i], x); break;
      case '--max-heap-mb': a.maxHeapMb = num(argv[++i], x); break;
      case '--max-rss-mb': a.maxRssMb = num(argv[++i], x); break;
      case '--max-restarts': a.maxRestarts = Math.floor(num(argv[++i], x)); break;
      case '--findings': a.findingsDir = resolve(argv[++i] ?? usage('--findings expects a folder')); break;
      case '--corpus': a.corpusDir = resolve(argv[++i] ?? usage('--corpus expects a folder')); break;
      case '--json': a.json = resolve(argv[++i] ?? usage('--json expects a file')); break;
      case '--unreached': a.unreached = resolve(argv[++i] ?? usage('--unreached expects a folder')); break;
      case '--replay': a.replay = resolve(argv[++i] ?? usage('--replay expects a file or folder')); break;
      case '-h':
      case '--help': console.log(USAGE); process.exit(0);
      default:
        if (x.startsWith('-')) usage(`unknown option ${x}`);
        a.names.push(x);
    }
  }
  return a;
}

const args = parseArgs(process.argv.slice(2));
const available = targetNames();

if (args.list) {
  for (const name of available) {
    const t = ((await import(targetModule(name))) as { default: FuzzTarget }).default;
    console.log(`${name.padEnd(16)} ${t.description}\n${' '.repeat(17)}${t.covers.join(', ')}`);
  }
  process.exit(0);
}

const names = args.all ? available : args.names;
if (names.length === 0) usage();
for (const n of names) if (!available.includes(n) && !n.endsWith('.ts')) usage(`unknown target "${n}"; available: ${available.join(', ')}`);

if (args.replay !== undefined) {
  if (names.length !== 1) usage('--replay takes exactly one target');
  const st = statSync(args.replay);
  const files = st.isDirectory() ? readdirSync(args.replay).filter((f) => !f.endsWith('.txt')).map((f) => join(args.replay!, f)) : [args.replay];
  const results = await replay(names[0]!, files.map((f) => new Uint8Array(readFileSync(f))), args);
  let bad = 0;
  results.forEach((r, i) => {
    if (r.finding) bad++;
    console.log(`${files[i] ?? '(input)'}: ${r.finding ? `FINDING (${r.kind}) ` : ''}${r.outcome}${r.message ? `\n  ${r.message}` : ''}${r.finding && r.stack ? `\n${r.stack.split('\n').slice(0, 12).join('\n')}` : ''}`);
  });
  console.log(`RESULT fuzz-replay target=${names[0]} inputs=${files.length} findings=${bad}`);
  process.exit(bad > 0 ? 1 : 0);
}

function loadCorpus(name: string): Uint8Array[] {
  if (args.corpusDir === undefined) return [];
  const dir = join(args.corpusDir, name);
  try {
    return readdirSync(dir).slice(0, 5000).map((f) => new Uint8Array(readFileSync(join(dir, f))));
  } catch {
    return [];
  }
}

function saveCorpus(name: string): ((input: Uint8Array) => void) | undefined {
  if (args.corpusDir === undefined) return undefined;
  const dir = join(args.corpusDir, name);
  mkdirSync(dir, { recursive: true });
  return (input) => writeFileSync(join(dir, createHash('sha256').update(input).digest('hex').slice(0, 20)), input);
}

console.error(`fuzzing ${names.length} target(s) for ${args.seconds} s each (seed ${args.seed}, ${args.jobs} at a time); findings go to ${args.findingsDir}`);
const results: RunResult[] = new Array(names.length);
let nextIndex = 0;
async function lane(): Promise<void> {
  for (;;) {
    const i = nextIndex++;
    if (i >= names.length) return;
    const name = names[i]!;
    const r = await runTarget(name, {
      seconds: args.seconds,
      seed: args.seed + i,
      timeoutMs: args.timeoutMs,
      maxRssMb: args.maxRssMb,
      maxHeapMb: args.maxHeapMb,
      findingsDir: args.findingsDir,
      maxRestarts: args.maxRestarts,
      unreached: args.unreached !== undefined,
      corpus: loadCorpus(name),
      ...(saveCorpus(name) ? { onCorpus: saveCorpus(name)! } : {}),
      ...(args.quiet ? {} : { onProgress: (s: TargetStats) => process.stderr.write(`  ${name}: ${s.execs} execs, ${Math.round(s.execsPerSecond)}/s, coverage ${s.coverage}, corpus ${s.corpus}, findings ${s.findings}\n`) }),
    });
    results[i] = r;
    if (args.unreached !== undefined && r.unreached) {
      mkdirSync(args.unreached, { recursive: true });
      writeFileSync(join(args.unreached, `${name.replace(/[^\w.-]/g, '_')}.txt`), r.unreached.map((u) => `${u.url.replace(/^file:\/\//, '')}:${u.line}  ${u.code}`).join('\n') + '\n');
    }
    for (const f of r.findings) console.error(`FINDING ${name} ${f.kind} ${f.name}: ${f.message.split('\n')[0]}\n  saved ${f.file} (seen ${f.count}x); replay: npm run fuzz -- ${name} --replay ${f.file}`);
  }
}
await Promise.all(Array.from({ length: Math.min(args.jobs, names.length) }, () => lane()));

const rows = results.map((r) => r.stats);
const header = ['target', 'execs', 'execs/s', 'coverage', 'known', 'lib', 'corpus', 'max_ms', 'setup_ms', 'findings'];
const table = rows.map((s) => [s.target, String(s.execs), String(Math.round(s.execsPerSecond)), String(s.coverage), String(s.coverageKnown), String(s.libCoverage), String(s.corpus), String(s.maxExecMs), String(s.setupMs), String(s.findings)]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(line(header));
for (const r of table) console.log(line(r));
console.log('coverage = distinct V8 blocks and functions reached in attestation/, enclave/, host/; known = those seen in the functions entered; lib = cbor-x and @peculiar/asn1-* points');
for (const s of rows)
  console.log(`RESULT fuzz target=${s.target} execs=${s.execs} execs_per_s=${Math.round(s.execsPerSecond)} coverage=${s.coverage} findings=${s.findings}`);
const totalFindings = rows.reduce((n, s) => n + s.findings, 0);
console.log(`RESULT fuzz targets=${rows.length} execs=${rows.reduce((n, s) => n + s.execs, 0)} findings=${totalFindings}`);

if (args.json !== undefined) {
  writeFileSync(
    args.json,
    JSON.stringify(
      {
        seed: args.seed,
        seconds: args.seconds,
        targets: rows,
        findings: results.flatMap((r) => r.findings.map(({ input: _input, ...f }) => f)),
      },
      null,
      2,
    ),
  );
}
process.exit(totalFindings > 0 ? 1 : 0);
