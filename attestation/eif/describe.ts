/**
 * `describeEif`: read an EIF and check what the format covers: structure, CRC-32, PCR0/1/2 (and
 * PCR8 with the signature over PCR0 when the image is signed), and the metadata section.
 *
 * The file is untrusted. It is read through a `ByteSource` in bounded chunks (nothing is allocated
 * from a length field without checking it against the file first), and every structural rule is a
 * stable `reason` under ERR_EIF_INVALID. A CRC or signature that does not check is not a throw: the
 * description says `ok: false` with ERR_EIF_CRC / ERR_EIF_SIGNATURE_INVALID, so a caller still sees
 * the PCRs of what it was given.
 */
import type { CryptoProvider } from '../crypto/provider.js';
import { isToolkitError, type ToolkitErrorCode } from '../errors.js';
import { toHex } from '../bytes.js';
import { crc32 as jsCrc32, type Crc32Fn } from './crc32.js';
import {
  EIF_CRC_OFFSET,
  EIF_FLAG_ARM64,
  EIF_HEADER_SIZE,
  EIF_MAGIC,
  EIF_MAX_SECTIONS,
  EIF_SECTION_HEADER_SIZE,
  SECTION_TYPES,
  decodeEifHeader,
  decodeSectionHeader,
  invalid,
  type EifArch,
  type EifSectionName,
} from './format.js';
import { EifMeasurer, certificatePcr, nobleSha384, type EifPcrs, type HashFactory } from './pcrs.js';
import { decodeSignatureSection } from './signature.js';
import { signingCertificate, verifyEifSignature, type EifSignatureCheck } from './verify-signature.js';
import { decodeEifMetadata } from './metadata.js';

/** Random access to the bytes of a file or buffer. `read` returns exactly `length` bytes. */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
}

export function bytesSource(b: Uint8Array): ByteSource {
  return {
    size: b.length,
    read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > b.length) throw new RangeError('read past the end');
      return b.subarray(offset, offset + length);
    },
  };
}

export interface DescribeEifOptions {
  crypto: CryptoProvider;
  hash?: HashFactory;
  crc32?: Crc32Fn;
  /** Read size for streamed sections (default 1 MiB). */
  chunkSize?: number;
}

export interface EifSectionInfo {
  type: EifSectionName;
  /** Offset of the section header in the file. */
  offset: number;
  /** Bytes of section data (the header's 12 bytes not included). */
  size: number;
}

export type EifSignatureInfo =
  | { present: false }
  | ({ present: true; valid: true } & EifSignatureCheck)
  | { present: true; valid: false; code: ToolkitErrorCode; reason: string; message: string; certificateDer?: Uint8Array };

export interface EifDescription {
  /** CRC valid and, when signed, the signature valid. */
  ok: boolean;
  /** Why `ok` is false: ERR_EIF_CRC first, else ERR_EIF_SIGNATURE_INVALID. */
  code?: ToolkitErrorCode;
  reason?: string;
  message?: string;
  size: number;
  version: number;
  flags: number;
  arch: EifArch;
  defaultMemory: number;
  defaultCpus: number;
  crcValid: boolean;
  /** CRC-32 in the header, and over the file. */
  crc: { header: number; computed: number };
  sections: EifSectionInfo[];
  /** The kernel command line (the section's bytes as UTF-8, replacement characters where not). */
  cmdline: string;
  pcrs: EifPcrs;
  signature: EifSignatureInfo;
  metadata: Record<string, unknown> | null;
}

/** Largest cmdline and signature sections read whole. */
const MAX_CMDLINE = 64 * 1024;
const MAX_SIGNATURE = 512 * 1024;

/** Section orders AWS's builder has written: v2 K C R+, v3 K C R+ S?, v4 K C M R+ S?. */
function checkOrder(version: number, types: EifSectionName[]): void {
  const code = types.map((t) => ({ kernel: 'K', cmdline: 'C', ramdisk: 'R', signature: 'S', metadata: 'M' })[t]).join('');
  const re = version >= 4 ? /^KCMR+S?$/ : version === 3 ? /^KCR+S?$/ : /^KCR+$/;
  if (!re.test(code))
    throw invalid(
      'section_order',
      `sections are ${types.join(', ')}; a version ${version} image has kernel, cmdline,${version >= 4 ? ' metadata,' : ''} one or more ramdisks${version >= 3 ? ', then at most one signature' : ''}`,
    );
}

