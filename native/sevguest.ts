/**
 * SEV-SNP extended reports through /dev/sev-guest (SNP_GET_EXT_REPORT), for kernels without
 * configfs-tsm. The ioctl runs in the addon; this module checks arguments and the MSG_REPORT_RSP
 * envelope. Note the kernel wipes the VMPCK after a failed guest request, so callers should not
 * retry blindly.
 */
import type { DeviceBinding } from './binding.js';
import { requireBinding } from './binding.js';
import { NativeError, fromSystemError } from './errors.js';

export const SEV_GUEST_DEVICE = '/dev/sev-guest';
const REPORT_SIZE = 0x4a0;
const RSP_HEADER = 0x20;

export interface SnpExtReport {
  report: Uint8Array;
  /** The GHCB cert table (may be all zeros when the host supplies no certificates). */
  certs: Uint8Array;
}

export class SevGuestError extends NativeError {
  readonly fwError: number | undefined;
  readonly vmmError: number | undefined;
  constructor(code: string, message: string, opts: { cause?: unknown; errno?: number; syscall?: string; fwError?: number; vmmError?: number } = {}) {
    super(code, message, opts);
    this.fwError = opts.fwError;
    this.vmmError = opts.vmmError;
  }
}

export async function snpGetExtReport(
  reportData: Uint8Array,
  opts: { path?: string; vmpl?: number; certsLength?: number; binding?: DeviceBinding } = {},
): Promise<SnpExtReport> {
  if (!(reportData instanceof Uint8Array) || reportData.length !== 64) throw new RangeError('"reportData" expected Uint8Array of length 64');
  const vmpl = opts.vmpl ?? 0;
  if (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3) throw new RangeError(`"vmpl" expected an integer in 0..3, got ${String(vmpl)}`);
  const certsLength = opts.certsLength ?? 4 * 4096;
  if (!Number.isInteger(certsLength) || certsLength < 0 || certsLength > 1 << 20 || certsLength % 4096 !== 0) {
    throw new RangeError('"certsLength" expected a multiple of 4096 in 0..1048576');
  }
  const path = opts.path ?? SEV_GUEST_DEVICE;
  const b = opts.binding ?? requireBinding('the SEV-SNP guest device (/dev/sev-guest)');
  let r: { response: Uint8Array; certs: Uint8Array };
  try {
    r = await b.snpGetExtReport(path, reportData, vmpl, certsLength);
  } catch (e) {
    const se = fromSystemError(e);
    const raw = e as { fwError?: unknown; vmmError?: unknown };
    const extra = {
      cause: se,
      errno: se.errno,
      syscall: se.syscall,
      fwError: typeof raw.fwError === 'number' ? raw.fwError : undefined,
      vmmError: typeof raw.vmmError === 'number' ? raw.vmmError : undefined,
    };
    if (se.syscall === 'open' && (se.code === 'ENOENT' || se.code === 'ENODEV' || se.code === 'ENXIO')) {
      throw new SevGuestError('ERR_SEV_GUEST_UNAVAILABLE', `no SEV-SNP guest device at ${path}: not an SEV-SNP guest (or the sev-guest driver is not loaded)`, extra);
    }
    throw new SevGuestError('ERR_SEV_GUEST_IOCTL', `SNP_GET_EXT_REPORT on ${path} failed: ${se.message}`, extra);
  }
  const resp = r.response;
  if (resp.length < RSP_HEADER + REPORT_SIZE) throw new SevGuestError('ERR_SEV_GUEST_RESPONSE_INVALID', 'MSG_REPORT_RSP too short');
  const dv = new DataView(resp.buffer, resp.byteOffset, resp.byteLength);
  const status = dv.getUint32(0, true);
  const size = dv.getUint32(4, true);
  if (status !== 0) throw new SevGuestError('ERR_SEV_GUEST_RESPONSE_INVALID', `MSG_REPORT_RSP status 0x${status.toString(16)}`, { fwError: status });
  if (size !== REPORT_SIZE) throw new SevGuestError('ERR_SEV_GUEST_RESPONSE_INVALID', `MSG_REPORT_RSP report_size ${size}, expected ${REPORT_SIZE}`);
  return { report: new Uint8Array(resp.subarray(RSP_HEADER, RSP_HEADER + REPORT_SIZE)), certs: new Uint8Array(r.certs) };
}
