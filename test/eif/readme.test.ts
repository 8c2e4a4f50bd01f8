/** The README's "Reference values" examples really run (in-process), with the outputs the vectors say. */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cli } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(ROOT + 'README.md', 'utf8');
const section = readme.split('<!-- section: reference values -->')[1] ?? '';
const shell = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
const commands = shell.split('\n').filter((l) => l.startsWith('node bin/enclavekit.js '));

/** Split a command line: whitespace-separated words, double quotes group. */
function words(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

describe('README reference values examples', () => {
  it('has the examples', () => {
    expect(commands.length).toBeGreaterThanOrEqual(5);
    for (const c of ['eif build', 'eif describe', 'policy --eif', 'snp measure', 'snp id-digest']) expect(commands.some((l) => l.includes(c)), c).toBe(true);
  });
  it('they run in order and exit 0', async () => {
    for (const line of commands) {
      const argv = words(line).slice(2).map((a) => (a.startsWith('test/') ? ROOT + a : a));
      const r = await cli(argv);
      expect(r.code, `${line}\n${r.out}${r.err}`).toBe(0);
      if (line.includes('snp measure')) expect(r.json().measurement).toBe('e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b');
      if (line.includes('snp id-digest')) expect(r.out.trim()).toBe('870b7e35c53f8a72d0d322f75ab2af8262792aaf6579622ce4131c3f21f289e77cb0560a5e3b90b3932e674ec709cb14');
      if (line.includes('eif describe')) expect(r.json()).toMatchObject({ ok: true, crcValid: true, signature: { present: false } });
    }
  });
});
