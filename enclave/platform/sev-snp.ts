/**
 * The real SEV-SNP platform: configfs-tsm (Linux >= 6.7) when present, else `/dev/sev-guest`
 * through the native addon. Evidence is `report || certificate table` (the table from `auxblob`
 * or the extended report; empty when the host supplies no certificates, and a verifier then needs
 * the VCEK from elsewhere).
 *
 * REPORT_DATA binds public key, user data and nonce as documented in `sev-snp-binding.ts`.
 * SNP has no PCRs (see sim-snp.ts); randomness comes from the kernel (RDRAND-seeded in the guest).
 */
import { randomBytes } from 'node:crypto';
import { access, constants, mkdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ToolkitError } from '../../attestation/errors.js';
import { requireBinding } from '../../native/binding.js';
import { platformUnavailable } from './nitro.js';
import { snpReportData } from '../../attestation/sevsnp/binding.js';
import { noPcrs } from './sim-snp.js';
import { checkAttestOptions, checkRandomLength, type AttestOptions, type PcrDescription, type Platform } from './types.js';

export const DEFAULT_TSM_REPORT_DIR = '/sys/kernel/config/tsm/report';
export const DEFAULT_SEV_GUEST_PATH = '/dev/sev-guest';
const SNP_REPORT_SIZE = 0x4a0;
/** The kernel's SEV_FW_BLOB_MAX_SIZE bound on the certificate blob. */
const MAX_AUXBLOB = 0x4000 * 4;
/** Page-aligned room for VCEK + ASK + ARK (about 5 KB in practice). */
const CERTS_BUFFER = 0x4000;

/** Extended report through the ioctl (the native addon provides one). */
export type SevGuestExtReport = (reportData: Uint8Array, vmpl: number) => Promise<{ report: Uint8Array; certs: Uint8Array }>;

export interface SevSnpPlatformOptions {
  tsmReportDir?: string;
  sevGuestPath?: string;
  /** VMPL to request the report for (default 0; an SVSM guest runs at 1 or more). */
  vmpl?: number;
  /** Injectable ioctl path; default: the native addon's. */
  sevGuest?: (devicePath: string) => Promise<SevGuestExtReport>;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** Extended report through the addon's SNP_GET_EXT_REPORT; parses MSG_REPORT_RSP (sev-snp.md §4.1). */
async function defaultSevGuest(devicePath: string): Promise<SevGuestExtReport> {
  return async (reportData, vmpl) => {
    const b = requireBinding('the SEV-SNP guest device (/dev/sev-guest)');
    const { response, certs } = await b.snpGetExtReport(devicePath, reportData, vmpl, CERTS_BUFFER);
    if (!(response instanceof Uint8Array) || response.length < 0x20 + SNP_REPORT_SIZE)
      throw snpDeviceError('MSG_REPORT_RSP is too short', 'response');
    const dv = new DataView(response.buffer, response.byteOffset, response.byteLength);
    const status = dv.getUint32(0, true);
    if (status !== 0) throw snpDeviceError(`SEV-SNP firmware status 0x${status.toString(16)}`, 'firmware_status');
    if (dv.getUint32(4, true) !== SNP_REPORT_SIZE) throw snpDeviceError('MSG_REPORT_RSP report_size is not 0x4a0', 'response');
    return { report: response.slice(0x20, 0x20 + SNP_REPORT_SIZE), certs: certs instanceof Uint8Array ? certs : new Uint8Array(0) };
  };
}

function snpDeviceError(message: string, reason: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_PLATFORM_UNAVAILABLE', message, cause === undefined ? { reason } : { reason, cause });
}

/** One report through configfs-tsm, following Documentation/ABI/testing/configfs-tsm-report. */
async function tsmReport(dir: string, reportData: Uint8Array, vmpl: number): Promise<{ report: Uint8Array; certs: Uint8Array }> {
  const entry = join(dir, `enclavekit-${process.pid}-${randomBytes(6).toString('hex')}`);
  await mkdir(entry);
  try {
    const provider = (await readFile(join(entry, 'provider'), 'utf8')).trim();
    if (provider !== 'sev_guest') throw snpDeviceError(`configfs-tsm provider is "${provider}", not sev_guest`, 'provider');
    const gen0 = Number.parseInt(await readFile(join(entry, 'generation'), 'utf8'), 10);
    let writes = 1;
    if (vmpl !== 0) {
      await writeFile(join(entry, 'privlevel'), `${vmpl}\n`);
      writes++;
    }
    await writeFile(join(entry, 'inblob'), reportData);
    const report = new Uint8Array(await readFile(join(entry, 'outblob')));
    let certs: Uint8Array = new Uint8Array(0);
    try {
      const st = await stat(join(entry, 'auxblob'));
      if (st.size > MAX_AUXBLOB) throw snpDeviceError('configfs-tsm auxblob is too large', 'auxblob');
      certs = new Uint8Array(await readFile(join(entry, 'auxblob')));
    } catch (e) {
      if (e instanceof ToolkitError) throw e; // absent auxblob: the host supplies no certificates
    }
    const gen1 = Number.parseInt(await readFile(join(entry, 'generation'), 'utf8'), 10);
    // Another writer to the same entry would make outblob answer someone else's inblob.
    if (!Number.isInteger(gen0) || gen1 !== gen0 + writes) throw snpDeviceError('configfs-tsm entry changed concurrently', 'concurrent');
    if (report.length !== SNP_REPORT_SIZE) throw snpDeviceError(`configfs-tsm outblob has ${report.length} bytes, expected ${SNP_REPORT_SIZE}`, 'outblob');
    return { report, certs };
  } finally {
    await rmdir(entry).catch(() => undefined);
  }
}

export class SevSnpPlatform implements Platform {
  readonly kind = 'sev-snp' as const;
  readonly evidenceFormat = 'sev-snp' as const;
  readonly #get: (reportData: Uint8Array) => Promise<{ report: Uint8Array; certs: Uint8Array }>;
  #closed = false;

