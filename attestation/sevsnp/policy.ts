/**
 * SEV-SNP policy (the "validate" step): checks a verified report's claims against what the caller
 * expects. Fails closed: unsafe guest settings (DEBUG, a migration agent) are refused unless allowed,
 * every expected value that is given must match, and all violations are reported at once in one
 * AttestationPolicyError with fields named by the ABI spec (MEASUREMENT, REPORT_DATA, HOST_DATA...).
 * A malformed policy (wrong hex length, unknown key) is `ERR_POLICY_INVALID`, never a silent skip.
 */
import { AttestationError, AttestationPolicyError, type PolicyViolation } from '../errors.js';
import { equalBytes, fromHex, toHex } from '../bytes.js';
import { decodeTcb, PLATFORM_INFO, POLICY, type SnpProduct, type SnpReport } from './abi.js';

type Bytes = string | Uint8Array;

export interface SnpTcbFloor {
  bootloader?: number;
  tee?: number;
  snp?: number;
  microcode?: number;
  /** Turin only. */
  fmc?: number;
}

export interface SnpPolicy {
  /** One expected MEASUREMENT (48 bytes) or a list of accepted ones. */
  measurement?: Bytes | readonly Bytes[];
  /** Up to 64 bytes; a shorter value must match the start of REPORT_DATA and the rest must be zero. */
  reportData?: Bytes;
  hostData?: Bytes;
  familyId?: Bytes;
  imageId?: Bytes;
  chipId?: Bytes;
  /** Accepted ID_KEY_DIGEST values (SHA-384 of the ID key in SEV ABI format). */
  idKeyDigests?: readonly Bytes[];
  /** Accepted AUTHOR_KEY_DIGEST values; requires AUTHOR_KEY_EN. */
  authorKeyDigests?: readonly Bytes[];
  /** Component-wise floors on REPORTED_TCB (and LAUNCH_TCB with minLaunchTcb), product layout. */
  minTcb?: SnpTcbFloor;
  minLaunchTcb?: SnpTcbFloor;
  /** Minimum CURRENT firmware version; `build` compares only when major.minor are equal to the floor. */
  minFirmware?: { major: number; minor: number; build?: number };
  /** Minimum CURRENT_BUILD regardless of version. */
  minBuild?: number;
  minGuestSvn?: number;
  /** Accepted VMPL values (one or a list). Not checked when absent: SVSM guests run at VMPL 1+. */
  vmpl?: number | readonly number[];
  guestPolicy?: {
    /** DEBUG is refused unless true. */
    allowDebug?: boolean;
    /** MIGRATE_MA is refused unless true. */
    allowMigrationAgent?: boolean;
    /** SMT is allowed unless false (most clouds enable it). */
    allowSmt?: boolean;
    requireSingleSocket?: boolean;
    requireMemAes256Xts?: boolean;
    requireRaplDisable?: boolean;
    requireCiphertextHiding?: boolean;
    requirePageSwapDisable?: boolean;
    /** Minimum ABI_MAJOR.ABI_MINOR the guest demanded. */
    minAbi?: { major: number; minor: number };
  };
  platformInfo?: {
    allowSmt?: boolean;
    allowTsme?: boolean;
    allowTio?: boolean;
    requireEcc?: boolean;
    requireRaplDisable?: boolean;
    requireCiphertextHiding?: boolean;
    requireAliasCheckComplete?: boolean;
  };
  /** Require COMMITTED_TCB == CURRENT_TCB and committed == current firmware version (off by default:
   * real Azure/AWS reports run provisional microcode). */
  requireCommittedEqualsCurrent?: boolean;
  /** v5: bits that must be set in LAUNCH_MIT_VECTOR / CURRENT_MIT_VECTOR (hex or decimal string, or bigint). */
  launchMitVector?: string | bigint;
  currentMitVector?: string | bigint;
}

function policyError(message: string): AttestationError {
  return new AttestationError('ERR_POLICY_INVALID', `SEV-SNP policy: ${message}`, { reason: 'snp_policy' });
}

