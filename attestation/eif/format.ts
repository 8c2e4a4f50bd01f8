/**
 * The EIF (Nitro Enclave Image Format) byte layout: the 548-byte header, the 12-byte section header,
 * and the layout AWS's builder writes (kernel, cmdline, metadata, ramdisk..., signature). Everything is
 * big-endian. See FORMAT.md beside this file for the sources.
 */
import { AttestationError } from '../errors.js';

export const EIF_MAGIC = Uint8Array.of(0x2e, 0x65, 0x69, 0x66); // ".eif"
export const EIF_HEADER_SIZE = 548;
export const EIF_SECTION_HEADER_SIZE = 12;
export const EIF_MAX_SECTIONS = 32;
/** The version AWS's builder writes since the metadata section was added. */
export const EIF_CURRENT_VERSION = 4;
/** Header flag bit 0: the image is for aarch64 (clear: x86_64). No other bit is defined. */
export const EIF_FLAG_ARM64 = 0x1;
/** Offset of `eif_crc32`, the last header field; the CRC covers everything except these 4 bytes. */
export const EIF_CRC_OFFSET = EIF_HEADER_SIZE - 4;
/** AWS's builder defaults: 1 GiB and 2 vCPUs (`EifBuilder::new`). */
export const EIF_DEFAULT_MEMORY = 1024 * 1024 * 1024;
export const EIF_DEFAULT_CPUS = 2;

export const SECTION_TYPES = ['invalid', 'kernel', 'cmdline', 'ramdisk', 'signature', 'metadata'] as const;
export type EifSectionName = Exclude<(typeof SECTION_TYPES)[number], 'invalid'>;
export const SECTION_TYPE: Readonly<Record<EifSectionName, number>> = { kernel: 1, cmdline: 2, ramdisk: 3, signature: 4, metadata: 5 };

export type EifArch = 'x86_64' | 'aarch64';

export interface EifHeader {
  version: number;
  flags: number;
  /** Bytes; a JS number (an EIF whose value needs more than 53 bits is refused). */
  defaultMemory: number;
  defaultCpus: number;
  numSections: number;
  /** `num_sections` entries each: offset of the section *header*, size of the section *data*. */
  sectionOffsets: number[];
  sectionSizes: number[];
  crc32: number;
}

export function invalid(reason: string, message: string, cause?: unknown): AttestationError {
  return new AttestationError('ERR_EIF_INVALID', `not a valid EIF: ${message}`, { reason, ...(cause !== undefined ? { cause } : {}) });
}

