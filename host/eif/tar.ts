/**
 * A strict, random-access tar index: the entries of a tar archive lying at [base, base + length) of a
 * ByteSource, each with the absolute offset of its data, so that a layer inside an image archive can
 * be read in place without extracting or buffering it (stream parsers such as tar-stream cannot give
 * offsets). Formats: POSIX ustar, pax extended headers (path, linkpath, size, mtime, uid, gid), GNU
 * long names (L/K) and base-256 numbers, v7. Every header checksum and length is checked; the reader
 * allocates nothing from a length it has not checked against the archive. Errors: ERR_IMAGE_INVALID.
 */
import { ToolkitError } from '../../attestation/errors.js';
import type { ByteSource } from '../../attestation/eif/index.js';

export type TarType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarEntry {
  name: string;
  type: TarType;
  /** Permission and set-id/sticky bits (mode & 07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch, rounded down. */
  mtime: number;
  size: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Absolute offset of the data in the source. */
  dataOffset: number;
}

export function imageError(reason: string, message: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_IMAGE_INVALID', message, { reason, ...(cause !== undefined ? { cause } : {}) });
}

const BLOCK = 512;
const MAX_META = 1 << 20; // pax / GNU long-name records
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A NUL-terminated field as UTF-8. Names that are not UTF-8 are refused (they could not be written back byte for byte). */
function str(b: Uint8Array, at: number, len: number, where = 'tar'): string {
  let end = at;
  while (end < at + len && b[end] !== 0) end++;
  try {
    return utf8.decode(b.subarray(at, end));
  } catch (cause) {
    throw imageError('tar_path_encoding', `${where}: a path is not UTF-8`, cause);
  }
}

function num(b: Uint8Array, at: number, len: number, what: string, where: string): number {
  if (b[at]! & 0x80) {
    // GNU base-256: big-endian two's complement, first byte's top bit set.
    if (b[at]! & 0x40) throw imageError('tar_header', `${where}: negative base-256 ${what}`);
    let v = b[at]! & 0x3f;
    for (let i = 1; i < len; i++) {
      v = v * 256 + b[at + i]!;
      if (v > Number.MAX_SAFE_INTEGER) throw imageError('tar_header', `${where}: ${what} too large`);
    }
    return v;
  }
  const s = latin1.decode(b.subarray(at, at + len)).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw imageError('tar_header', `${where}: ${what} is not octal: ${JSON.stringify(s.slice(0, 20))}`);
  const v = parseInt(s, 8);
  if (!Number.isSafeInteger(v)) throw imageError('tar_header', `${where}: ${what} too large`);
  return v;
}

