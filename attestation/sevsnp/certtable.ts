/**
 * The extended-report certificate table (GHCB spec #56421, MSG_REPORT_REQ): what SNP_GET_EXT_REPORT
 * writes to `certs_address` and configfs-tsm returns as `auxblob`. An array of 24-byte entries
 * `{GUID[16], u32 offset, u32 length}` ended by an all-zero entry; offsets count from the start of the
 * blob. Host-supplied, so untrusted: the certificates found here are only hints that verify.ts still
 * chains to a pinned ARK.
 */
import { AttestationError } from '../errors.js';
import { abytes, isAllZero, toHex } from '../bytes.js';

export const CERT_TABLE_GUID = Object.freeze({
  VCEK: '63da758d-e664-4564-adc5-f4b93be8accd',
  VLEK: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
  /** Also used for the ASVK in a VLEK table. */
  ASK: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  ARK: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
  /** go-sev-guest's "extra platform info" entry (u32 size, u32 masked CPUID(1).EAX). */
  EXTRA_PLATFORM_INFO: 'ecae0c0f-9502-43b1-afa2-0ae2e0d565b6',
});

/** SEV_FW_BLOB_MAX_SIZE is a few pages; refuse larger tables before walking them. */
export const MAX_CERT_TABLE_BYTES = 1024 * 1024;
const MAX_ENTRIES = 64;

export interface SnpCertTable {
  readonly vcek?: Uint8Array;
  readonly vlek?: Uint8Array;
  /** The ASK GUID entry: an ASK in a VCEK table, an ASVK in a VLEK table. */
  readonly ask?: Uint8Array;
  readonly ark?: Uint8Array;
  /** CPUID(1).EAX from the extra-platform-info entry, if present. */
  readonly cpuidEax?: number;
  /** Entries with GUIDs this parser does not know, by GUID. */
  readonly other: ReadonlyMap<string, Uint8Array>;
}

function tableError(reason: string, message: string): AttestationError {
  return new AttestationError('ERR_SNP_CERT_TABLE_INVALID', `SEV-SNP certificate table: ${message}`, { reason });
}

function guidString(b: Uint8Array): string {
  const h = toHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const u32 = (b: Uint8Array, o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;

export function parseSnpCertTable(input: Uint8Array): SnpCertTable {
  abytes(input, 'certTable');
  if (input.length > MAX_CERT_TABLE_BYTES) throw tableError('size', `${input.length} bytes exceeds ${MAX_CERT_TABLE_BYTES}`);
  const b = input;
  const entries = new Map<string, Uint8Array>();
  let off = 0;
  for (let n = 0; ; n++) {
    if (off + 24 > b.length) throw tableError('unterminated', 'no all-zero terminator entry');
    const entry = b.subarray(off, off + 24);
    if (isAllZero(entry)) break;
    if (n >= MAX_ENTRIES) throw tableError('too_many_entries', `more than ${MAX_ENTRIES} entries`);
    const guid = guidString(entry.subarray(0, 16));
    const o = u32(entry, 16);
    const len = u32(entry, 20);
    if (len === 0) throw tableError('empty_entry', `entry ${guid} has length 0`);
    if (o > b.length || len > b.length - o)
      throw tableError('out_of_bounds', `entry ${guid} (offset ${o}, length ${len}) lies outside the ${b.length}-byte table`);
    if (entries.has(guid)) throw tableError('duplicate_guid', `entry ${guid} appears twice`);
    entries.set(guid, b.slice(o, o + len));
    off += 24;
  }
  const take = (g: string) => {
    const v = entries.get(g);
    entries.delete(g);
    return v;
  };
  const vcek = take(CERT_TABLE_GUID.VCEK);
  const vlek = take(CERT_TABLE_GUID.VLEK);
  const ask = take(CERT_TABLE_GUID.ASK);
  const ark = take(CERT_TABLE_GUID.ARK);
  const extra = take(CERT_TABLE_GUID.EXTRA_PLATFORM_INFO);
  let cpuidEax: number | undefined;
  if (extra !== undefined) {
    if (extra.length < 8 || u32(extra, 0) !== 8) throw tableError('extra_platform_info', 'extra platform info entry is malformed');
    cpuidEax = u32(extra, 4);
  }
  return Object.freeze({
    ...(vcek ? { vcek } : {}),
    ...(vlek ? { vlek } : {}),
    ...(ask ? { ask } : {}),
    ...(ark ? { ark } : {}),
    ...(cpuidEax !== undefined ? { cpuidEax } : {}),
    other: entries,
  });
}

function guidBytes(g: string): Uint8Array {
  const h = g.replace(/-/g, '');
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Build a table (for the simulator and tests): what a host would hand the guest. */
export function buildSnpCertTable(certs: {
  vcek?: Uint8Array;
  vlek?: Uint8Array;
  ask?: Uint8Array;
  ark?: Uint8Array;
  cpuidEax?: number;
}): Uint8Array {
  const list: [string, Uint8Array][] = [];
  if (certs.vcek) list.push([CERT_TABLE_GUID.VCEK, certs.vcek]);
  if (certs.vlek) list.push([CERT_TABLE_GUID.VLEK, certs.vlek]);
  if (certs.ask) list.push([CERT_TABLE_GUID.ASK, certs.ask]);
  if (certs.ark) list.push([CERT_TABLE_GUID.ARK, certs.ark]);
  if (certs.cpuidEax !== undefined) {
    const e = new Uint8Array(8);
    new DataView(e.buffer).setUint32(0, 8, true);
    new DataView(e.buffer).setUint32(4, certs.cpuidEax >>> 0, true);
    list.push([CERT_TABLE_GUID.EXTRA_PLATFORM_INFO, e]);
  }
  const header = 24 * (list.length + 1);
  let total = header;
  for (const [, c] of list) total += c.length;
  const out = new Uint8Array(total);
  let off = header;
  list.forEach(([g, c], i) => {
    out.set(guidBytes(g), i * 24);
    const dv = new DataView(out.buffer, i * 24 + 16, 8);
    dv.setUint32(0, off, true);
    dv.setUint32(4, c.length, true);
    out.set(c, off);
    off += c.length;
  });
  return out;
}
