/**
 * The SEV-SNP launch digest (the report's MEASUREMENT) of a guest started from OVMF, computed as
 * virtee/sev-snp-measure computes it (`snp_calc_launch_digest`); MEASURE.md beside this file has the
 * layouts and sources. Pure: the OVMF image is given as bytes, the kernel and initrd as their SHA-256
 * (the caller hashes files however large they are), and nothing is read or timed here.
 *
 *   ld_0 = 0^48 (or a precomputed OVMF digest)
 *   ld_{i+1} = SHA-384(ld_i ‖ contents ‖ len=0x70 u16 ‖ page_type u8 ‖ is_imi u8 ‖ vmpl3..1 perms u8 ×3 ‖ 0 ‖ gpa u64)
 *
 * over: every 4 KiB page of OVMF (normal pages; the file ends at 4 GiB), then OVMF's SEV metadata
 * sections in order (SEC memory: zero pages, or unmeasured on GCE; secrets; CPUID, after the others on
 * EC2; the kernel-hashes page: the SEV hashes table, or a zero page without a kernel), then one VMSA
 * page per vCPU.
 *
 * The OVMF file is untrusted input: every table offset and length is checked, and failures are
 * ERR_SNP_MEASURE with a `reason`.
 */
import { sha256, sha384 } from '@noble/hashes/sha2.js';
import { AttestationError } from '../errors.js';

export type VmmType = 'QEMU' | 'EC2' | 'GCE';
export const VMM_TYPES: readonly VmmType[] = ['QEMU', 'EC2', 'GCE'];

/** CPUID Fn0000_0001_EAX from family, model, stepping (AMD CPUID spec #25481). */
export function cpuSig(family: number, model: number, stepping: number): number {
  const [fl, fh] = family > 0xf ? [0xf, (family - 0xf) & 0xff] : [family, 0];
  return ((fh << 20) | (((model >> 4) & 0xf) << 16) | (fl << 8) | ((model & 0xf) << 4) | (stepping & 0xf)) >>> 0;
}

/** QEMU's built-in EPYC CPU models and their signatures (as sev-snp-measure lists them). */
export const VCPU_TYPES: Readonly<Record<string, number>> = Object.freeze({
  EPYC: cpuSig(23, 1, 2),
  'EPYC-v1': cpuSig(23, 1, 2),
  'EPYC-v2': cpuSig(23, 1, 2),
  'EPYC-IBPB': cpuSig(23, 1, 2),
  'EPYC-v3': cpuSig(23, 1, 2),
  'EPYC-v4': cpuSig(23, 1, 2),
  'EPYC-Rome': cpuSig(23, 49, 0),
  'EPYC-Rome-v1': cpuSig(23, 49, 0),
  'EPYC-Rome-v2': cpuSig(23, 49, 0),
  'EPYC-Rome-v3': cpuSig(23, 49, 0),
  'EPYC-Milan': cpuSig(25, 1, 1),
  'EPYC-Milan-v1': cpuSig(25, 1, 1),
  'EPYC-Milan-v2': cpuSig(25, 1, 1),
  'EPYC-Genoa': cpuSig(25, 17, 0),
  'EPYC-Genoa-v1': cpuSig(25, 17, 0),
  'EPYC-Turin': cpuSig(26, 0, 0),
});

export function measureError(reason: string, message: string): AttestationError {
  return new AttestationError('ERR_SNP_MEASURE', message, { reason });
}

const PAGE = 4096;
const FOUR_GIB = 0x1_0000_0000;
/** Bound on pages measured from metadata sections (each costs a SHA-384): 16 GiB worth. */
const MAX_SECTION_PAGES = 1 << 22;
export const MAX_VCPUS = 4096;

