/**
 * Issue #11: the README's command table matches `--help` of every command, its exit-status table is
 * exit.ts's mapping, and the onboarding shows how to create the KMS key.
 */
import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { main } from '../../host/cli/main.js';
import { run as simAttest } from '../../enclave/cli-sim-attest.js';
import { EXIT_BY_CODE, KMS_DENIED_REASONS, KMS_INPUT_REASONS } from '../../host/cli/exit.js';
import { testIO } from './helpers.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const readme = readFileSync(ROOT + 'README.md', 'utf8');
const cliSection = readme.slice(readme.indexOf('## The command line'), readme.indexOf('\n## ', readme.indexOf('## The command line') + 5));

/** The command table: first cell `enclavekit <command words> <flags and placeholders>`. */
const rows = cliSection
  .split('\n')
  .filter((l) => l.startsWith('| `enclavekit '))
  .map((l) => /^\| `([^`]+)`/.exec(l)![1]!);

/** `enclavekit sim kms --state DIR` -> ['sim', 'kms']: the words before the first flag or placeholder. */
function commandWords(cell: string): string[] {
  const words: string[] = [];
  for (const w of cell.split(/\s+/).slice(1)) {
    if (!/^[a-z][a-z-]*$/.test(w)) break;
    words.push(w);
  }
  return words;
}

async function helpOf(words: string[]): Promise<string> {
  if (words[0] === 'enclave')
    return execFileSync(process.execPath, ['--import', 'tsx', 'enclave/cli.ts', '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
  const t = testIO();
  const code = words[0] === 'sim' && words[1] === 'attest' ? await simAttest(['--help'], t) : await main([...words, '--help'], t);
  expect(code, `${words.join(' ')} --help`).toBe(0);
  return t.out();
}

const flagsOf = (text: string): string[] => [...new Set([...text.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)].map((m) => m[0]))];

describe('README command table', () => {
  it('lists every command of `enclavekit --help`, and nothing else', async () => {
    const t = testIO();
    expect(await main(['--help'], t)).toBe(0);
    const listed = [...t.out().matchAll(/^ {2}([a-z][a-z-]*) /gm)].map((m) => m[1]!);
    const inTable = new Set(rows.map((r) => commandWords(r)[0]!));
    for (const c of listed) expect(inTable.has(c), `README command table has no row for \`enclavekit ${c}\``).toBe(true);
    for (const c of inTable) expect(listed, `README lists \`enclavekit ${c}\`, which \`enclavekit --help\` does not`).toContain(c);
  });

  it.each(rows.map((r) => [r]))('`%s`: every flag in the row is one its --help documents', async (row) => {
    const help = await helpOf(commandWords(row));
    for (const flag of flagsOf(row)) expect(help, `${row}: ${flag} is not in --help`).toContain(flag);
  }, 30_000);

  it('every command with machine-readable output documents --json in its --help', async () => {
    for (const words of [['run'], ['encrypt'], ['policy'], ['audit', 'verify'], ['query', 'check'], ['demo'], ['sim', 'kms'], ['sim', 'attest'], ['verify']])
      expect(await helpOf(words), words.join(' ')).toContain('--json');
  });

  it('the flags of run, encrypt, query check, audit verify, demo and sim kms are all in the README', async () => {
    for (const words of [['run'], ['encrypt'], ['query', 'check'], ['audit', 'verify'], ['demo'], ['sim', 'kms']]) {
      const help = await helpOf(words);
      for (const flag of flagsOf(help).filter((f) => f !== '--help')) expect(readme, `${words.join(' ')} ${flag} is not documented in README`).toContain(flag);
    }
  });
});

describe('README exit-status table', () => {
  const section = readme.slice(readme.indexOf('### Exit status'), readme.indexOf('### Machine-readable output'));
  const row = (status: number) => section.split('\n').find((l) => l.startsWith(`| ${status} |`)) ?? '';

  it('lists each error code under the status exit.ts gives it', () => {
    for (const [code, exit] of Object.entries(EXIT_BY_CODE)) {
      const r = row(exit);
      const listed = r.includes(`\`${code}\``) || (code.startsWith('ERR_NITRO_') && r.includes('`ERR_NITRO_*`'));
      expect(listed, `${code} (exit ${exit}) is not in the README's row for ${exit}`).toBe(true);
      for (const other of [1, 2, 3].filter((s) => s !== exit)) expect(row(other), `${code} also listed under ${other}`).not.toContain(`\`${code}\`,`);
    }
  });

  it('names the KMS error names that are a verdict (1) and those that are input (2)', () => {
    for (const r of KMS_DENIED_REASONS) expect(row(1)).toContain(`\`${r}\``);
    for (const r of KMS_INPUT_REASONS) expect(row(2)).toContain(`\`${r}\``);
    expect(row(3)).toContain('`ThrottlingException`');
  });
});

describe('README onboarding', () => {
  it('shows how to create the KMS key (AWS CLI and SDK) where encrypt needs one', () => {
    expect(readme).not.toContain('as shown above');
    const create = readme.slice(readme.indexOf('#### Creating the KMS key'), readme.indexOf('enclavekit encrypt --in customers.ndjson'));
    expect(create).toContain('aws kms create-key --policy file://key-policy.json');
    expect(create).toContain('new CreateKeyCommand({');
    expect(create).toContain('enclavekit policy --pcr 0=');
    expect(create).toContain('the key created above');
  });
});
