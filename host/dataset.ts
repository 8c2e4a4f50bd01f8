/**
 * Streaming dataset readers: NDJSON and CSV in, plain-object records out, one at a time, in constant
 * memory. Errors are `ERR_DATASET_INVALID` naming the 1-based line; a line (or CSV record) longer than
 * `maxLineBytes` is refused before it is buffered further.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';
import { ToolkitError } from '../attestation/errors.js';

export type DatasetFormat = 'ndjson' | 'csv';

export interface ReadDatasetOptions {
  format: DatasetFormat;
  /** Longest accepted line (NDJSON) or record (CSV), in bytes. Default 1 MiB. */
  maxLineBytes?: number;
  /**
   * CSV only: turn a dotted header `address.city` into a nested member, so CSV records have the
   * same shape as NDJSON ones and a field path means the same in both. Default true: that is how
   * `encrypt`, `run` and the enclave read CSV (false gives flat rows, header names as keys).
   */
  nest?: boolean;
  /**
   * Skip a record that cannot be read and report it here instead of failing: NDJSON lines that are
   * not UTF-8, not JSON or not an object; CSV rows whose value count differs from the header's.
   * `raw` is the record's original text (it may hold plaintext: treat it as the input itself). Errors
   * of the file's structure (an overlong line, a bad header, an unclosed quote) still fail.
   */
  onInvalid?: (error: ToolkitError, raw: string, line: number) => void;
}

export interface DatasetRecord {
  record: Record<string, unknown>;
  /** 1-based line of the record (NDJSON: its line; CSV: the line where it ends, for quoted multi-line cells). */
  line: number;
}

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

/** `line N: message`; a line of 0 or less means "not one line" (the whole file): no prefix then. */
export function datasetError(line: number, reason: string, message: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_DATASET_INVALID', line > 0 ? `line ${line}: ${message}` : message, cause === undefined ? { reason } : { reason, cause });
}

/** csv-parse's error codes in our words (its own messages may quote a character of the data). */
function csvErrorText(err: { code: string; record?: unknown; columns?: unknown }): string {
  switch (err.code) {
    case 'CSV_RECORD_INCONSISTENT_COLUMNS':
    case 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH': {
      const got = Array.isArray(err.record) ? err.record.length : undefined;
      const want = Array.isArray(err.columns) ? err.columns.length : undefined;
      return got !== undefined && want !== undefined
        ? `${got} value${got === 1 ? '' : 's'}, but the header has ${want} column${want === 1 ? '' : 's'}`
        : 'the number of values differs from the header';
    }
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'a quoted value is never closed (a " without its closing ")';
    case 'CSV_INVALID_CLOSING_QUOTE':
      return 'a closing quote is followed by something other than a delimiter or the end of the line';
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return 'characters after a closing quote';
    case 'CSV_MAX_RECORD_SIZE':
      return 'record longer than the maximum record size';
    default:
      return `CSV: ${err.code}`;
  }
}
const CSV_RECORD_ERRORS = new Set(['CSV_RECORD_INCONSISTENT_COLUMNS', 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH']);

/** `ndjson` for .ndjson/.jsonl/.json, `csv` for .csv, else undefined. */
export function detectFormat(path: string): DatasetFormat | undefined {
  const p = path.toLowerCase();
  if (p.endsWith('.ndjson') || p.endsWith('.jsonl') || p.endsWith('.json')) return 'ndjson';
  if (p.endsWith('.csv')) return 'csv';
  return undefined;
}

function open(input: Readable | string): Readable {
  return typeof input === 'string' ? createReadStream(input, { highWaterMark: 256 * 1024 }) : input;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Records of a dataset, in order. */
export function readDataset(input: Readable | string, opts: ReadDatasetOptions): AsyncGenerator<DatasetRecord> {
  const max = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  if (opts.format === 'ndjson') return readNdjson(open(input), max, opts.onInvalid);
  if (opts.format === 'csv') return readCsv(open(input), max, opts.nest ?? true, opts.onInvalid);
  throw new TypeError('"format" expected ndjson or csv');
}

/** The same records in arrays of up to `size`, for batching onto the wire. */
export async function* readDatasetBatches(input: Readable | string, opts: ReadDatasetOptions & { batchSize?: number }): AsyncGenerator<Record<string, unknown>[]> {
  const size = opts.batchSize ?? 1000;
  let batch: Record<string, unknown>[] = [];
  for await (const { record } of readDataset(input, opts)) {
    batch.push(record);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function parseLine(bytes: Uint8Array, line: number): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch (e) {
    throw datasetError(line, 'utf8', 'not valid UTF-8', e);
  }
  if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.endsWith('\r')) text = text.slice(0, -1);
  if (text.trim().length === 0) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw datasetError(line, 'json', 'not valid JSON', e);
  }
  if (!isPlainObject(v)) throw datasetError(line, 'record', 'a record must be a JSON object');
  return v;
}

/** parseLine, or (with `onInvalid`) report a record-level failure and skip the line. */
function parseOrSkip(bytes: Uint8Array, line: number, onInvalid: ReadDatasetOptions['onInvalid']): Record<string, unknown> | undefined {
  if (!onInvalid) return parseLine(bytes, line);
  try {
    return parseLine(bytes, line);
  } catch (e) {
    if (!(e instanceof ToolkitError)) throw e;
    onInvalid(e, Buffer.from(bytes).toString('utf8'), line);
    return undefined;
  }
}

async function* readNdjson(stream: Readable, max: number, onInvalid?: ReadDatasetOptions['onInvalid']): AsyncGenerator<DatasetRecord> {
  let parts: Buffer[] = [];
  let partLen = 0;
  let line = 1;
  try {
    for await (const c of stream) {
      const chunk: Buffer = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, start);
        if (nl < 0) {
          const rest = chunk.subarray(start);
          partLen += rest.length;
          if (partLen > max) throw datasetError(line, 'line_too_long', `line longer than ${max} bytes`);
          if (rest.length > 0) parts.push(rest);
          break;
        }
        let bytes: Uint8Array = chunk.subarray(start, nl);
        if (partLen > 0) {
          bytes = Buffer.concat([...parts, bytes]);
          parts = [];
          partLen = 0;
        }
        if (bytes.length > max) throw datasetError(line, 'line_too_long', `line longer than ${max} bytes`);
        const r = parseOrSkip(bytes, line, onInvalid);
        if (r) yield { record: r, line };
        line++;
        start = nl + 1;
      }
    }
    if (partLen > 0) {
      const r = parseOrSkip(Buffer.concat(parts), line, onInvalid);
      if (r) yield { record: r, line };
    }
  } finally {
    stream.destroy();
  }
}