// GUIDs as they appear in the OVMF footer table (the little-endian byte order of the textual GUID).
function guidLe(s: string): string {
  const h = s.replace(/-/g, '');
  const rev = (x: string) => x.match(/../g)!.reverse().join('');
  return rev(h.slice(0, 8)) + rev(h.slice(8, 12)) + rev(h.slice(12, 16)) + h.slice(16);
}
const GUID = {
  footer: guidLe('96b582de-1fb2-45f7-baea-a366c55a082d'),
  sevHashTableRv: guidLe('7255371f-3a3b-4b04-927b-1da6efa8d454'),
  sevEsResetBlock: guidLe('00f771de-1a7e-4fcb-890e-68c77e2fb44e'),
  sevMetadata: guidLe('dc886566-984a-4798-a75e-5585a7bf67cc'),
};
const HASH_GUID = {
  table: guidLe('9438d606-4f22-4cc9-b479-a793d411fd21'),
  kernel: guidLe('4de79437-abd2-427f-b835-d5b172d2045b'),
  initrd: guidLe('44baf731-3a2f-4bd7-9af1-41e29169781d'),
  cmdline: guidLe('97d02dd8-bd20-4c94-aa78-e7714d36ab2a'),
};

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const fromHexStr = (s: string) => Uint8Array.from(s.match(/../g)!, (x) => parseInt(x, 16));

export const SECTION_KINDS = { 1: 'SNP_SEC_MEM', 2: 'SNP_SECRETS', 3: 'CPUID', 4: 'SVSM_CAA', 0x10: 'SNP_KERNEL_HASHES' } as const;
export type OvmfSectionKind = (typeof SECTION_KINDS)[keyof typeof SECTION_KINDS];

export interface OvmfSection {
  gpa: number;
  size: number;
  kind: OvmfSectionKind;
}

export interface OvmfInfo {
  size: number;
  /** Where the image starts: it ends at 4 GiB. */
  gpa: number;
  /** GUID (textual, lower case) -> entry data, from the footer table. */
  table: Map<string, Uint8Array>;
  sections: OvmfSection[];
  /** AP reset vector (SEV_ES_RESET_BLOCK), if the table has one. */
  resetEip?: number;
  /** SEV hashes table GPA (SEV_HASH_TABLE_RV), if the table has one. */
  hashesTableGpa?: number;
}

const u32 = (b: Uint8Array, at: number) => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
const u16 = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);

