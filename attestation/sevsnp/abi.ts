/**
 * SEV-SNP ATTESTATION_REPORT parsing (AMD SEV-SNP Firmware ABI #56860, "ATTESTATION_REPORT
 * Structure"). Structure only: exact size, version, enum ranges and every must-be-zero range for the
 * version. Signatures, the certificate chain and TCB/chip binding are left to verify.ts; policy to
 * policy.ts. TCB values are kept raw here because their layout depends on the product, which the
 * report alone does not always name (v2 has no CPUID bytes).
 */
import { AttestationError } from '../errors.js';
import { abytes, isAllZero } from '../bytes.js';

export const SNP_REPORT_SIZE = 0x4a0;
/** The firmware signs bytes 0x000..0x29F. */
export const SNP_SIGNED_LENGTH = 0x2a0;

export type SnpProduct = 'Milan' | 'Genoa' | 'Turin';
export const SNP_PRODUCTS: readonly SnpProduct[] = Object.freeze(['Milan', 'Genoa', 'Turin']);

export type SnpSigningKey = 'VCEK' | 'VLEK';

/** TCB_VERSION decoded with one product's layout. `fmc` exists on Turin only. */
export interface SnpTcb {
  readonly bootloader: number;
  readonly tee: number;
  readonly snp: number;
  readonly microcode: number;
  readonly fmc?: number;
  /** The raw 8 bytes, little-endian, as in the report. */
  readonly raw: Uint8Array;
}

export interface SnpReport {
  readonly version: number;
  readonly guestSvn: number;
  readonly policy: bigint;
  readonly familyId: Uint8Array;
  readonly imageId: Uint8Array;
  readonly vmpl: number;
  readonly signatureAlgo: number;
  readonly currentTcb: Uint8Array;
  readonly platformInfo: bigint;
  readonly authorKeyEn: boolean;
  readonly maskChipKey: boolean;
  readonly signingKey: SnpSigningKey;
  readonly reportData: Uint8Array;
  readonly measurement: Uint8Array;
  readonly hostData: Uint8Array;
  readonly idKeyDigest: Uint8Array;
  readonly authorKeyDigest: Uint8Array;
  readonly reportId: Uint8Array;
  readonly reportIdMa: Uint8Array;
  readonly reportedTcb: Uint8Array;
  /** v3+ only; undefined on v2 (the bytes are reserved there). */
  readonly cpuid?: { readonly family: number; readonly model: number; readonly stepping: number };
  readonly chipId: Uint8Array;
  readonly committedTcb: Uint8Array;
  readonly currentVersion: { readonly major: number; readonly minor: number; readonly build: number };
  readonly committedVersion: { readonly major: number; readonly minor: number; readonly build: number };
  readonly launchTcb: Uint8Array;
  /** v5+ only. */
  readonly launchMitVector?: bigint;
  readonly currentMitVector?: bigint;
  /** ECDSA P-384 r‖s, big-endian, 96 bytes (IEEE P1363), converted from the 72-byte LE slots. */
  readonly signatureP1363: Uint8Array;
  /** A copy of the bytes the signature covers (0x000..0x29F). */
  readonly signedBytes: Uint8Array;
  /** A copy of the whole report. */
  readonly raw: Uint8Array;
}

/** Guest POLICY bits (ABI §"Guest Policy"). */
export const POLICY = Object.freeze({
  SMT: 1n << 16n,
  RESERVED_MBO: 1n << 17n,
  MIGRATE_MA: 1n << 18n,
  DEBUG: 1n << 19n,
  SINGLE_SOCKET: 1n << 20n,
  CXL_ALLOW: 1n << 21n,
  MEM_AES_256_XTS: 1n << 22n,
  RAPL_DIS: 1n << 23n,
  CIPHERTEXT_HIDING_DRAM: 1n << 24n,
  PAGE_SWAP_DISABLE: 1n << 25n,
});

/** PLATFORM_INFO bits. */
export const PLATFORM_INFO = Object.freeze({
  SMT_EN: 1n << 0n,
  TSME_EN: 1n << 1n,
  ECC_EN: 1n << 2n,
  RAPL_DIS: 1n << 3n,
  CIPHERTEXT_HIDING_DRAM_EN: 1n << 4n,
  ALIAS_CHECK_COMPLETE: 1n << 5n,
  SEV_TIO_EN: 1n << 7n,
});

function invalid(reason: string, message: string): AttestationError {
  return new AttestationError('ERR_SNP_REPORT_INVALID', `SEV-SNP report: ${message}`, { reason });
}

const hex3 = (n: number) => '0x' + n.toString(16).padStart(3, '0');