/** A flat CSV row as a record: a dotted header `address.city` is the nested member address -> city. */
export function nestRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    if (!k.includes('.')) {
      out[k] = v;
      continue;
    }
    const segs = k.split('.');
    let cur = out;
    for (let i = 0; i < segs.length - 1; i++) {
      const s = segs[i]!;
      const next = cur[s];
      if (next === undefined) cur = cur[s] = {} as Record<string, unknown>;
      else if (isPlainObject(next)) cur = next;
      else throw new TypeError(`column "${k}" collides with column "${segs.slice(0, i + 1).join('.')}"`);
    }
    cur[segs[segs.length - 1]!] = v;
  }
  return out;
}

async function* readCsv(stream: Readable, max: number, nest: boolean, onInvalid?: ReadDatasetOptions['onInvalid']): AsyncGenerator<DatasetRecord> {
  const parser = parseCsv({
    bom: true,
    columns: (header: string[]) => {
      const seen = new Set<string>();
      for (const h of header) {
        if (h.length === 0 || h.length > 520) throw datasetError(1, 'header', 'empty or overlong column name');
        if (seen.has(h)) throw datasetError(1, 'header', `duplicate column "${h}"`);
        if (h.split('.').some((s) => FORBIDDEN.has(s) || s.length === 0)) throw datasetError(1, 'header', `column name "${h}" is not allowed`);
        seen.add(h);
      }
      return header;
    },
    max_record_size: max,
    skip_empty_lines: true,
    info: true,
    ...(onInvalid ? { skip_records_with_error: true, raw: true } : {}),
  });
  // With onInvalid, csv-parse skips a bad record and says so here; a row of the wrong width is reported,
  // anything else (an unclosed quote swallows the rest of the file) still fails the read.
  const skipped: { error: ToolkitError; raw: string; line: number; fatal: boolean }[] = [];
  if (onInvalid)
    parser.on('skip', (e: { code?: string; lines?: number; raw?: string; record?: unknown; columns?: unknown }) => {
      const code = typeof e.code === 'string' ? e.code : 'CSV_ERROR';
      const fatal = !CSV_RECORD_ERRORS.has(code);
      skipped.push({ error: datasetError(e.lines ?? 0, code === 'CSV_MAX_RECORD_SIZE' ? 'line_too_long' : 'csv', csvErrorText({ ...e, code }), e), raw: typeof e.raw === 'string' ? e.raw : '', line: e.lines ?? 0, fatal });
    });
  const drain = (): void => {
    while (skipped.length > 0) {
      const s = skipped.shift()!;
      if (s.fatal) throw s.error;
      onInvalid!(s.error, s.raw, s.line);
    }
  };
  stream.on('error', (e) => parser.destroy(e));
  stream.pipe(parser);
  try {
    for await (const item of parser as AsyncIterable<{ record: Record<string, unknown>; info: { lines: number } }>) {
      drain();
      const line = item.info.lines;
      let record = item.record;
      if (nest) {
        try {
          record = nestRow(record);
        } catch (e) {
          throw datasetError(line, 'header', (e as Error).message);
        }
      }
      yield { record, line };
    }
    drain();
  } catch (e) {
    if (e instanceof ToolkitError) throw e;
    const err = e as { code?: string; lines?: number; message?: string; record?: unknown; columns?: unknown };
    if (typeof err.code === 'string' && err.code.startsWith('CSV_')) {
      const reason = err.code === 'CSV_MAX_RECORD_SIZE' ? 'line_too_long' : 'csv';
      throw datasetError(err.lines ?? 0, reason, csvErrorText({ ...err, code: err.code }), e);
    }
    throw e;
  } finally {
    stream.unpipe(parser);
    stream.destroy();
  }
}