  private constructor(get: (reportData: Uint8Array) => Promise<{ report: Uint8Array; certs: Uint8Array }>) {
    this.#get = get;
  }

  static async open(options: SevSnpPlatformOptions = {}): Promise<SevSnpPlatform> {
    const vmpl = options.vmpl ?? 0;
    if (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3) throw new RangeError('"vmpl" expected an integer in 0..3');
    const tsm = options.tsmReportDir ?? DEFAULT_TSM_REPORT_DIR;
    if (await exists(tsm)) return new SevSnpPlatform((rd) => tsmReport(tsm, rd, vmpl));
    const dev = options.sevGuestPath ?? DEFAULT_SEV_GUEST_PATH;
    if (!(await exists(dev)))
      throw platformUnavailable(`neither ${tsm} nor ${dev} exists: not running in an SEV-SNP guest`, 'no_device');
    let ext: SevGuestExtReport;
    try {
      ext = await (options.sevGuest ?? defaultSevGuest)(dev);
    } catch (e) {
      if (e instanceof ToolkitError) throw e;
      throw platformUnavailable(`cannot open ${dev}`, 'open', e);
    }
    return new SevSnpPlatform((rd) => ext(rd, vmpl));
  }

  async attest(options?: AttestOptions): Promise<Uint8Array> {
    if (this.#closed) throw platformUnavailable('platform is closed', 'closed');
    const o = checkAttestOptions(options);
    let r: { report: Uint8Array; certs: Uint8Array };
    try {
      r = await this.#get(snpReportData(o));
    } catch (e) {
      if (e instanceof ToolkitError) throw e;
      throw snpDeviceError('SEV-SNP report request failed', 'device', e);
    }
    if (!(r.report instanceof Uint8Array) || r.report.length !== SNP_REPORT_SIZE)
      throw snpDeviceError('SEV-SNP device returned a report of the wrong size', 'outblob');
    const out = new Uint8Array(r.report.length + r.certs.length);
    out.set(r.report, 0);
    out.set(r.certs, r.report.length);
    return out;
  }

  async describePcr(_index: number): Promise<PcrDescription> {
    throw noPcrs();
  }

  async extendPcr(_index: number, _data: Uint8Array): Promise<Uint8Array> {
    throw noPcrs();
  }

  async lockPcr(_index: number): Promise<void> {
    throw noPcrs();
  }

  async lockPcrs(_range: number): Promise<void> {
    throw noPcrs();
  }

  async random(n: number): Promise<Uint8Array> {
    return new Uint8Array(randomBytes(checkRandomLength(n)));
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