function bytesOf(v: unknown, name: string, len: number, allowShorter = false): Uint8Array {
  let b: Uint8Array;
  if (v instanceof Uint8Array) b = v;
  else if (typeof v === 'string') {
    try {
      b = fromHex(v, name);
    } catch {
      throw policyError(`${name} is not hex`);
    }
  } else throw policyError(`${name} must be hex or bytes`);
  if (allowShorter ? b.length === 0 || b.length > len : b.length !== len)
    throw policyError(`${name} must be ${allowShorter ? `1..${len}` : len} bytes, got ${b.length}`);
  return b;
}

const isInt = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;

function checkKeys(obj: unknown, allowed: readonly string[], where: string): Record<string, unknown> {
  // A Map (or Date, ...) has no own keys to read: accepting it would silently check nothing.
  const proto = typeof obj === 'object' && obj !== null ? Object.getPrototypeOf(obj) : undefined;
  if (proto !== Object.prototype && proto !== null) throw policyError(`${where} must be a plain object`);
  for (const k of Object.keys(obj as object)) if (!allowed.includes(k)) throw policyError(`unknown key "${where === 'policy' ? '' : where + '.'}${k}"`);
  return obj as Record<string, unknown>;
}

const TCB_KEYS = ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const;
const GUEST_KEYS = [
  'allowDebug', 'allowMigrationAgent', 'allowSmt', 'requireSingleSocket', 'requireMemAes256Xts',
  'requireRaplDisable', 'requireCiphertextHiding', 'requirePageSwapDisable', 'minAbi',
] as const;
const PLATFORM_KEYS = [
  'allowSmt', 'allowTsme', 'allowTio', 'requireEcc', 'requireRaplDisable', 'requireCiphertextHiding',
  'requireAliasCheckComplete',
] as const;
const POLICY_KEYS = [
  'measurement', 'reportData', 'hostData', 'familyId', 'imageId', 'chipId', 'idKeyDigests', 'authorKeyDigests',
  'minTcb', 'minLaunchTcb', 'minFirmware', 'minBuild', 'minGuestSvn', 'vmpl', 'guestPolicy', 'platformInfo',
  'requireCommittedEqualsCurrent', 'launchMitVector', 'currentMitVector',
] as const;

function mitVector(v: unknown, name: string): bigint {
  if (typeof v === 'bigint' && v >= 0n && v < 1n << 64n) return v;
  if (typeof v === 'string' && /^(0x[0-9a-fA-F]{1,16}|[0-9]{1,20})$/.test(v)) {
    const n = BigInt(v);
    if (n < 1n << 64n) return n;
  }
  throw policyError(`${name} must be a 64-bit unsigned value (hex "0x..." or decimal string)`);
}

interface Normalised {
  measurement?: Uint8Array[];
  reportData?: Uint8Array;
  hostData?: Uint8Array;
  familyId?: Uint8Array;
  imageId?: Uint8Array;
  chipId?: Uint8Array;
  idKeyDigests?: Uint8Array[];
  authorKeyDigests?: Uint8Array[];
  p: SnpPolicy;
}

/**
 * Validate a policy object (from code or from JSON) strictly: unknown keys, wrong types and wrong
 * lengths are `ERR_POLICY_INVALID`. Returns the same policy, frozen.
 */
export function parseSnpPolicy(input: unknown): SnpPolicy {
  normalise(input);
  return input as SnpPolicy;
}