/** Parse OVMF's footer GUID table and SEV metadata. Throws ERR_SNP_MEASURE (reason `ovmf_*`). */
export function parseOvmf(ovmf: Uint8Array): OvmfInfo {
  const size = ovmf.length;
  if (size === 0 || size % PAGE !== 0) throw measureError('ovmf_size', `the OVMF image is ${size} bytes, not a non-zero multiple of 4096`);
  if (size > FOUR_GIB) throw measureError('ovmf_size', 'the OVMF image is larger than 4 GiB');
  const table = new Map<string, Uint8Array>();
  // The footer entry (u16 size, GUID) sits 32 bytes before the end; the table grows down from it.
  const footerAt = size - 32 - 18;
  if (footerAt >= 0 && hex(ovmf.subarray(footerAt + 2, footerAt + 18)) === GUID.footer) {
    const tableSize = u16(ovmf, footerAt) - 18;
    if (tableSize > footerAt) throw measureError('ovmf_table', `the OVMF footer table (${tableSize} bytes) runs before the start of the image`);
    let end = footerAt;
    const start = footerAt - Math.max(tableSize, 0);
    while (end - start >= 18) {
      const entrySize = u16(ovmf, end - 18);
      if (entrySize < 18) throw measureError('ovmf_table', `OVMF table entry at ${end - 18} has size ${entrySize}, less than its 18-byte header`);
      if (entrySize > end - start) throw measureError('ovmf_table', `OVMF table entry at ${end - 18} (${entrySize} bytes) runs past the table`);
      const g = hex(ovmf.subarray(end - 16, end));
      table.set(g, ovmf.subarray(end - entrySize, end - 18)); // a repeated GUID: the lower entry wins, as in sev-snp-measure
      end -= entrySize;
    }
  }
  const sections: OvmfSection[] = [];
  const meta = table.get(GUID.sevMetadata);
  if (meta !== undefined) {
    if (meta.length < 4) throw measureError('ovmf_metadata', 'the SEV metadata table entry is shorter than 4 bytes');
    const fromEnd = u32(meta, 0);
    const at = size - fromEnd;
    if (fromEnd > size || at + 16 > size) throw measureError('ovmf_metadata', `the SEV metadata offset ${fromEnd} from the end is outside the image`);
    if (hex(ovmf.subarray(at, at + 4)) !== '41534556') throw measureError('ovmf_metadata', 'the SEV metadata header does not start with "ASEV"');
    const hdrSize = u32(ovmf, at + 4);
    const version = u32(ovmf, at + 8);
    const n = u32(ovmf, at + 12);
    if (version !== 1) throw measureError('ovmf_metadata', `SEV metadata version ${version}, expected 1`);
    if (hdrSize < 16 || hdrSize > size - at || n > (hdrSize - 16) / 12)
      throw measureError('ovmf_metadata', `SEV metadata of ${hdrSize} bytes with ${n} sections does not fit`);
    for (let i = 0; i < n; i++) {
      const p = at + 16 + 12 * i;
      const kind = SECTION_KINDS[u32(ovmf, p + 8) as keyof typeof SECTION_KINDS];
      if (kind === undefined) throw measureError('ovmf_section', `SEV metadata section ${i} has unknown type ${u32(ovmf, p + 8)}`);
      sections.push({ gpa: u32(ovmf, p), size: u32(ovmf, p + 4), kind });
    }
  }
  const entry32 = (g: string, what: string) => {
    const e = table.get(g);
    if (e === undefined) return undefined;
    if (e.length < 4) throw measureError('ovmf_table', `the ${what} table entry is shorter than 4 bytes`);
    return u32(e, 0);
  };
  const resetEip = entry32(GUID.sevEsResetBlock, 'SEV-ES reset block');
  const hashesTableGpa = entry32(GUID.sevHashTableRv, 'SEV hashes table');
  return {
    size,
    gpa: FOUR_GIB - size,
    table,
    sections,
    ...(resetEip !== undefined ? { resetEip } : {}),
    ...(hashesTableGpa !== undefined ? { hashesTableGpa } : {}),
  };
}

/** The SEV hashes table QEMU places for measured direct boot, padded to 16 bytes (0xb0 bytes). */
export function sevHashesTable(kernelSha256: Uint8Array, initrdSha256: Uint8Array, cmdlineSha256: Uint8Array): Uint8Array {
  for (const [n, h] of [['kernel', kernelSha256], ['initrd', initrdSha256], ['cmdline', cmdlineSha256]] as const)
    if (!(h instanceof Uint8Array) || h.length !== 32) throw new RangeError(`"${n}Sha256" expected Uint8Array of length 32`);
  const t = new Uint8Array(0xb0);
  const entry = (at: number, guid: string, h: Uint8Array) => {
    t.set(fromHexStr(guid), at);
    t[at + 16] = 50;
    t.set(h, at + 18);
  };
  t.set(fromHexStr(HASH_GUID.table), 0);
  t[16] = 168; // length of the table without padding
  entry(18, HASH_GUID.cmdline, cmdlineSha256);
  entry(68, HASH_GUID.initrd, initrdSha256);
  entry(118, HASH_GUID.kernel, kernelSha256);
  return t;
}

/** SHA-256 of the kernel command line as QEMU hashes it: UTF-8 and one NUL (a lone NUL when empty). */
export function cmdlineSha256(append: string | undefined): Uint8Array {
  const b = new TextEncoder().encode(append ?? '');
  const withNul = new Uint8Array(b.length + 1);
  withNul.set(b);
  return sha256(withNul);
}

