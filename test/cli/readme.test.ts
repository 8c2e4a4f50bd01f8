/**
 * The README's command table agrees with the CLI: every command `enclavekit --help` lists has a row,
 * every row is a command, each row's flags appear in that command's `--help`, and each row's section
 * link points at a heading. Also: the README's examples of this commands run with the exit
 * status they state.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { run as simAttest } from '../../enclave/cli-sim-attest.js';
import { ROOT, cli } from './helpers.js';

const README = readFileSync(ROOT + 'README.md', 'utf8');

function section(title: RegExp): string {
  const start = README.search(title);
  if (start < 0) throw new Error(`README has no section ${title}`);
  const rest = README.slice(start + 1);
  const end = rest.search(/\n## /);
  return end < 0 ? rest : rest.slice(0, end);
}

interface Row {
  usage: string;
  path: string[];
  flags: string[];
  links: string[];
}

const table: Row[] = section(/^## The command line/m)
  .split('\n')
  .filter((l) => l.startsWith('| `enclavekit '))
  .map((l) => {
    const cells = l.split(' | ');
    const usage = /`([^`]+)`/.exec(cells[0]!)![1]!;
    const tokens = usage.split(/\s+/).slice(1);
    const path: string[] = [];
    for (const t of tokens) {
      if (!/^[a-z][a-z-]*$/.test(t)) break;
      path.push(t);
    }
    return { usage, path, flags: usage.match(/--[a-z][a-z-]*/g) ?? [], links: [...(cells.at(-1) ?? '').matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!) };
  });

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
const anchors = new Set(
  [...README.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
    m[1]!
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, '')
      .replace(/ /g, '-'),
  ),
);

/** `enclavekit <path> --help`, however that command is dispatched (bin/enclavekit.js). */
async function helpOf(path: string[]): Promise<{ code: number; text: string }> {
  if (path[0] === 'enclave') {
    // The worker is its own program; it writes to the process's stdout.
    return new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', ROOT + 'enclave/cli.ts', '--help'], { cwd: ROOT }, (err, stdout) => resolve({ code: err ? 1 : 0, text: String(stdout) }));
    });
  }
  if (path[0] === 'sim' && path[1] === 'attest') {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c) => (text += c));
    const code = await simAttest(['--help'], { stdout: out, stderr: new PassThrough(), now: () => new Date() } as Parameters<typeof simAttest>[1]);
    return { code, text };
  }
  const r = await cli([...path, '--help']);
  return { code: r.code, text: r.out };
}

describe('README command table vs enclavekit --help', () => {
  it('has the table', () => {
    expect(table.length).toBeGreaterThanOrEqual(10);
  });

  it('every command in `enclavekit --help` has a row, and every row is a command', async () => {
    const help = (await cli(['--help'])).out;
    const listed = [...help.split('commands:')[1]!.matchAll(/^ {2}([a-z][a-z-]*) /gm)].map((m) => m[1]!);
    expect(listed.length).toBeGreaterThan(5);
    const rowCommands = new Set(table.map((r) => r.path[0]!));
    for (const c of listed) expect(rowCommands, `README row for \`enclavekit ${c}\``).toContain(c);
    for (const c of rowCommands) expect(listed, `\`enclavekit ${c}\` in enclavekit --help`).toContain(c);
  });

  it.each(table.map((r) => [r.usage, r] as const))('%s: --help exits 0 and lists the row\'s flags', async (_u, row) => {
    const h = await helpOf(row.path);
    expect(h.code).toBe(0);
    for (const f of row.flags) expect(h.text, `${row.path.join(' ')} --help mentions ${f}`).toContain(f);
  });

  it('every section link points at a heading', () => {
    for (const r of table) {
      expect(r.links.length, r.usage).toBeGreaterThan(0);
      for (const a of r.links) expect(anchors, `#${a}`).toContain(a);
    }
  });
});

describe('README examples of the issue #11 commands run', () => {
  const bin = ROOT + 'bin/enclavekit.js';
  /** `node bin/enclavekit.js ...` lines of the README's sh blocks that start with `words`. */
  const examples = (words: string) =>
    [...README.matchAll(/```sh\n([\s\S]*?)```/g)]
      .flatMap((m) => m[1]!.split('\n'))
      .filter((l) => l.startsWith(`node bin/enclavekit.js ${words}`))
      .map((l) => l.replace(/\s+#.*$/, ''));

  function argv(line: string): string[] {
    const expanded = line.replace(/\$\(printf '(\w\w)%\.0s' \$\(seq (\d+)\)\)/g, (_m, b: string, n: string) => b.repeat(Number(n)));
    return expanded.split(/\s+/).slice(2).map((a) => (/^(test|README|package)/.test(a) ? ROOT + a : a));
  }

  it('sim image-id', async () => {
    const lines = examples('sim image-id');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const l of lines) expect((await cli(argv(l))).code, l).toBe(0);
  });

  it('verify: several FILEs (exit 1), --max-age/--public-key (exit 0), expired without --at (exit 1)', async () => {
    const lines = examples('verify').filter((l) => / --max-age | test\/vectors\/nitro\/blocky-1\.cose test\/vectors\/nitro\/blocky-2\.cose |blocky-1\.cose$/.test(l));
    expect(lines).toHaveLength(3);
    const codes = [];
    for (const l of lines) codes.push((await cli(argv(l), { now: new Date() })).code);
    expect(codes).toEqual([1, 0, 1]);
  });

  it('result verify on the committed fixture: two verify (exit 0), two do not (exit 1)', async () => {
    const lines = examples('result verify');
    expect(lines).toHaveLength(4);
    const codes = [];
    for (const l of lines) codes.push((await cli(argv(l))).code);
    expect(codes).toEqual([0, 0, 1, 1]);
  });

  it('enclavekit --version, from the bin without loading the build', async () => {
    const v = await new Promise<string>((resolve, reject) => execFile(process.execPath, [bin, '--version'], (e, out) => (e ? reject(e) : resolve(String(out)))));
    const version = (JSON.parse(readFileSync(ROOT + 'package.json', 'utf8')) as { version: string }).version;
    expect(v.trim()).toBe(version);
    const j = await new Promise<string>((resolve, reject) => execFile(process.execPath, [bin, '--version', '--json'], (e, out) => (e ? reject(e) : resolve(String(out)))));
    expect(JSON.parse(j)).toEqual({ name: 'enclavekit', version });
    expect((await cli(['--help'])).out).toContain('enclavekit --version');
  });
});
