/** The README's SEV-SNP `verify` examples really run (in-process) with the exit codes it states. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PassThrough, Readable } from 'node:stream';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';
import { parseSnpPolicy } from '../../attestation/sevsnp/policy.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(ROOT + 'README.md', 'utf8');
const start = readme.indexOf('## AMD SEV-SNP: `enclavekit verify REPORT');
const section = readme.slice(start, readme.indexOf('\n## ', start + 10));
const shell = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
const commands = shell.split('\n').filter((l) => l.startsWith('node bin/enclavekit.js verify'));
// The prose under the block states these outcomes, in order.
const expected = [0, 0, 0, 1, 1, 0, 0, 1];

describe('README SEV-SNP examples', () => {
  it('has the section and the examples', () => {
    expect(start).toBeGreaterThan(0);
    expect(commands.length).toBe(expected.length);
  });
  it.each(commands.map((c, i) => [c, expected[i]!] as const))('%s -> exit %d', async (line, want) => {
    const argv = line.split(/\s+/).slice(2).map((a) => (a.startsWith('test/') ? ROOT + a : a));
    const out = new PassThrough();
    const io: CliIO = { stdout: out, stderr: new PassThrough(), stdin: Readable.from([]), env: {}, now: () => new Date() };
    expect(await main(argv, io)).toBe(want);
  });
  it('the policy schema example parses once the placeholders are filled', () => {
    const json = /```json\n([\s\S]*?)```/.exec(section)![1]!
      .replace(/"<48-byte hex>"/g, `"${'00'.repeat(48)}"`)
      .replace(/"<another accepted value>"/g, `"${'11'.repeat(48)}"`)
      .replace(/"<1\.\.64-byte hex[^"]*>"/g, `"${'00'.repeat(32)}"`)
      .replace(/"<32-byte hex>"/g, `"${'00'.repeat(32)}"`)
      .replace(/"<16-byte hex>"/g, `"${'00'.repeat(16)}"`)
      .replace(/"<64-byte hex>"/g, `"${'00'.repeat(64)}"`);
    expect(() => parseSnpPolicy(JSON.parse(json))).not.toThrow();
  });
});