/** One VMSA page (the SEV-ES save area, AMD APM vol. 2 table B-4) as the VMM initialises it. */
export function vmsaPage(eip: number, sevFeatures: bigint, vcpuSig: number, vmm: VmmType): Uint8Array {
  const p = new Uint8Array(PAGE);
  const v = new DataView(p.buffer);
  const seg = (i: number, selector: number, attrib: number, limit: number, base: number) => {
    v.setUint16(i * 16, selector, true);
    v.setUint16(i * 16 + 2, attrib, true);
    v.setUint32(i * 16 + 4, limit, true);
    v.setBigUint64(i * 16 + 8, BigInt(base), true);
  };
  let csFlags = 0x9b;
  let ssFlags = 0x93;
  let trFlags = 0x8b;
  let rdx = vcpuSig;
  let mxcsr = 0x1f80;
  let fcw = 0x37f;
  let gPat = 0x7040600070406n;
  if (vmm === 'EC2') {
    if (eip === 0xfffffff0) csFlags = 0x9a;
    ssFlags = 0x92;
    trFlags = 0x83;
    rdx = 0x600;
    mxcsr = 0;
    fcw = 0;
  } else if (vmm === 'GCE') {
    gPat = 0x00070106n;
    rdx = 0x600;
    mxcsr = 0;
    fcw = 0;
  }
  // es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr
  seg(0, 0, 0x93, 0xffff, 0);
  seg(1, 0xf000, csFlags, 0xffff, (eip & 0xffff0000) >>> 0);
  seg(2, 0, ssFlags, 0xffff, 0);
  seg(3, 0, 0x93, 0xffff, 0);
  seg(4, 0, 0x93, 0xffff, 0);
  seg(5, 0, 0x93, 0xffff, 0);
  seg(6, 0, 0, 0xffff, 0);
  seg(7, 0, 0x82, 0xffff, 0);
  seg(8, 0, 0, 0xffff, 0);
  seg(9, 0, trFlags, 0xffff, 0);
  v.setBigUint64(0xd0, 0x1000n, true); // EFER.SVME
  v.setBigUint64(0x148, 0x40n, true); // CR4.MCE
  v.setBigUint64(0x158, 0x10n, true); // CR0.ET
  v.setBigUint64(0x160, 0x400n, true); // DR7
  v.setBigUint64(0x168, 0xffff0ff0n, true); // DR6
  v.setBigUint64(0x170, 0x2n, true); // RFLAGS
  v.setBigUint64(0x178, BigInt(eip & 0xffff), true); // RIP
  v.setBigUint64(0x268, gPat, true); // G_PAT
  v.setBigUint64(0x310, BigInt(rdx >>> 0), true); // RDX
  v.setBigUint64(0x3b0, sevFeatures, true); // SEV_FEATURES
  v.setBigUint64(0x3e8, 0x1n, true); // XCR0
  v.setUint32(0x408, mxcsr, true); // MXCSR
  v.setUint16(0x410, fcw, true); // x87 FCW
  return p;
}

const BSP_EIP = 0xfffffff0;
const VMSA_GPA = 0xfffffffff000;

export interface SnpMeasureInput {
  ovmf: Uint8Array;
  vcpus: number;
  /** CPUID signature written to RDX (QEMU); EC2 and GCE write 0x600 whatever it is. */
  vcpuSig: number;
  vmm: VmmType;
  /** SEV_FEATURES of every VMSA: 0x1 SNPActive; 0x21 adds DebugSwap. */
  guestFeatures: bigint;
  /** Measured direct boot: SHA-256 of the kernel and initrd (an absent initrd hashes as empty) and the command line. */
  kernel?: { kernelSha256: Uint8Array; initrdSha256: Uint8Array; cmdline?: string };
  /** A precomputed OVMF launch digest to start from instead of hashing the OVMF pages. */
  ovmfHash?: Uint8Array;
}

