/**
 * SEV-SNP reports through configfs-tsm (Linux >= 6.7): make a report entry, write the 64-byte inblob,
 * read outblob and auxblob, check the provider and that no one else wrote to the entry meanwhile.
 * Pure TypeScript; the root folder and the file operations are injectable so it can run on a fake
 * tree.
 */
import * as fsp from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { NativeError } from './errors.js';

export const TSM_REPORT_ROOT = '/sys/kernel/config/tsm/report';
/** outblob from sev_guest is the bare ATTESTATION_REPORT (the kernel strips MSG_REPORT_RSP). */
export const SNP_REPORT_SIZE = 0x4a0;
/** The GHCB cert table is bounded by SEV_FW_BLOB_MAX_SIZE in the kernel; refuse anything larger. */
const AUXBLOB_MAX = 1 << 20;

/** The file operations used; node:fs/promises by default. */
export interface TsmFs {
  mkdir(path: string): Promise<unknown>;
  rmdir(path: string): Promise<unknown>;
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array | string): Promise<unknown>;
}

export interface TsmReportOptions {
  /** Default /sys/kernel/config/tsm/report. */
  root?: string;
  /** Entry name; default a random UUID. */
  name?: string;
  /** VMPL to request the report for; must be >= privlevel_floor. Default: leave the kernel's value. */
  privlevel?: number;
  fs?: TsmFs;
}

export interface TsmReport {
  /** The 1184-byte ATTESTATION_REPORT. */
  report: Uint8Array;
  /** The GHCB cert table, or null when the host supplied no certificates. */
  auxblob: Uint8Array | null;
  provider: string;
  generation: number;
}

const defaultFs: TsmFs = {
  mkdir: (p) => fsp.mkdir(p),
  rmdir: (p) => fsp.rmdir(p),
  readFile: (p) => fsp.readFile(p),
  writeFile: (p, d) => fsp.writeFile(p, d),
};

function text(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1').trim();
}

function parseGeneration(b: Uint8Array): number {
  const s = text(b);
  if (!/^[0-9]{1,15}$/.test(s)) throw new NativeError('ERR_TSM_GENERATION', `configfs-tsm generation is not a number: ${JSON.stringify(s.slice(0, 20))}`);
  return Number(s);
}

function sysErr(e: unknown): { code?: string; errno?: number; syscall?: string } {
  return (e ?? {}) as { code?: string; errno?: number; syscall?: string };
}

/**
 * Gets a SEV-SNP report whose REPORT_DATA is `reportData` (exactly 64 bytes). The report is not
 * parsed or verified here; hand it to the attestation module.
 */
export async function tsmSevReport(reportData: Uint8Array, opts: TsmReportOptions = {}): Promise<TsmReport> {
  if (!(reportData instanceof Uint8Array) || reportData.length !== 64) {
    throw new RangeError(`"reportData" expected Uint8Array of length 64, got ${reportData instanceof Uint8Array ? `length=${reportData.length}` : typeof reportData}`);
  }
  if (opts.privlevel !== undefined && (!Number.isInteger(opts.privlevel) || opts.privlevel < 0 || opts.privlevel > 3)) {
    throw new RangeError(`"privlevel" expected an integer in 0..3, got ${String(opts.privlevel)}`);
  }
  const name = opts.name ?? randomUUID();
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name) || name === '.' || name === '..') throw new RangeError('"name" expected 1-64 characters of [A-Za-z0-9._-]');
  const fs = opts.fs ?? defaultFs;
  const root = opts.root ?? TSM_REPORT_ROOT;
  const dir = join(root, name);
  try {
    await fs.mkdir(dir);
  } catch (e) {
    const se = sysErr(e);
    if (se.code === 'ENOENT' || se.code === 'ENOTDIR') {
      throw new NativeError('ERR_TSM_UNAVAILABLE', `configfs-tsm is not available at ${root} (needs Linux >= 6.7 with configfs mounted and a TSM provider)`, { cause: e, errno: se.errno, syscall: se.syscall });
    }
    throw new NativeError(se.code ?? 'ERR_TSM_UNAVAILABLE', `cannot create the report entry ${dir}: ${(e as Error).message}`, { cause: e, errno: se.errno, syscall: se.syscall });
  }
  try {
    const provider = text(await fs.readFile(join(dir, 'provider')));
    if (provider !== 'sev_guest') {
      throw new NativeError('ERR_TSM_PROVIDER', `configfs-tsm provider is ${JSON.stringify(provider.slice(0, 32))}, expected "sev_guest"`);
    }
    if (opts.privlevel !== undefined) {
      const floorText = text(await fs.readFile(join(dir, 'privlevel_floor')));
      if (!/^[0-9]$/.test(floorText)) throw new NativeError('ERR_TSM_PRIVLEVEL', 'configfs-tsm privlevel_floor is not a digit');
      if (opts.privlevel < Number(floorText)) {
        throw new NativeError('ERR_TSM_PRIVLEVEL', `privlevel ${opts.privlevel} is below privlevel_floor ${floorText}`);
      }
      await fs.writeFile(join(dir, 'privlevel'), `${opts.privlevel}\n`);
    }
    const g0 = parseGeneration(await fs.readFile(join(dir, 'generation')));
    await fs.writeFile(join(dir, 'inblob'), reportData);
    const report = new Uint8Array(await fs.readFile(join(dir, 'outblob')));
    let auxblob: Uint8Array | null = null;
    try {
      const a = await fs.readFile(join(dir, 'auxblob'));
      if (a.length > AUXBLOB_MAX) throw new NativeError('ERR_TSM_OUTBLOB_INVALID', `auxblob of ${a.length} bytes is too large`);
      auxblob = a.length > 0 ? new Uint8Array(a) : null;
    } catch (e) {
      if (e instanceof NativeError) throw e;
      if (sysErr(e).code !== 'ENOENT') throw e;
    }
    const g1 = parseGeneration(await fs.readFile(join(dir, 'generation')));
    // Our inblob write is the one expected change; anything else means another writer raced us
    // and the outblob may answer their inblob.
    if (g1 !== g0 + 1) {
      throw new NativeError('ERR_TSM_GENERATION', `configfs-tsm generation moved from ${g0} to ${g1}; another writer used the entry`);
    }
    if (report.length !== SNP_REPORT_SIZE) {
      throw new NativeError('ERR_TSM_OUTBLOB_INVALID', `outblob is ${report.length} bytes, expected ${SNP_REPORT_SIZE}`);
    }
    return { report, auxblob, provider, generation: g1 };
  } finally {
    await fs.rmdir(dir).catch(() => undefined);
  }
}