function u64(view: DataView, at: number, what: string): number {
  const v = view.getBigUint64(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid('u64_range', `${what} is ${v}, larger than this reader handles (2^53 - 1)`);
  return Number(v);
}

/**
 * Decode the 548-byte header. Checks the magic and the ranges of every field; what the header says
 * about the sections is checked against the file by `describeEif`.
 */
export function decodeEifHeader(b: Uint8Array): EifHeader {
  if (b.length !== EIF_HEADER_SIZE) throw invalid('header_size', `header is ${b.length} bytes, expected ${EIF_HEADER_SIZE}`);
  for (let i = 0; i < 4; i++) if (b[i] !== EIF_MAGIC[i]) throw invalid('magic', 'the file does not start with ".eif"');
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const version = v.getUint16(4);
  const flags = v.getUint16(6);
  const defaultMemory = u64(v, 8, 'default_mem');
  const defaultCpus = u64(v, 16, 'default_cpus');
  const reserved = v.getUint16(24);
  const numSections = v.getUint16(26);
  if (reserved !== 0) throw invalid('reserved', `reserved header field (offset 24) is ${reserved}, expected 0`);
  if (numSections > EIF_MAX_SECTIONS) throw invalid('num_sections', `num_sections is ${numSections}, at most ${EIF_MAX_SECTIONS}`);
  const sectionOffsets: number[] = [];
  const sectionSizes: number[] = [];
  for (let i = 0; i < EIF_MAX_SECTIONS; i++) {
    const off = v.getBigUint64(28 + 8 * i);
    const size = v.getBigUint64(28 + 8 * EIF_MAX_SECTIONS + 8 * i);
    if (i >= numSections) {
      if (off !== 0n || size !== 0n) throw invalid('section_table', `section table entry ${i} is set but num_sections is ${numSections}`);
      continue;
    }
    sectionOffsets.push(u64(v, 28 + 8 * i, `section_offsets[${i}]`));
    sectionSizes.push(u64(v, 28 + 8 * EIF_MAX_SECTIONS + 8 * i, `section_sizes[${i}]`));
  }
  const unused = v.getUint32(540);
  if (unused !== 0) throw invalid('reserved', `unused header field (offset 540) is ${unused}, expected 0`);
  return { version, flags, defaultMemory, defaultCpus, numSections, sectionOffsets, sectionSizes, crc32: v.getUint32(544) };
}

/** Encode a header. `crc32` is written as given (0 while the CRC is being computed). */
export function encodeEifHeader(h: EifHeader): Uint8Array {
  if (h.numSections !== h.sectionOffsets.length || h.numSections !== h.sectionSizes.length || h.numSections > EIF_MAX_SECTIONS)
    throw new RangeError('EIF header: num_sections must equal the number of offsets and sizes, at most 32');
  const b = new Uint8Array(EIF_HEADER_SIZE);
  const v = new DataView(b.buffer);
  b.set(EIF_MAGIC, 0);
  v.setUint16(4, h.version);
  v.setUint16(6, h.flags);
  v.setBigUint64(8, BigInt(h.defaultMemory));
  v.setBigUint64(16, BigInt(h.defaultCpus));
  v.setUint16(26, h.numSections);
  for (let i = 0; i < h.numSections; i++) {
    v.setBigUint64(28 + 8 * i, BigInt(h.sectionOffsets[i]!));
    v.setBigUint64(28 + 8 * EIF_MAX_SECTIONS + 8 * i, BigInt(h.sectionSizes[i]!));
  }
  v.setUint32(544, h.crc32 >>> 0);
  return b;
}

export function encodeSectionHeader(type: EifSectionName, size: number): Uint8Array {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`EIF section size out of range: ${size}`);
  const b = new Uint8Array(EIF_SECTION_HEADER_SIZE);
  const v = new DataView(b.buffer);
  v.setUint16(0, SECTION_TYPE[type]);
  v.setBigUint64(4, BigInt(size));
  return b;
}

export interface EifSectionHeaderFields {
  type: number;
  flags: number;
  size: number;
}

export function decodeSectionHeader(b: Uint8Array, at: number): EifSectionHeaderFields {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { type: v.getUint16(0), flags: v.getUint16(2), size: u64(v, 4, `size of the section at offset ${at}`) };
}

/**
 * The sections of an image AWS's builder would write, in its order, with their data sizes:
 * kernel, cmdline, metadata, every ramdisk, then the signature when there is one
 * (`EifBuilder::sections_offsets`).
 */
export function eifSectionOrder(sizes: { kernel: number; cmdline: number; metadata: number; ramdisks: number[]; signature?: number }): { type: EifSectionName; size: number }[] {
  return [
    { type: 'kernel', size: sizes.kernel },
    { type: 'cmdline', size: sizes.cmdline },
    { type: 'metadata', size: sizes.metadata },
    ...sizes.ramdisks.map((size) => ({ type: 'ramdisk' as const, size })),
    ...(sizes.signature !== undefined ? [{ type: 'signature' as const, size: sizes.signature }] : []),
  ];
}

/** Header for a list of sections laid out back to back after the header (as AWS's builder does). */
export function eifHeaderFor(sections: readonly { type: EifSectionName; size: number }[], opts: { arch: EifArch; defaultMemory?: number; defaultCpus?: number; crc32?: number }): EifHeader {
  if (sections.length > EIF_MAX_SECTIONS) throw new RangeError(`an EIF holds at most ${EIF_MAX_SECTIONS} sections, got ${sections.length}`);
  const sectionOffsets: number[] = [];
  let at = EIF_HEADER_SIZE;
  for (const s of sections) {
    sectionOffsets.push(at);
    at += EIF_SECTION_HEADER_SIZE + s.size;
  }
  if (!Number.isSafeInteger(at)) throw new RangeError('EIF larger than 2^53 bytes');
  return {
    version: EIF_CURRENT_VERSION,
    flags: opts.arch === 'aarch64' ? EIF_FLAG_ARM64 : 0,
    defaultMemory: opts.defaultMemory ?? EIF_DEFAULT_MEMORY,
    defaultCpus: opts.defaultCpus ?? EIF_DEFAULT_CPUS,
    numSections: sections.length,
    sectionOffsets,
    sectionSizes: sections.map((s) => s.size),
    crc32: opts.crc32 ?? 0,
  };
}