function parsePax(data: Uint8Array, where: string): Map<string, string> {
  const out = new Map<string, string>();
  let p = 0;
  while (p < data.length) {
    let q = p;
    while (q < data.length && data[q] !== 0x20) q++;
    const lenStr = latin1.decode(data.subarray(p, q));
    const len = Number(lenStr);
    if (!/^[1-9][0-9]*$/.test(lenStr) || len > data.length - p || data[p + len - 1] !== 0x0a || q + 1 >= p + len)
      throw imageError('tar_pax', `${where}: malformed pax record`);
    const rec = data.subarray(q + 1, p + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw imageError('tar_pax', `${where}: pax record without key`);
    const key = latin1.decode(rec.subarray(0, eq));
    let value: string;
    try {
      value = utf8.decode(rec.subarray(eq + 1));
    } catch (cause) {
      // Only path-like records must be text; xattr values (SCHILY.xattr.*) are binary and unused here.
      if (key === 'path' || key === 'linkpath') throw imageError('tar_path_encoding', `${where}: pax ${key} is not UTF-8`, cause);
      value = '';
    }
    out.set(key, value);
    p += len;
  }
  return out;
}

const TYPES: Record<string, TarType> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo' };

/** Index a tar archive. `maxEntries` bounds the index (default one million). */
export function readTar(src: ByteSource, base = 0, length = src.size - base, label = 'tar', maxEntries = 1_000_000): TarEntry[] {
  const end = base + length;
  if (!Number.isSafeInteger(base) || !Number.isSafeInteger(length) || base < 0 || length < 0 || end > src.size) throw new RangeError('tar region outside the source');
  const entries: TarEntry[] = [];
  let pos = base;
  let pax: Map<string, string> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    if (end - pos < BLOCK) {
      if (pos === end && entries.length === 0 && pax === undefined) return entries; // empty archive
      if (pos === end) throw imageError('tar_truncated', `${label}: ends without the end-of-archive block`);
      throw imageError('tar_truncated', `${label}: truncated header at offset ${pos - base}`);
    }
    const h = src.read(pos, BLOCK);
    const where = `${label} @${pos - base}`;
    if (h.every((x) => x === 0)) {
      if (pax !== undefined || longName !== undefined || longLink !== undefined) throw imageError('tar_truncated', `${where}: extended header without an entry`);
      return entries;
    }
    let unsigned = 0;
    let signed = 0;
    for (let i = 0; i < BLOCK; i++) {
      const c = i >= 148 && i < 156 ? 0x20 : h[i]!;
      unsigned += c;
      signed += c > 127 ? c - 256 : c;
    }
    const stored = num(h, 148, 8, 'checksum', where);
    if (stored !== unsigned && stored !== signed) throw imageError('tar_checksum', `${where}: header checksum mismatch`);
    const typeflag = String.fromCharCode(h[156]!);
    const ustar = latin1.decode(h.subarray(257, 263)) === 'ustar\0';
    let size = num(h, 124, 12, 'size', where);
    if (pax?.has('size')) {
      const s = pax.get('size')!;
      if (!/^[0-9]+$/.test(s) || !Number.isSafeInteger(Number(s))) throw imageError('tar_pax', `${where}: bad pax size`);
      size = Number(s);
    }
    const dataOffset = pos + BLOCK;
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (size > end - dataOffset || padded > end - dataOffset) throw imageError('tar_truncated', `${where}: entry data (${size} bytes) runs past the end of the archive`);
    pos = dataOffset + padded;

    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > MAX_META) throw imageError('tar_header', `${where}: extended header of ${size} bytes`);
      const data = src.read(dataOffset, size);
      if (typeflag === 'x') pax = new Map([...(pax ?? []), ...parsePax(data, where)]);
      else if (typeflag === 'g') parsePax(data, where); // global records: validated, not applied
      else {
        let n = data.length;
        while (n > 0 && data[n - 1] === 0) n--;
        const v = str(data, 0, n, where);
        if (typeflag === 'L') longName = v;
        else longLink = v;
      }
      continue;
    }
    const type = TYPES[typeflag];
    if (type === undefined) throw imageError('tar_type', `${where}: unsupported entry type ${JSON.stringify(typeflag)}`);
    let name = str(h, 0, 100, where);
    if (ustar) {
      const prefix = str(h, 345, 155, where);
      if (prefix) name = `${prefix}/${name}`;
    }
    if (longName !== undefined) name = longName;
    if (pax?.has('path')) name = pax.get('path')!;
    let linkname = str(h, 157, 100, where);
    if (longLink !== undefined) linkname = longLink;
    if (pax?.has('linkpath')) linkname = pax.get('linkpath')!;
    let uid = num(h, 108, 8, 'uid', where);
    let gid = num(h, 116, 8, 'gid', where);
    let mtime = num(h, 136, 12, 'mtime', where);
    for (const [k, set] of [['uid', (v: number) => (uid = v)], ['gid', (v: number) => (gid = v)]] as const) {
      const s = pax?.get(k);
      if (s === undefined) continue;
      if (!/^[0-9]+$/.test(s) || !Number.isSafeInteger(Number(s))) throw imageError('tar_pax', `${where}: bad pax ${k}`);
      set(Number(s));
    }
    const pm = pax?.get('mtime');
    if (pm !== undefined) {
      if (!/^-?[0-9]+(\.[0-9]+)?$/.test(pm)) throw imageError('tar_pax', `${where}: bad pax mtime`);
      mtime = Math.floor(Number(pm));
    }
    pax = undefined;
    longName = undefined;
    longLink = undefined;
    if (entries.length >= maxEntries) throw imageError('tar_entries', `${label}: more than ${maxEntries} entries`);
    entries.push({
      name,
      type,
      mode: num(h, 100, 8, 'mode', where) & 0o7777,
      uid,
      gid,
      mtime,
      size: type === 'file' ? size : 0,
      linkname,
      devmajor: type === 'char' || type === 'block' ? num(h, 329, 8, 'devmajor', where) : 0,
      devminor: type === 'char' || type === 'block' ? num(h, 337, 8, 'devminor', where) : 0,
      dataOffset,
    });
  }
}

/**
 * A tar member path as docker applies it (filepath.Clean of a relative name): no empty or "."
 * components; "" for the archive root. A ".." component is refused.
 */
export function cleanTarPath(name: string, label: string): string {
  if (name.length > 4096) throw imageError('tar_path', `${label}: a path longer than 4096 characters (Linux PATH_MAX)`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw imageError('tar_path', `${label}: path ${JSON.stringify(name.slice(0, 200))} leaves the archive`);
  if (name.includes('\0')) throw imageError('tar_path', `${label}: NUL in a path`);
  return parts.join('/');
}
