/** The README's `verify` examples really run (through run(), in-process) with the exit codes it states. */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PassThrough, Readable } from 'node:stream';
import { run } from '../../host/cli/verify.js';
import type { CliIO } from '../../host/cli/io.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(ROOT + 'README.md', 'utf8');
const section = readme.split('<!-- section: verify -->')[1] ?? readme.slice(readme.indexOf('## Verifying attestation'));
const shell = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
const commands = shell.split('\n').filter((l) => l.includes('bin/enclavekit.js verify'));

function argvOf(line: string): { argv: string[]; stdinFile?: string } {
  const expanded = line.replace(/\$\(printf '00%\.0s' \$\(seq 48\)\)/g, '00'.repeat(48));
  const [left, right] = expanded.includes('|') ? expanded.split('|') : [undefined, expanded];
  const argv = right!.trim().split(/\s+/).slice(3); // drop "node bin/enclavekit.js verify"
  const stdinFile = left ? /(test\/vectors\/\S+)/.exec(left)?.[1] : undefined;
  return { argv: argv.map((a) => (a.startsWith('test/') ? ROOT + a : a)), stdinFile };
}

describe('README verify examples', () => {
  it('has the examples', () => {
    expect(commands.length).toBeGreaterThanOrEqual(5);
  });
  it.each(commands.map((c) => [c]))('%s', async (line) => {
    const { argv, stdinFile } = argvOf(line);
    const input = stdinFile ? Buffer.from(readFileSync(ROOT + stdinFile)).toString('base64') : '';
    const out = new PassThrough();
    const io: CliIO = { stdout: out, stderr: new PassThrough(), stdin: Readable.from([Buffer.from(input)]), env: {}, now: () => new Date() };
    const code = await run(argv, io);
    const invalid = line.includes('eternis-invalid') || line.includes('--pcr 4=');
    expect(code).toBe(invalid ? 1 : 0);
  });
});
