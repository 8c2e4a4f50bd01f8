/**
 * File access for the image tools: a bounded random-access `ByteSource` over a regular file, chunked
 * streaming of a file, Node's SHA-384 and CRC-32 for the pure code in attestation/eif.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import type { ByteSource, HashFactory, Crc32Fn } from '../../attestation/eif/index.js';
import { UsageError } from '../cli/io.js';

export const nodeSha384: HashFactory = () => createHash('sha384');
export const nodeCrc32: Crc32Fn = (data, previous = 0) => zlibCrc32(data, previous);

/** A regular file opened for random reads. `close()` when done. */
export class FileSource implements ByteSource {
  readonly size: number;
  readonly #fd: number;
  constructor(
    readonly path: string,
    label = path,
  ) {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UsageError(`${label}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
    }
    const st = fstatSync(fd);
    if (!st.isFile()) {
      closeSync(fd);
      throw new UsageError(`${label} is not a regular file`);
    }
    this.#fd = fd;
    this.size = st.size;
  }

  read(offset: number, length: number): Uint8Array {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size)
      throw new RangeError(`read of ${length} bytes at ${offset} is outside ${this.path} (${this.size} bytes)`);
    const out = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.#fd, out, got, length - got, offset + got);
      if (n === 0) throw new UsageError(`${this.path} shrank while it was being read`);
      got += n;
    }
    return out;
  }

  /** Call `fn` on each chunk of [offset, offset + length). */
  forEachChunk(offset: number, length: number, fn: (chunk: Uint8Array) => void, chunk = 1 << 20): void {
    for (let at = 0; at < length; at += chunk) fn(this.read(offset + at, Math.min(chunk, length - at)));
  }

  close(): void {
    closeSync(this.#fd);
  }
}

/** Open, use, close. */
export function withFile<T>(path: string, label: string, fn: (f: FileSource) => T): T {
  const f = new FileSource(path, label);
  try {
    return fn(f);
  } finally {
    f.close();
  }
}