function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function u64(b: Uint8Array, o: number): bigint {
  return BigInt(u32(b, o)) | (BigInt(u32(b, o + 4)) << 32n);
}

/** An MBZ range [start, end) with its own reason, so each failure is distinguishable. */
function mbz(b: Uint8Array, start: number, end: number): void {
  for (let i = start; i < end; i++) {
    if (b[i] !== 0)
      throw invalid(
        `mbz_${hex3(start)}`,
        `reserved bytes ${hex3(start)}..${hex3(end - 1)} must be zero (byte ${hex3(i)} is 0x${b[i]!.toString(16)})`,
      );
  }
}

/** r or s: 72 bytes little-endian of which only the low 48 are significant. */
function sigComponent(b: Uint8Array, off: number, name: 'r' | 's'): Uint8Array {
  if (!isAllZero(b.subarray(off + 48, off + 72)))
    throw invalid(
      `signature_${name}_padding`,
      `signature ${name}: bytes ${hex3(off + 48)}..${hex3(off + 71)} must be zero`,
    );
  const out = new Uint8Array(48);
  for (let i = 0; i < 48; i++) out[i] = b[off + 47 - i]!;
  return out;
}

/**
 * Parse a 0x4A0-byte report. Throws `ERR_SNP_REPORT_INVALID` with a distinct `reason` for each
 * structural failure. Versions 2..5 are accepted (4 uses the v3 layout).
 */
export function parseSnpReport(input: Uint8Array): SnpReport {
  abytes(input, 'report');
  if (input.length !== SNP_REPORT_SIZE)
    throw invalid('length', `expected ${SNP_REPORT_SIZE} bytes, got ${input.length}`);
  const b = input.slice();
  const version = u32(b, 0x000);
  if (version < 2 || version > 5) throw invalid('version', `version ${version} is not supported (2..5)`);
  const signatureAlgo = u32(b, 0x034);
  if (signatureAlgo !== 1)
    throw invalid('signature_algo', `SIGNATURE_ALGO ${signatureAlgo} is not 1 (ECDSA P-384 with SHA-384)`);

  const policy = u64(b, 0x008);
  if ((policy & POLICY.RESERVED_MBO) === 0n) throw invalid('policy_reserved_bit', 'POLICY bit 17 must be 1');
  if (policy >> 26n !== 0n) throw invalid('policy_reserved_bits', 'POLICY bits 63:26 must be zero');

  const vmpl = u32(b, 0x030);
  if (vmpl > 3) throw invalid('vmpl', `VMPL ${vmpl} is out of range 0..3`);

  const signer = u32(b, 0x048);
  if (signer >>> 5 !== 0) throw invalid('signer_info_reserved', 'signer info bits 31:5 (0x048) must be zero');
  const maskChipKey = (signer & 2) !== 0;
  if (maskChipKey) throw invalid('mask_chip_key', 'MASK_CHIP_KEY is set: the report is not signed');
  const keySel = (signer >>> 2) & 7;
  if (keySel === 7) throw invalid('no_signing_key', 'SIGNING_KEY is 7 (none): the report is not signed');
  if (keySel !== 0 && keySel !== 1) throw invalid('signing_key_reserved', `SIGNING_KEY ${keySel} is reserved`);

  mbz(b, 0x04c, 0x050);
  let cpuid: SnpReport['cpuid'];
  if (version === 2) mbz(b, 0x188, 0x1a0);
  else {
    mbz(b, 0x18b, 0x1a0);
    cpuid = Object.freeze({ family: b[0x188]!, model: b[0x189]!, stepping: b[0x18a]! });
  }
  mbz(b, 0x1eb, 0x1ec);
  mbz(b, 0x1ef, 0x1f0);
  let launchMitVector: bigint | undefined;
  let currentMitVector: bigint | undefined;
  if (version >= 5) {
    launchMitVector = u64(b, 0x1f8);
    currentMitVector = u64(b, 0x200);
    mbz(b, 0x208, 0x2a0);
  } else mbz(b, 0x1f8, 0x2a0);
  mbz(b, 0x330, 0x4a0);

  const r = sigComponent(b, 0x2a0, 'r');
  const s = sigComponent(b, 0x2e8, 's');
  const sig = new Uint8Array(96);
  sig.set(r, 0);
  sig.set(s, 48);

  const report: SnpReport = {
    version,
    guestSvn: u32(b, 0x004),
    policy,
    familyId: b.slice(0x010, 0x020),
    imageId: b.slice(0x020, 0x030),
    vmpl,
    signatureAlgo,
    currentTcb: b.slice(0x038, 0x040),
    platformInfo: u64(b, 0x040),
    authorKeyEn: (signer & 1) !== 0,
    maskChipKey,
    signingKey: keySel === 0 ? 'VCEK' : 'VLEK',
    reportData: b.slice(0x050, 0x090),
    measurement: b.slice(0x090, 0x0c0),
    hostData: b.slice(0x0c0, 0x0e0),
    idKeyDigest: b.slice(0x0e0, 0x110),
    authorKeyDigest: b.slice(0x110, 0x140),
    reportId: b.slice(0x140, 0x160),
    reportIdMa: b.slice(0x160, 0x180),
    reportedTcb: b.slice(0x180, 0x188),
    ...(cpuid ? { cpuid } : {}),
    chipId: b.slice(0x1a0, 0x1e0),
    committedTcb: b.slice(0x1e0, 0x1e8),
    currentVersion: Object.freeze({ build: b[0x1e8]!, minor: b[0x1e9]!, major: b[0x1ea]! }),
    committedVersion: Object.freeze({ build: b[0x1ec]!, minor: b[0x1ed]!, major: b[0x1ee]! }),
    launchTcb: b.slice(0x1f0, 0x1f8),
    ...(launchMitVector !== undefined ? { launchMitVector, currentMitVector } : {}),
    signatureP1363: sig,
    signedBytes: b.slice(0, SNP_SIGNED_LENGTH),
    raw: b,
  };
  return report;
}

