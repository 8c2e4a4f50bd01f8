/**
 * The real Nitro platform: the Nitro Secure Module (`/dev/nsm`) through the native addon.
 *
 * The NSM client is injectable (`openNsm`), so this class is tested without hardware; on a machine
 * without `/dev/nsm` opening fails with ERR_PLATFORM_UNAVAILABLE (reason `no_device`), never later
 * and never with an errno leaking from deep inside.
 */
import { access, constants } from 'node:fs/promises';
import { ToolkitError } from '../../attestation/errors.js';
import { openNsm } from '../../native/nsm.js';
import { nsmError } from './pcr-bank.js';
import {
  checkAttestOptions,
  checkPcrIndex,
  checkRandomLength,
  PCR_COUNT,
  type AttestOptions,
  type PcrDescription,
  type Platform,
} from './types.js';

/** What this platform needs from an NSM client (native/nsm.ts provides one over the ioctl). */
export interface NsmClientLike {
  attestation(request: { userData?: Uint8Array | null; nonce?: Uint8Array | null; publicKey?: Uint8Array | null }): Promise<Uint8Array>;
  describePcr(index: number): Promise<{ lock: boolean; data: Uint8Array }>;
  extendPcr(index: number, data: Uint8Array): Promise<Uint8Array>;
  lockPcr(index: number): Promise<void>;
  lockPcrs(range: number): Promise<void>;
  getRandom(): Promise<Uint8Array>;
  close?(): void | Promise<void>;
}

export interface NitroPlatformOptions {
  /** Default `/dev/nsm`. */
  devicePath?: string;
  /** Open an NSM client on the device; default: the native addon's. */
  openNsm?: (devicePath: string) => Promise<NsmClientLike>;
}

export const DEFAULT_NSM_PATH = '/dev/nsm';

export function platformUnavailable(message: string, reason: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_PLATFORM_UNAVAILABLE', message, cause === undefined ? { reason } : { reason, cause });
}

async function defaultOpenNsm(devicePath: string): Promise<NsmClientLike> {
  // The client is cheap and lazy: the addon is first needed at the first request, so a missing
  // addon shows up there as ERR_NSM (reason ERR_NATIVE_UNAVAILABLE) rather than at import.
  return openNsm({ path: devicePath });
}

export class NitroPlatform implements Platform {
  readonly kind = 'nitro' as const;
  readonly evidenceFormat = 'nitro' as const;
  readonly #nsm: NsmClientLike;
  #closed = false;

  private constructor(nsm: NsmClientLike) {
    this.#nsm = nsm;
  }

  static async open(options: NitroPlatformOptions = {}): Promise<NitroPlatform> {
    const path = options.devicePath ?? DEFAULT_NSM_PATH;
    try {
      await access(path, constants.R_OK | constants.W_OK);
    } catch (e) {
      throw platformUnavailable(`no Nitro Secure Module at ${path}: not running inside a Nitro enclave`, 'no_device', e);
    }
    let nsm: NsmClientLike;
    try {
      nsm = await (options.openNsm ?? defaultOpenNsm)(path);
    } catch (e) {
      if (e instanceof ToolkitError) throw e;
      throw platformUnavailable(`cannot open the Nitro Secure Module at ${path}`, 'open', e);
    }
    return new NitroPlatform(nsm);
  }

  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw platformUnavailable('platform is closed', 'closed');
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ToolkitError) throw e;
      // The NSM's own error name (ReadOnlyIndex, InvalidIndex, ...) is the reason, as in the simulator.
      const n = (e as { nsmError?: unknown; code?: unknown } | null) ?? {};
      const reason = typeof n.nsmError === 'string' ? n.nsmError : typeof n.code === 'string' ? n.code : 'device';
      throw new ToolkitError('ERR_NSM', `NSM ${what} failed (${reason})`, { reason, cause: e });
    }
  }

  async attest(options?: AttestOptions): Promise<Uint8Array> {
    const o = checkAttestOptions(options);
    const doc = await this.#call('Attestation', () =>
      this.#nsm.attestation({ userData: o.userData ?? null, nonce: o.nonce ?? null, publicKey: o.publicKey ?? null }),
    );
    if (!(doc instanceof Uint8Array) || doc.length === 0) throw nsmError('InvalidResponse', 'NSM returned no attestation document');
    return doc;
  }

  async describePcr(index: number): Promise<PcrDescription> {
    checkPcrIndex(index);
    const r = await this.#call('DescribePCR', () => this.#nsm.describePcr(index));
    if (typeof r?.lock !== 'boolean' || !(r.data instanceof Uint8Array) || r.data.length !== 48)
      throw nsmError('InvalidResponse', 'NSM DescribePCR response is malformed');
    return { index, locked: r.lock, value: r.data };
  }

  async extendPcr(index: number, data: Uint8Array): Promise<Uint8Array> {
    checkPcrIndex(index);
    if (!(data instanceof Uint8Array)) throw new TypeError('"data" expected Uint8Array');
    return this.#call('ExtendPCR', () => this.#nsm.extendPcr(index, data));
  }

  async lockPcr(index: number): Promise<void> {
    checkPcrIndex(index);
    await this.#call('LockPCR', () => this.#nsm.lockPcr(index));
  }

  async lockPcrs(range: number): Promise<void> {
    if (typeof range !== 'number' || !Number.isInteger(range) || range < 0 || range > PCR_COUNT)
      throw new RangeError(`"range" expected an integer in [0, ${PCR_COUNT}]`);
    await this.#call('LockPCRs', () => this.#nsm.lockPcrs(range));
  }

  async random(n: number): Promise<Uint8Array> {
    checkRandomLength(n);
    const out = new Uint8Array(n);
    let filled = 0;
    // GetRandom returns a device-chosen amount (up to 256 bytes); ask until we have enough.
    for (let i = 0; filled < n; i++) {
      if (i > 64) throw nsmError('InvalidResponse', 'NSM GetRandom keeps returning no bytes');
      const r = await this.#call('GetRandom', () => this.#nsm.getRandom());
      if (!(r instanceof Uint8Array)) throw nsmError('InvalidResponse', 'NSM GetRandom response is malformed');
      const take = Math.min(r.length, n - filled);
      out.set(r.subarray(0, take), filled);
      filled += take;
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#nsm.close?.();
  }
}
