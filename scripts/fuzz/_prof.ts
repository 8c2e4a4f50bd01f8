import { Rng } from './rng.js';
import { mutate } from './mutate.js';
import { CoverageTracker } from './coverage.js';
import { isProjectFile } from './classify.js';
const t = (await import(`./targets/${process.argv[2] ?? 'nitro-parse'}.ts`)).default;
const c = await t.setup?.();
const seeds = await t.seeds(c);
const rng = new Rng(1);
const ctx = { format: t.format, maxLen: t.maxLen, donors: seeds, dict: [], dictText: [] };
const cov = new CoverageTracker((u) => (!u.startsWith('file://') ? undefined : isProjectFile(u) ? 'project' : /node_modules\/(cbor-x|@peculiar\/asn1-[a-z]+)\//.test(u) ? 'lib' : undefined));
const run = async (k: Uint8Array) => { try { await t.run(k, c); } catch {} };
cov.take();
let nondet = 0, novelFirst = 0;
const where = new Map<string, number>();
for (let i = 0; i < 300; i++) {
  const k = mutate(rng, seeds[i % seeds.length]!, ctx);
  cov.take(); await run(k); const a = cov.novel(cov.take()); if (a.length) novelFirst++; cov.commit(a);
  cov.take(); await run(k); const r2 = cov.take(); const b = cov.novel(r2);
  if (b.length) { nondet++; for (const sc of r2) for (const f of sc.functions) { const key = sc.url.split('/').slice(-2).join('/') + ' ' + f.functionName; where.set(key, (where.get(key) ?? 0) + 1); } cov.commit(b); }
}
console.log({ novelFirst, nondet, proj: cov.projectPoints, lib: cov.libPoints });
console.log([...where].sort((a, b) => b[1] - a[1]).slice(0, 15));
process.exit(0);
