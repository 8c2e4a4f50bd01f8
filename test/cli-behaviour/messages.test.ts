/** Issue #11: messages say what to do, in the toolkit's words (parser text, errnos, CSV errors, lines). */
import { describe, it, expect } from 'vitest';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { datasetError, readDataset } from '../../host/dataset.js';
import { fileErrorMessage, parseArgsMessage } from '../../host/cli/io.js';
import type { ToolkitError } from '../../attestation/errors.js';

const parseError = (args: string[]): unknown => {
  try {
    parseArgs({ args, strict: true, allowPositionals: false, options: { out: { type: 'string' }, json: { type: 'boolean' } } });
  } catch (e) {
    return e;
  }
  throw new Error('expected a parse error');
};

async function readAll(text: string, format: 'ndjson' | 'csv', onInvalid?: (e: ToolkitError, raw: string, line: number) => void) {
  const out = [];
  for await (const r of readDataset(Readable.from([text]), { format, ...(onInvalid ? { onInvalid } : {}) })) out.push(r);
  return out;
}

describe('node:util parseArgs errors in our words', () => {
  it('unknown option, missing value, value on a boolean, unexpected argument', () => {
    expect(parseArgsMessage(parseError(['--foo']))).toBe('unknown option --foo');
    expect(parseArgsMessage(parseError(['-z']))).toBe('unknown option -z');
    expect(parseArgsMessage(parseError(['--out']))).toBe('--out needs a value');
    expect(parseArgsMessage(parseError(['--json=yes']))).toBe('--json takes no value');
    expect(parseArgsMessage(parseError(['stray']))).toBe('unexpected argument "stray"');
  });
});

describe('file errors name the flag and the path, once', () => {
  it('ENOENT, EACCES, EISDIR', () => {
    const e = (code: string) => Object.assign(new Error(`${code}: something, open '/x'`), { code, syscall: 'open', path: '/x' });
    expect(fileErrorMessage(e('ENOENT'), '/data/m.json', '--manifest')).toBe('--manifest: no such file: /data/m.json');
    expect(fileErrorMessage(e('EACCES'), '/data/m.json', '--manifest')).toBe('--manifest: permission denied: /data/m.json');
    expect(fileErrorMessage(e('EISDIR'), '/data', '--in')).toBe('--in: is a directory, not a file: /data');
    expect(fileErrorMessage(e('ENOENT'), '/x')).not.toMatch(/ENOENT/);
  });
});

describe('dataset messages', () => {
  it('a CSV row of the wrong width names both counts', async () => {
    await expect(readAll('a,b,c\n1,2,3\n4,5\n', 'csv')).rejects.toMatchObject({ code: 'ERR_DATASET_INVALID', reason: 'csv', message: 'line 3: 2 values, but the header has 3 columns' });
    await expect(readAll('a,b\n1,2,3\n', 'csv')).rejects.toMatchObject({ message: 'line 2: 3 values, but the header has 2 columns' });
  });

  it('an unclosed quote is said in words and still fails with onInvalid (it would swallow the rest of the file)', async () => {
    await expect(readAll('a,b\n1,2\n"x,3\n4,5\n', 'csv')).rejects.toMatchObject({ message: expect.stringMatching(/a quoted value is never closed/) });
    await expect(readAll('a,b\n1,2\n"x,3\n4,5\n', 'csv', () => {})).rejects.toMatchObject({ message: expect.stringMatching(/a quoted value is never closed/) });
  });

  it('no "line 0": an error about the whole file has no line', () => {
    expect(datasetError(0, 'field_absent', 'no record has the field(s) "x"').message).toBe('no record has the field(s) "x"');
    expect(datasetError(4, 'json', 'not valid JSON').message).toBe('line 4: not valid JSON');
  });

  it('onInvalid: NDJSON and CSV records that cannot be read are reported with their line and text, the rest is read', async () => {
    const seen: [string, string, number][] = [];
    const recs = await readAll('{"id":1}\nnot json\n[1]\n{"id":2}\n', 'ndjson', (e, raw, line) => seen.push([e.reason!, raw, line]));
    expect(recs.map((r) => r.record)).toEqual([{ id: 1 }, { id: 2 }]);
    expect(seen).toEqual([['json', 'not json', 2], ['record', '[1]', 3]]);
    const csvSeen: [string, string, number][] = [];
    const rows = await readAll('id,v\n1,a\n2\n3,c\n', 'csv', (e, raw, line) => csvSeen.push([e.message, raw, line]));
    expect(rows.map((r) => r.record)).toEqual([{ id: '1', v: 'a' }, { id: '3', v: 'c' }]);
    expect(csvSeen).toEqual([['line 3: 1 value, but the header has 2 columns', '2\n', 3]]);
  });
});
