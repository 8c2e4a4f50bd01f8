/**
 * A simulated SEV-SNP guest: v5 reports signed by the simulated VCEK (under the simulator's ARK/ASK),
 * with configurable MEASUREMENT, POLICY, TCB, HOST_DATA and VMPL. Evidence is the 1184-byte report
 * followed by a GHCB certificate table holding VCEK, ASK and ARK, as an extended report is.
 *
 * REPORT_DATA binds public key, user data and nonce as documented in `sev-snp-binding.ts`.
 *
 * SNP has no PCRs: `describePcr`/`extendPcr`/`lock*` fail with ERR_PLATFORM_UNAVAILABLE (reason
 * `no_pcrs`), exactly as the real SEV-SNP platform does, so code that needs runtime measurements
 * learns it in the simulator and not in production.
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { ToolkitError } from '../../attestation/errors.js';
import { buildSnpCertTable } from '../../attestation/sevsnp/certtable.js';
import { simSnpMeasurement } from '../../attestation/sim/image.js';
import { issueSnpReport, type SnpSimChain, type SnpSimTcb } from '../../attestation/sim/snp.js';
import { snpReportData } from '../../attestation/sevsnp/binding.js';
import { checkAttestOptions, checkRandomLength, type AttestOptions, type PcrDescription, type Platform } from './types.js';

export interface SimSnpOptions {
  chain: SnpSimChain;
  /** 48 bytes; or derive it from an image id with `simulatedMeasurement`. */
  measurement: Uint8Array;
  /** Guest POLICY; default 0x30000 (SMT allowed, reserved bit 17, no debug). */
  policy?: bigint;
  tcb?: SnpSimTcb;
  hostData?: Uint8Array;
  vmpl?: number;
  guestSvn?: number;
  randomBytes?: (n: number) => Uint8Array;
}

/** MEASUREMENT of a simulated image (formula: attestation/sim/image.ts, shared with the host). */
export const simulatedMeasurement = simSnpMeasurement;

export function noPcrs(): ToolkitError {
  return new ToolkitError('ERR_PLATFORM_UNAVAILABLE', 'SEV-SNP has no PCRs (runtime measurement registers are not available)', {
    reason: 'no_pcrs',
  });
}

export class SimSnpPlatform implements Platform {
  readonly kind = 'simulator' as const;
  readonly evidenceFormat = 'sev-snp' as const;
  readonly #o: SimSnpOptions;
  readonly #certTable: Uint8Array;
  readonly #random: (n: number) => Uint8Array;
  #closed = false;

  constructor(options: SimSnpOptions) {
    if (!(options.measurement instanceof Uint8Array) || options.measurement.length !== 48)
      throw new RangeError('"measurement" expected Uint8Array of length 48');
    this.#o = options;
    this.#random = options.randomBytes ?? ((n) => new Uint8Array(nodeRandomBytes(n)));
    this.#certTable = buildSnpCertTable({ vcek: options.chain.vcek.der, ask: options.chain.ask.der, ark: options.chain.ark.der });
  }

  #open(): void {
    if (this.#closed) throw new ToolkitError('ERR_PLATFORM_UNAVAILABLE', 'platform is closed', { reason: 'closed' });
  }

  async attest(options?: AttestOptions): Promise<Uint8Array> {
    this.#open();
    const o = checkAttestOptions(options);
    const report = await issueSnpReport(this.#o.chain, {
      version: 5,
      measurement: this.#o.measurement,
      reportData: snpReportData(o),
      policy: this.#o.policy ?? 0x30000n,
      ...(this.#o.tcb ? { tcb: this.#o.tcb } : {}),
      ...(this.#o.hostData ? { hostData: this.#o.hostData } : {}),
      vmpl: this.#o.vmpl ?? 0,
      guestSvn: this.#o.guestSvn ?? 0,
    });
    const out = new Uint8Array(report.length + this.#certTable.length);
    out.set(report, 0);
    out.set(this.#certTable, report.length);
    return out;
  }

  async describePcr(_index: number): Promise<PcrDescription> {
    this.#open();
    throw noPcrs();
  }

  async extendPcr(_index: number, _data: Uint8Array): Promise<Uint8Array> {
    this.#open();
    throw noPcrs();
  }

  async lockPcr(_index: number): Promise<void> {
    this.#open();
    throw noPcrs();
  }

  async lockPcrs(_range: number): Promise<void> {
    this.#open();
    throw noPcrs();
  }

  async random(n: number): Promise<Uint8Array> {
    this.#open();
    return this.#random(checkRandomLength(n));
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
