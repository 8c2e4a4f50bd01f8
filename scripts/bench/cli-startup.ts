/**
 * `npm run bench -- cli-startup`: how long `enclavekit verify DOC --json` takes as a whole process,
 * against `node -e 0` (Node's own start-up) measured in the same run. CI jobs verify one document per
 * process, so start-up is most of the cost: verifying blocky-1 is 3-4 ms of cryptography.
 *
 * Both run as users run them: `node bin/enclavekit.js` over the compiled dist/ (rebuilt first when a
 * source is newer than it). Runs are interleaved one by one, so machine noise hits both alike; the
 * figures are medians. `--version` is measured too (answered before anything is loaded).
 *
 * Target: ratio = verify / node <= 1.6.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, median } from './_stats.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'enclavekit.js');
const DOC = join(ROOT, 'test', 'vectors', 'nitro', 'blocky-1.cose');
const AT = '2024-09-07T15:00:00Z';
const ROUNDS = Number(process.env.CLI_STARTUP_ROUNDS ?? 25);

/** Newest modification time of the TypeScript sources the CLI is built from. */
function newestSource(): number {
  let newest = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of ['attestation', 'host', 'enclave', 'native']) walk(join(ROOT, d));
  return newest;
}

function ensureBuilt(): void {
  const built = join(ROOT, 'dist', 'host', 'cli', 'verify.js');
  if (existsSync(built) && statSync(built).mtimeMs >= newestSource()) return;
  console.log('  dist/ is missing or older than the sources: npm run build');
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
  // tsc still writes its output when it reports type errors; measure that, but say so.
  if (r.status !== 0) {
    if (!existsSync(built)) throw new Error('the build failed');
    console.log('  WARNING: the build reported errors; measuring what it emitted');
  }
}

/** Wall time of one process in ms; throws unless it exits as expected. */
function time(args: string[], check: (stdout: string, status: number | null) => boolean): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!check(r.stdout, r.status)) throw new Error(`unexpected outcome of node ${args.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  return ms;
}

export async function main(): Promise<void> {
  ensureBuilt();
  const verifyArgs = [BIN, 'verify', DOC, '--at', AT, '--json'];
  const verifyOk = (out: string, status: number | null) => status === 0 && (JSON.parse(out) as { valid?: unknown }).valid === true;
  console.log(`cli-startup: node bin/enclavekit.js verify blocky-1.cose --at ${AT} --json vs node -e 0, ${ROUNDS} rounds interleaved`);
  // Warm-up (file-system cache), not recorded.
  for (let i = 0; i < 2; i++) {
    time(['-e', '0'], (_o, s) => s === 0);
    time(verifyArgs, verifyOk);
  }
  const node: number[] = [];
  const verify: number[] = [];
  const version: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    node.push(time(['-e', '0'], (_o, s) => s === 0));
    verify.push(time(verifyArgs, verifyOk));
    version.push(time([BIN, '--version'], (o, s) => s === 0 && /^\d+\.\d+\.\d+/.test(o)));
  }
  const n = median(node);
  const v = median(verify);
  const ver = median(version);
  const ratio = v / n;
  console.log(`  node -e 0                  ${fmt(n)} ms`);
  console.log(`  enclavekit verify --json   ${fmt(v)} ms   (${fmt(ratio, 2)} x node; target <= 1.6)`);
  console.log(`  enclavekit --version       ${fmt(ver)} ms   (${fmt(ver / n, 2)} x node)`);
  console.log(`RESULT cli-startup verify_ms=${fmt(v)} node_ms=${fmt(n)} ratio=${fmt(ratio, 2)} version_ms=${fmt(ver)}`);
}