export function describeEif(src: ByteSource, opts: DescribeEifOptions): EifDescription {
  const size = src.size;
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError('ByteSource.size must be a non-negative integer');
  const crcFn = opts.crc32 ?? jsCrc32;
  const hash = opts.hash ?? nobleSha384;
  const chunk = opts.chunkSize ?? 1 << 20;

  const head = src.read(0, Math.min(size, EIF_HEADER_SIZE));
  for (let i = 0; i < Math.min(4, head.length); i++) if (head[i] !== EIF_MAGIC[i]) throw invalid('magic', 'the file does not start with ".eif"');
  if (size < EIF_HEADER_SIZE) throw invalid('truncated', `the file is ${size} bytes, shorter than the ${EIF_HEADER_SIZE}-byte header`);
  const header = decodeEifHeader(head);
  if (header.version < 2 || header.version > 4) throw invalid('version', `version ${header.version} is not one this reader knows (2..4)`);
  if ((header.flags & ~EIF_FLAG_ARM64) !== 0) throw invalid('flags', `header flags 0x${header.flags.toString(16)} set bits other than bit 0 (aarch64)`);

  // Pass 1: walk the section headers back to back from the end of the header, as AWS's reader does,
  // and require the header's offset/size table to describe exactly that walk.
  const sections: EifSectionInfo[] = [];
  let pos = EIF_HEADER_SIZE;
  while (pos < size) {
    if (sections.length >= EIF_MAX_SECTIONS) throw invalid('num_sections', `more than ${EIF_MAX_SECTIONS} sections`);
    if (size - pos < EIF_SECTION_HEADER_SIZE) throw invalid('truncated', `${size - pos} bytes after the last section, too few for a section header`);
    const sh = decodeSectionHeader(src.read(pos, EIF_SECTION_HEADER_SIZE), pos);
    if (sh.type < 1 || sh.type >= SECTION_TYPES.length) throw invalid('section_type', `section ${sections.length} at offset ${pos} has type ${sh.type}`);
    if (sh.flags !== 0) throw invalid('section_flags', `section ${sections.length} at offset ${pos} has flags 0x${sh.flags.toString(16)}, expected 0`);
    if (sh.size > size - pos - EIF_SECTION_HEADER_SIZE)
      throw invalid('truncated', `section ${sections.length} at offset ${pos} declares ${sh.size} bytes, but the file ends ${size - pos - EIF_SECTION_HEADER_SIZE} bytes after its header`);
    const i = sections.length;
    if (i >= header.numSections || header.sectionOffsets[i] !== pos || header.sectionSizes[i] !== sh.size)
      throw invalid(
        'section_table',
        i >= header.numSections
          ? `the header lists ${header.numSections} sections but more follow at offset ${pos}`
          : `header entry ${i} says offset ${header.sectionOffsets[i]} size ${header.sectionSizes[i]}, the section is at ${pos} with ${sh.size} bytes`,
      );
    sections.push({ type: SECTION_TYPES[sh.type] as EifSectionName, offset: pos, size: sh.size });
    pos += EIF_SECTION_HEADER_SIZE + sh.size;
  }
  if (sections.length !== header.numSections)
    throw invalid('section_table', `the header lists ${header.numSections} sections, the file holds ${sections.length}`);
  checkOrder(header.version, sections.map((s) => s.type));

  // Pass 2: stream everything once: the CRC over all bytes but the CRC field, the measured sections
  // into the PCR hashes, and the small sections (cmdline, metadata, signature) read whole.
  let crc = crcFn(head.subarray(0, EIF_CRC_OFFSET));
  const measurer = new EifMeasurer(hash);
  let ramdiskIndex = 0;
  let cmdline = '';
  let metadata: Record<string, unknown> | null = null;
  let signatureBytes: Uint8Array | undefined;
  for (const s of sections) {
    crc = crcFn(src.read(s.offset, EIF_SECTION_HEADER_SIZE), crc);
    const start = s.offset + EIF_SECTION_HEADER_SIZE;
    if (s.type === 'cmdline' || s.type === 'metadata' || s.type === 'signature') {
      const limit = s.type === 'cmdline' ? MAX_CMDLINE : s.type === 'signature' ? MAX_SIGNATURE : Infinity;
      if (s.size > limit) throw invalid(`${s.type}_size`, `${s.type} section is ${s.size} bytes, at most ${limit}`);
      // The metadata limit is enforced by decodeEifMetadata before anything is parsed; reading it
      // whole is bounded by that check first.
      if (s.type === 'metadata' && s.size > 1024 * 1024) throw invalid('metadata', `metadata section is ${s.size} bytes, at most ${1024 * 1024}`);
      const data = s.size === 0 ? new Uint8Array(0) : src.read(start, s.size);
      crc = crcFn(data, crc);
      if (s.type === 'cmdline') {
        measurer.update('boot', data);
        cmdline = new TextDecoder('utf-8').decode(data);
      } else if (s.type === 'metadata') metadata = decodeEifMetadata(data);
      else signatureBytes = new Uint8Array(data);
      continue;
    }
    const part = s.type === 'kernel' || ramdiskIndex === 0 ? 'boot' : 'app';
    if (s.type === 'ramdisk') ramdiskIndex++;
    for (let off = 0; off < s.size; off += chunk) {
      const data = src.read(start + off, Math.min(chunk, s.size - off));
      crc = crcFn(data, crc);
      measurer.update(part, data);
    }
  }

  // The signature: PCR8 needs the certificate; the check needs PCR0.
  let signature: EifSignatureInfo = { present: false };
  let certDer: Uint8Array | undefined;
  let sigError: { code: ToolkitErrorCode; reason: string; message: string } | undefined;
  if (signatureBytes !== undefined) {
    try {
      certDer = signingCertificate(decodeSignatureSection(signatureBytes)).der;
    } catch (e) {
      if (!isToolkitError(e)) throw e;
      sigError = { code: e.code, reason: e.reason ?? 'signature', message: e.message };
    }
  }
  const pcrs = measurer.pcrs();
  if (certDer !== undefined) pcrs[8] = certificatePcr(certDer, hash);
  if (signatureBytes !== undefined) {
    if (sigError === undefined) {
      try {
        signature = { present: true, valid: true, ...verifyEifSignature(decodeSignatureSection(signatureBytes), pcrs[0], opts.crypto) };
      } catch (e) {
        if (!isToolkitError(e)) throw e;
        sigError = { code: e.code, reason: e.reason ?? 'signature', message: e.message };
      }
    }
    if (sigError !== undefined) signature = { present: true, valid: false, ...sigError, ...(certDer ? { certificateDer: certDer } : {}) };
  }

  const crcValid = crc === header.crc32;
  const out: EifDescription = {
    ok: crcValid && (signature.present === false || signature.valid),
    size,
    version: header.version,
    flags: header.flags,
    arch: header.flags & EIF_FLAG_ARM64 ? 'aarch64' : 'x86_64',
    defaultMemory: header.defaultMemory,
    defaultCpus: header.defaultCpus,
    crcValid,
    crc: { header: header.crc32, computed: crc },
    sections,
    cmdline,
    pcrs,
    signature,
    metadata,
  };
  if (!crcValid) {
    out.code = 'ERR_EIF_CRC';
    out.reason = 'crc';
    out.message = `CRC-32 mismatch: the header says ${hex32(header.crc32)}, the file's is ${hex32(crc)}`;
  } else if (signature.present && !signature.valid) {
    out.code = signature.code;
    out.reason = signature.reason;
    out.message = signature.message;
  }
  return out;
}

const hex32 = (n: number) => '0x' + n.toString(16).padStart(8, '0');

/** PCRs as lower-case hex keyed "0", "1", "2" (and "8"). */
export function pcrsHex(p: EifPcrs): Record<string, string> {
  const o: Record<string, string> = { '0': toHex(p[0]), '1': toHex(p[1]), '2': toHex(p[2]) };
  if (p[8] !== undefined) o['8'] = toHex(p[8]);
  return o;
}