/** The 48-byte launch digest. */
export function snpLaunchDigest(input: SnpMeasureInput): Uint8Array {
  const { vcpus, vcpuSig, vmm, guestFeatures } = input;
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > MAX_VCPUS) throw measureError('vcpus', `vcpus must be 1..${MAX_VCPUS}, got ${vcpus}`);
  if (!Number.isInteger(vcpuSig) || vcpuSig < 0 || vcpuSig > 0xffffffff) throw measureError('vcpu_sig', 'the vCPU signature must be a 32-bit value');
  if (!VMM_TYPES.includes(vmm)) throw measureError('vmm_type', `VMM type must be one of ${VMM_TYPES.join(', ')}`);
  if (typeof guestFeatures !== 'bigint' || guestFeatures < 0n || guestFeatures >= 1n << 64n) throw measureError('guest_features', 'guest features must be a 64-bit value');
  const ovmf = parseOvmf(input.ovmf);

  let ld: Uint8Array = new Uint8Array(48);
  if (input.ovmfHash !== undefined) {
    if (input.ovmfHash.length !== 48) throw measureError('ovmf_hash', 'the precomputed OVMF digest must be 48 bytes');
    ld = new Uint8Array(input.ovmfHash);
  }
  const info = new Uint8Array(0x70);
  const iv = new DataView(info.buffer);
  const update = (type: number, gpa: number, contents: Uint8Array) => {
    info.set(ld, 0);
    info.set(contents, 48);
    iv.setUint16(96, 0x70, true);
    info[98] = type;
    info.fill(0, 99, 104);
    iv.setBigUint64(104, BigInt(gpa), true);
    ld = sha384(info);
  };
  const ZERO = new Uint8Array(48);
  if (input.ovmfHash === undefined) for (let off = 0; off < ovmf.size; off += PAGE) update(0x01, ovmf.gpa + off, sha384(input.ovmf.subarray(off, off + PAGE)));

  const pages = (s: OvmfSection, type: number) => {
    if (s.size % PAGE !== 0) throw measureError('ovmf_section', `${s.kind} section at 0x${s.gpa.toString(16)} is ${s.size} bytes, not whole pages`);
    if (s.size / PAGE > MAX_SECTION_PAGES) throw measureError('ovmf_section', `${s.kind} section of ${s.size} bytes is too large`);
    for (let off = 0; off < s.size; off += PAGE) update(type, s.gpa + off, ZERO);
  };
  let hashesPage: Uint8Array | undefined;
  if (input.kernel !== undefined) {
    if (!ovmf.sections.some((s) => s.kind === 'SNP_KERNEL_HASHES'))
      throw measureError('no_kernel_hashes', 'a kernel was given but the OVMF metadata has no SNP_KERNEL_HASHES section (this OVMF does not support measured direct boot)');
    if (ovmf.hashesTableGpa === undefined) throw measureError('no_kernel_hashes', 'a kernel was given but the OVMF table has no SEV hashes table entry');
    const offset = ovmf.hashesTableGpa & 0xfff;
    const table = sevHashesTable(input.kernel.kernelSha256, input.kernel.initrdSha256, cmdlineSha256(input.kernel.cmdline));
    if (offset + table.length > PAGE) throw measureError('ovmf_table', `the SEV hashes table at page offset 0x${offset.toString(16)} does not fit its page`);
    hashesPage = new Uint8Array(PAGE);
    hashesPage.set(table, offset);
  }
  for (const s of ovmf.sections) {
    if (s.kind === 'SNP_SEC_MEM') pages(s, vmm === 'GCE' ? 0x04 : 0x03);
    else if (s.kind === 'SNP_SECRETS') update(0x05, s.gpa, ZERO);
    else if (s.kind === 'CPUID') {
      if (vmm !== 'EC2') update(0x06, s.gpa, ZERO);
    } else if (s.kind === 'SNP_KERNEL_HASHES') {
      if (hashesPage !== undefined) {
        if (s.size !== PAGE) throw measureError('ovmf_section', `the SNP_KERNEL_HASHES section is ${s.size} bytes; the SEV hashes table fills one page`);
        update(0x01, s.gpa, sha384(hashesPage));
      } else pages(s, 0x03);
    } else pages(s, 0x03); // SVSM_CAA
  }
  if (vmm === 'EC2') for (const s of ovmf.sections) if (s.kind === 'CPUID') update(0x06, s.gpa, ZERO);

  if (ovmf.resetEip === undefined) throw measureError('no_reset_vector', 'the OVMF table has no SEV-ES reset block (AP reset vector)');
  if (vcpus > 1 && ovmf.resetEip === 0) throw measureError('no_reset_vector', 'the OVMF AP reset vector is 0, so only one vCPU can be measured');
  const bsp = sha384(vmsaPage(BSP_EIP, guestFeatures, vcpuSig, vmm));
  const ap = vcpus > 1 ? sha384(vmsaPage(ovmf.resetEip, guestFeatures, vcpuSig, vmm)) : undefined;
  for (let i = 0; i < vcpus; i++) update(0x02, VMSA_GPA, i === 0 ? bsp : ap!);
  return ld;
}

