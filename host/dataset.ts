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
}

export interface DatasetRecord {
  record: Record<string, unknown>;
  /** 1-based line of the record (NDJSON: its line; CSV: the line where it ends, for quoted multi-line cells). */
  line: number;
}

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

export function datasetError(line: number, reason: string, message: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_DATASET_INVALID', `line ${line}: ${message}`, cause === undefined ? { reason } : { reason, cause });
}

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
  if (opts.format === 'ndjson') return readNdjson(open(input), max);
  if (opts.format === 'csv') return readCsv(open(input), max, opts.nest ?? true);
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

async function* readNdjson(stream: Readable, max: number): AsyncGenerator<DatasetRecord> {
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
        const r = parseLine(bytes, line);
        if (r) yield { record: r, line };
        line++;
        start = nl + 1;
      }
    }
    if (partLen > 0) {
      const r = parseLine(Buffer.concat(parts), line);
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

async function* readCsv(stream: Readable, max: number, nest: boolean): AsyncGenerator<DatasetRecord> {
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
  });
  stream.on('error', (e) => parser.destroy(e));
  stream.pipe(parser);
  try {
    for await (const item of parser as AsyncIterable<{ record: Record<string, unknown>; info: { lines: number } }>) {
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
  } catch (e) {
    if (e instanceof ToolkitError) throw e;
    const err = e as { code?: string; lines?: number; message?: string };
    if (typeof err.code === 'string' && err.code.startsWith('CSV_')) {
      const reason = err.code === 'CSV_MAX_RECORD_SIZE' ? 'line_too_long' : 'csv';
      throw datasetError(err.lines ?? 0, reason, `CSV: ${err.code}`, e);
    }
    throw e;
  } finally {
    stream.unpipe(parser);
    stream.destroy();
  }
}