function normalise(input: unknown): Normalised {
  const o = checkKeys(input ?? {}, POLICY_KEYS, 'policy');
  const n: Normalised = { p: o as SnpPolicy };
  if (o.measurement !== undefined) {
    const list = Array.isArray(o.measurement) ? (o.measurement as unknown[]) : [o.measurement];
    if (list.length === 0) throw policyError('measurement list is empty (nothing would verify)');
    n.measurement = list.map((m, i) => bytesOf(m, `measurement[${i}]`, 48));
  }
  if (o.reportData !== undefined) n.reportData = bytesOf(o.reportData, 'reportData', 64, true);
  if (o.hostData !== undefined) n.hostData = bytesOf(o.hostData, 'hostData', 32);
  if (o.familyId !== undefined) n.familyId = bytesOf(o.familyId, 'familyId', 16);
  if (o.imageId !== undefined) n.imageId = bytesOf(o.imageId, 'imageId', 16);
  if (o.chipId !== undefined) n.chipId = bytesOf(o.chipId, 'chipId', 64);
  for (const k of ['idKeyDigests', 'authorKeyDigests'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    if (!Array.isArray(v) || v.length === 0) throw policyError(`${k} must be a non-empty list`);
    n[k] = v.map((x, i) => bytesOf(x, `${k}[${i}]`, 48));
  }
  for (const k of ['minTcb', 'minLaunchTcb'] as const) {
    if (o[k] === undefined) continue;
    const t = checkKeys(o[k], TCB_KEYS, k);
    for (const [c, v] of Object.entries(t)) if (!isInt(v, 255)) throw policyError(`${k}.${c} must be an integer 0..255`);
  }
  if (o.minFirmware !== undefined) {
    const f = checkKeys(o.minFirmware, ['major', 'minor', 'build'], 'minFirmware');
    if (!isInt(f.major, 255) || !isInt(f.minor, 255) || (f.build !== undefined && !isInt(f.build, 255)))
      throw policyError('minFirmware needs integer major, minor (and optional build) 0..255');
  }
  if (o.minBuild !== undefined && !isInt(o.minBuild, 255)) throw policyError('minBuild must be an integer 0..255');
  if (o.minGuestSvn !== undefined && !isInt(o.minGuestSvn, 0xffffffff)) throw policyError('minGuestSvn must be a u32');
  if (o.vmpl !== undefined) {
    const list = Array.isArray(o.vmpl) ? (o.vmpl as unknown[]) : [o.vmpl];
    if (list.length === 0 || !list.every((v) => isInt(v, 3))) throw policyError('vmpl must be 0..3 or a non-empty list of them');
  }
  if (o.guestPolicy !== undefined) {
    const g = checkKeys(o.guestPolicy, GUEST_KEYS, 'guestPolicy');
    for (const [k, v] of Object.entries(g)) {
      if (k === 'minAbi') {
        const a = checkKeys(v, ['major', 'minor'], 'guestPolicy.minAbi');
        if (!isInt(a.major, 255) || !isInt(a.minor, 255)) throw policyError('guestPolicy.minAbi needs major and minor 0..255');
      } else if (typeof v !== 'boolean') throw policyError(`guestPolicy.${k} must be a boolean`);
    }
  }
  if (o.platformInfo !== undefined) {
    const g = checkKeys(o.platformInfo, PLATFORM_KEYS, 'platformInfo');
    for (const [k, v] of Object.entries(g)) if (typeof v !== 'boolean') throw policyError(`platformInfo.${k} must be a boolean`);
  }
  if (o.requireCommittedEqualsCurrent !== undefined && typeof o.requireCommittedEqualsCurrent !== 'boolean')
    throw policyError('requireCommittedEqualsCurrent must be a boolean');
  if (o.launchMitVector !== undefined) mitVector(o.launchMitVector, 'launchMitVector');
  if (o.currentMitVector !== undefined) mitVector(o.currentMitVector, 'currentMitVector');
  return n;
}

const fmtTcb = (t: Record<string, number | undefined>) =>
  TCB_KEYS.filter((k) => t[k] !== undefined).map((k) => `${k}=${t[k]}`).join(',');

/**
 * Check `report` (already verified) against `policy`. Throws one AttestationPolicyError listing every
 * violation, or returns normally.
 */
export function checkSnpPolicy(report: SnpReport, product: SnpProduct, policy: SnpPolicy | undefined): void {
  const n = normalise(policy);
  const p = n.p;
  const v: PolicyViolation[] = [];
  const bad = (field: string, expected: string, actual: string) => v.push({ field, expected, actual });

  if (n.measurement && !n.measurement.some((m) => equalBytes(m, report.measurement)))
    bad('MEASUREMENT', n.measurement.map(toHex).join(' | '), toHex(report.measurement));
  if (n.reportData) {
    const want = new Uint8Array(64);
    want.set(n.reportData);
    if (!equalBytes(want, report.reportData)) bad('REPORT_DATA', toHex(want), toHex(report.reportData));
  }
  const verbatim: [keyof Normalised, string, Uint8Array][] = [
    ['hostData', 'HOST_DATA', report.hostData],
    ['familyId', 'FAMILY_ID', report.familyId],
    ['imageId', 'IMAGE_ID', report.imageId],
    ['chipId', 'CHIP_ID', report.chipId],
  ];
  for (const [k, field, actual] of verbatim) {
    const want = n[k] as Uint8Array | undefined;
    if (want && !equalBytes(want, actual)) bad(field, toHex(want), toHex(actual));
  }
  if (n.idKeyDigests && !n.idKeyDigests.some((d) => equalBytes(d, report.idKeyDigest)))
    bad('ID_KEY_DIGEST', n.idKeyDigests.map(toHex).join(' | '), toHex(report.idKeyDigest));
  if (n.authorKeyDigests) {
    if (!report.authorKeyEn) bad('AUTHOR_KEY_EN', '1', '0');
    else if (!n.authorKeyDigests.some((d) => equalBytes(d, report.authorKeyDigest)))
      bad('AUTHOR_KEY_DIGEST', n.authorKeyDigests.map(toHex).join(' | '), toHex(report.authorKeyDigest));
  }

  const floor = (name: string, raw: Uint8Array, min: SnpTcbFloor | undefined) => {
    if (!min) return;
    const t = decodeTcb(raw, product) as unknown as Record<string, number | undefined>;
    if (min.fmc !== undefined && product !== 'Turin') {
      bad(`${name}.fmc`, `>= ${min.fmc}`, `absent on ${product}`);
    }
    for (const k of TCB_KEYS) {
      const want = min[k];
      const got = t[k];
      if (want === undefined || got === undefined) continue;
      if (got < want) bad(`${name}.${k}`, `>= ${want}`, String(got));
    }
  };
  floor('REPORTED_TCB', report.reportedTcb, p.minTcb);
  floor('LAUNCH_TCB', report.launchTcb, p.minLaunchTcb);

  const cv = report.currentVersion;
  const ver = `${cv.major}.${cv.minor}.${cv.build}`;
  if (p.minFirmware) {
    const f = p.minFirmware;
    const cmp = cv.major !== f.major ? cv.major - f.major : cv.minor !== f.minor ? cv.minor - f.minor : cv.build - (f.build ?? 0);
    if (cmp < 0) bad('CURRENT_VERSION', `>= ${f.major}.${f.minor}.${f.build ?? 0}`, ver);
  }
  if (p.minBuild !== undefined && cv.build < p.minBuild) bad('CURRENT_BUILD', `>= ${p.minBuild}`, String(cv.build));
  if (p.minGuestSvn !== undefined && report.guestSvn < p.minGuestSvn) bad('GUEST_SVN', `>= ${p.minGuestSvn}`, String(report.guestSvn));
  if (p.vmpl !== undefined) {
    const list = typeof p.vmpl === 'number' ? [p.vmpl] : p.vmpl;
    if (!list.includes(report.vmpl)) bad('VMPL', list.join(' | '), String(report.vmpl));
  }

  const gp = p.guestPolicy ?? {};
  const pol = report.policy;
  const has = (bit: bigint) => (pol & bit) !== 0n;
  if (!gp.allowDebug && has(POLICY.DEBUG)) bad('POLICY.DEBUG', '0', '1');
  if (!gp.allowMigrationAgent && has(POLICY.MIGRATE_MA)) bad('POLICY.MIGRATE_MA', '0', '1');
  if (gp.allowSmt === false && has(POLICY.SMT)) bad('POLICY.SMT', '0', '1');
  const req: [boolean | undefined, bigint, string][] = [
    [gp.requireSingleSocket, POLICY.SINGLE_SOCKET, 'POLICY.SINGLE_SOCKET'],
    [gp.requireMemAes256Xts, POLICY.MEM_AES_256_XTS, 'POLICY.MEM_AES_256_XTS'],
    [gp.requireRaplDisable, POLICY.RAPL_DIS, 'POLICY.RAPL_DIS'],
    [gp.requireCiphertextHiding, POLICY.CIPHERTEXT_HIDING_DRAM, 'POLICY.CIPHERTEXT_HIDING_DRAM'],
    [gp.requirePageSwapDisable, POLICY.PAGE_SWAP_DISABLE, 'POLICY.PAGE_SWAP_DISABLE'],
  ];
  for (const [on, bit, field] of req) if (on && !has(bit)) bad(field, '1', '0');
  if (gp.minAbi) {
    const maj = Number((pol >> 8n) & 0xffn);
    const min = Number(pol & 0xffn);
    if (maj < gp.minAbi.major || (maj === gp.minAbi.major && min < gp.minAbi.minor))
      bad('POLICY.ABI', `>= ${gp.minAbi.major}.${gp.minAbi.minor}`, `${maj}.${min}`);
  }

  const pi = p.platformInfo ?? {};
  const info = report.platformInfo;
  const hasI = (bit: bigint) => (info & bit) !== 0n;
  if (pi.allowSmt === false && hasI(PLATFORM_INFO.SMT_EN)) bad('PLATFORM_INFO.SMT_EN', '0', '1');
  if (pi.allowTsme === false && hasI(PLATFORM_INFO.TSME_EN)) bad('PLATFORM_INFO.TSME_EN', '0', '1');
  if (pi.allowTio === false && hasI(PLATFORM_INFO.SEV_TIO_EN)) bad('PLATFORM_INFO.SEV_TIO_EN', '0', '1');
  const reqI: [boolean | undefined, bigint, string][] = [
    [pi.requireEcc, PLATFORM_INFO.ECC_EN, 'PLATFORM_INFO.ECC_EN'],
    [pi.requireRaplDisable, PLATFORM_INFO.RAPL_DIS, 'PLATFORM_INFO.RAPL_DIS'],
    [pi.requireCiphertextHiding, PLATFORM_INFO.CIPHERTEXT_HIDING_DRAM_EN, 'PLATFORM_INFO.CIPHERTEXT_HIDING_DRAM_EN'],
    [pi.requireAliasCheckComplete, PLATFORM_INFO.ALIAS_CHECK_COMPLETE, 'PLATFORM_INFO.ALIAS_CHECK_COMPLETE'],
  ];
  for (const [on, bit, field] of reqI) if (on && !hasI(bit)) bad(field, '1', '0');

  if (p.requireCommittedEqualsCurrent) {
    if (!equalBytes(report.committedTcb, report.currentTcb))
      bad('COMMITTED_TCB', fmtTcb(decodeTcb(report.currentTcb, product) as never), fmtTcb(decodeTcb(report.committedTcb, product) as never));
    const m = report.committedVersion;
    if (m.major !== cv.major || m.minor !== cv.minor || m.build !== cv.build)
      bad('COMMITTED_VERSION', ver, `${m.major}.${m.minor}.${m.build}`);
  }
  for (const [k, field, actual] of [
    ['launchMitVector', 'LAUNCH_MIT_VECTOR', report.launchMitVector],
    ['currentMitVector', 'CURRENT_MIT_VECTOR', report.currentMitVector],
  ] as const) {
    if (p[k] === undefined) continue;
    const want = mitVector(p[k], k);
    if (actual === undefined) bad(field, `0x${want.toString(16)} (report v5+)`, `absent (v${report.version})`);
    else if ((actual & want) !== want) bad(field, `has bits 0x${want.toString(16)}`, `0x${actual.toString(16)}`);
  }

  if (v.length > 0) throw new AttestationPolicyError(v);
}