/** The OVMF part alone (sev-snp-measure --mode snp:ovmf-hash): the seed `ovmfHash` takes. */
export function snpOvmfHash(ovmf: Uint8Array): Uint8Array {
  const o = parseOvmf(ovmf);
  let ld: Uint8Array = new Uint8Array(48);
  const info = new Uint8Array(0x70);
  const iv = new DataView(info.buffer);
  for (let off = 0; off < o.size; off += PAGE) {
    info.set(ld, 0);
    info.set(sha384(ovmf.subarray(off, off + PAGE)), 48);
    iv.setUint16(96, 0x70, true);
    info[98] = 0x01;
    iv.setBigUint64(104, BigInt(o.gpa + off), true);
    ld = sha384(info);
  }
  return ld;
}

/**
 * ID_KEY_DIGEST / AUTHOR_KEY_DIGEST of a P-384 public key: SHA-384 of the key in the SEV ABI's
 * public-key format (0x404 bytes: curve u32 = 2 (P-384), Qx and Qy each 72 bytes little-endian, zeros).
 * `x` and `y` are the big-endian 48-byte coordinates.
 */
export function snpIdKeyDigest(x: Uint8Array, y: Uint8Array): Uint8Array {
  if (!(x instanceof Uint8Array) || x.length !== 48 || !(y instanceof Uint8Array) || y.length !== 48)
    throw new RangeError('"x" and "y" expected Uint8Array of length 48 (P-384 coordinates)');
  const k = new Uint8Array(0x404);
  k[0] = 2;
  for (let i = 0; i < 48; i++) {
    k[4 + i] = x[47 - i]!;
    k[4 + 72 + i] = y[47 - i]!;
  }
  return sha384(k);
}

/**
 * Turn the output of `enclavekit snp measure --json` (or a list of such outputs) into an SEV-SNP
 * policy `{measurement}`, so that it can be passed as `--policy` as it is. Anything else is returned
 * unchanged (the policy parser judges it).
 */
export function snpPolicyFromMeasureJson(raw: unknown): unknown {
  const isMeasure = (o: unknown): o is { ok: true; measurement: string } =>
    typeof o === 'object' &&
    o !== null &&
    !Array.isArray(o) &&
    (o as { ok?: unknown }).ok === true &&
    typeof (o as { measurement?: unknown }).measurement === 'string' &&
    Object.keys(o).every((k) => MEASURE_OUTPUT_KEYS.has(k));
  if (isMeasure(raw)) return { measurement: raw.measurement };
  if (Array.isArray(raw) && raw.length > 0 && raw.every(isMeasure)) return { measurement: raw.map((m) => m.measurement) };
  return raw;
}

/** The keys `snp measure --json` prints. */
export const MEASURE_OUTPUT_KEYS: ReadonlySet<string> = new Set(['ok', 'measurement']);
