/**
 * A simulated Nitro enclave: NSM semantics in software, documents signed by the simulator CA.
 * The documents are byte-for-byte the NSM's format (the signer in attestation/sim/nitro.ts owns
 * that); what this class adds is the enclave's side: boot PCRs from an image identity, application
 * PCRs that extend and lock like the NSM's, module id and clock.
 *
 * `kind` is 'simulator': a result computed here must never claim to be hardware-backed.
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { toHex } from '../../attestation/bytes.js';
import { ToolkitError } from '../../attestation/errors.js';
import { issueNitroDocument, type NitroSimCa } from '../../attestation/sim/nitro.js';
import { PcrBank } from './pcr-bank.js';
import { DEFAULT_INSTANCE_ID, simulatedBootPcrs, type SimImageIdentity } from './sim-image.js';
import {
  checkAttestOptions,
  checkRandomLength,
  type AttestOptions,
  type PcrDescription,
  type Platform,
} from './types.js';

export interface SimNitroOptions {
  ca: NitroSimCa;
  identity: SimImageIdentity;
  /** The clock for document timestamps and leaf rotation; read at each call. */
  now?: () => Date;
  randomBytes?: (n: number) => Uint8Array;
  /** Defaults to `<instanceId>-enc<16 random hex>`, the NSM's shape. */
  moduleId?: string;
}

export class SimNitroPlatform implements Platform {
  readonly kind = 'simulator' as const;
  readonly evidenceFormat = 'nitro' as const;
  readonly moduleId: string;
  readonly #ca: NitroSimCa;
  readonly #bank: PcrBank;
  readonly #now: () => Date;
  readonly #random: (n: number) => Uint8Array;
  #closed = false;

  constructor(options: SimNitroOptions) {
    this.#ca = options.ca;
    this.#now = options.now ?? (() => new Date());
    this.#random = options.randomBytes ?? ((n) => new Uint8Array(nodeRandomBytes(n)));
    this.#bank = new PcrBank(simulatedBootPcrs(options.identity));
    this.moduleId =
      options.moduleId ?? `${options.identity.instanceId ?? DEFAULT_INSTANCE_ID}-enc${toHex(this.#random(8))}`;
  }

  #open(): void {
    if (this.#closed) throw new ToolkitError('ERR_PLATFORM_UNAVAILABLE', 'platform is closed', { reason: 'closed' });
  }

  async attest(options?: AttestOptions): Promise<Uint8Array> {
    this.#open();
    const o = checkAttestOptions(options);
    return issueNitroDocument(this.#ca, {
      moduleId: this.moduleId,
      timestamp: this.#now(),
      pcrs: this.#bank.documentPcrs(),
      publicKey: o.publicKey ?? null,
      userData: o.userData ?? null,
      nonce: o.nonce ?? null,
    });
  }

  async describePcr(index: number): Promise<PcrDescription> {
    this.#open();
    return this.#bank.describe(index);
  }

  async extendPcr(index: number, data: Uint8Array): Promise<Uint8Array> {
    this.#open();
    return this.#bank.extend(index, data);
  }

  async lockPcr(index: number): Promise<void> {
    this.#open();
    this.#bank.lock(index);
  }

  async lockPcrs(range: number): Promise<void> {
    this.#open();
    this.#bank.lockRange(range);
  }

  async random(n: number): Promise<Uint8Array> {
    this.#open();
    return this.#random(checkRandomLength(n));
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
