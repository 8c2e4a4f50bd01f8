/**
 * `npm run bench -- NAME`: runs scripts/bench/NAME.ts. Each benchmark prints readable figures and,
 * last, one `RESULT NAME key=value...` line with ratios against a baseline measured in the same run.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const dir = fileURLToPath(new URL('./bench/', import.meta.url));
const available = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();
const names = process.argv.slice(2);
if (names.length === 0) {
  console.log(`usage: npm run bench -- <name>...\navailable: ${available.join(', ')}`);
  process.exit(2);
}
for (const name of names) {
  if (!available.includes(name)) {
    console.error(`unknown benchmark "${name}"; available: ${available.join(', ')}`);
    process.exit(2);
  }
  const mod = (await import(`./bench/${name}.ts`)) as { main: () => Promise<void> };
  await mod.main();
}