/** Product from the CPUID family/model bytes (v3+), or undefined for parts with no KDS chain here. */
export function productFromCpuid(family: number, model: number): SnpProduct | undefined {
  if (family === 0x19) {
    if (model <= 0x0f) return 'Milan';
    if ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf)) return 'Genoa';
  } else if (family === 0x1a && model <= 0x11) return 'Turin';
  return undefined;
}

/** Turin (and later) put FMC first and shift the rest; Milan/Genoa have bl, tee, 4 reserved, snp, ucode. */
export function decodeTcb(raw: Uint8Array, product: SnpProduct): SnpTcb {
  abytes(raw, 'tcb', 8);
  const copy = raw.slice();
  if (product === 'Turin')
    return Object.freeze({ fmc: copy[0]!, bootloader: copy[1]!, tee: copy[2]!, snp: copy[3]!, microcode: copy[7]!, raw: copy });
  return Object.freeze({ bootloader: copy[0]!, tee: copy[1]!, snp: copy[6]!, microcode: copy[7]!, raw: copy });
}

/** Inverse of decodeTcb, for the simulator and for policy floors written as components. */
export function encodeTcb(
  tcb: { bootloader: number; tee: number; snp: number; microcode: number; fmc?: number },
  product: SnpProduct,
): Uint8Array {
  const out = new Uint8Array(8);
  for (const [k, v] of Object.entries(tcb)) {
    if (k === 'raw') continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255)
      throw new RangeError(`"tcb.${k}" expected an integer 0..255`);
  }
  if (product === 'Turin') {
    out[0] = tcb.fmc ?? 0;
    out[1] = tcb.bootloader;
    out[2] = tcb.tee;
    out[3] = tcb.snp;
  } else {
    if (tcb.fmc !== undefined && tcb.fmc !== 0) throw new RangeError(`"tcb.fmc" exists on Turin only`);
    out[0] = tcb.bootloader;
    out[1] = tcb.tee;
    out[6] = tcb.snp;
  }
  out[7] = tcb.microcode;
  return out;
}

/** Names of set POLICY flags, for claims output. */
export function policyFlags(policy: bigint): Record<string, boolean | number> {
  return {
    ABI_MINOR: Number(policy & 0xffn),
    ABI_MAJOR: Number((policy >> 8n) & 0xffn),
    SMT: (policy & POLICY.SMT) !== 0n,
    MIGRATE_MA: (policy & POLICY.MIGRATE_MA) !== 0n,
    DEBUG: (policy & POLICY.DEBUG) !== 0n,
    SINGLE_SOCKET: (policy & POLICY.SINGLE_SOCKET) !== 0n,
    CXL_ALLOW: (policy & POLICY.CXL_ALLOW) !== 0n,
    MEM_AES_256_XTS: (policy & POLICY.MEM_AES_256_XTS) !== 0n,
    RAPL_DIS: (policy & POLICY.RAPL_DIS) !== 0n,
    CIPHERTEXT_HIDING_DRAM: (policy & POLICY.CIPHERTEXT_HIDING_DRAM) !== 0n,
    PAGE_SWAP_DISABLE: (policy & POLICY.PAGE_SWAP_DISABLE) !== 0n,
  };
}

export function platformInfoFlags(info: bigint): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const [k, bit] of Object.entries(PLATFORM_INFO)) out[k] = (info & bit) !== 0n;
  return out;
}
