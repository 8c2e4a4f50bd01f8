/**
 * A software PCR bank with the NSM's semantics (nsm-check.rs, nitro.md §2), used by the Nitro
 * simulator. Kept separate from the signer so the semantics are testable on their own.
 */
import { ToolkitError } from '../../attestation/errors.js';
import { pcrExtend } from '../../attestation/sim/image.js';
import { FIRST_APP_PCR, PCR_COUNT, checkPcrIndex, type PcrDescription } from './types.js';

const PCR_LEN = 48;
/** The NSM caps a whole request at 4096 bytes of CBOR; leave room for the envelope. */
export const MAX_EXTEND_DATA = 4000;

/** The NSM's own error names travel as `reason`, so simulator and hardware fail alike. */
export function nsmError(reason: string, message: string): ToolkitError {
  return new ToolkitError('ERR_NSM', message, { reason });
}

export class PcrBank {
  readonly #values: Uint8Array[];
  readonly #locked: boolean[];

  /** `boot` holds the measured PCRs (0..15); they start locked, as on hardware. */
  constructor(boot: ReadonlyMap<number, Uint8Array>) {
    this.#values = [];
    this.#locked = [];
    for (let i = 0; i < PCR_COUNT; i++) {
      const v = boot.get(i);
      if (v !== undefined && (i >= FIRST_APP_PCR || v.length !== PCR_LEN))
        throw new RangeError(`boot PCR${i} must be one of 0..15 with 48 bytes`);
      this.#values.push(v ? Uint8Array.from(v) : new Uint8Array(PCR_LEN));
      this.#locked.push(i < FIRST_APP_PCR);
    }
  }

  describe(index: number): PcrDescription {
    checkPcrIndex(index);
    return { index, locked: this.#locked[index]!, value: Uint8Array.from(this.#values[index]!) };
  }

  extend(index: number, data: Uint8Array): Uint8Array {
    checkPcrIndex(index);
    if (!(data instanceof Uint8Array)) throw new TypeError('"data" expected Uint8Array');
    if (data.length > MAX_EXTEND_DATA) throw nsmError('InputTooLarge', `extend data exceeds ${MAX_EXTEND_DATA} bytes`);
    if (this.#locked[index]) throw nsmError('ReadOnlyIndex', `PCR${index} is locked`);
    const next = pcrExtend(this.#values[index]!, data);
    this.#values[index] = next;
    return Uint8Array.from(next);
  }

  lock(index: number): void {
    checkPcrIndex(index);
    // Locking an already-locked PCR succeeds on the NSM (idempotent); boot PCRs are simply locked.
    this.#locked[index] = true;
  }

  lockRange(range: number): void {
    if (typeof range !== 'number' || !Number.isInteger(range) || range < 0)
      throw new RangeError(`"range" expected a non-negative integer, got ${String(range)}`);
    if (range > PCR_COUNT) throw nsmError('InvalidIndex', `LockPCRs range ${range} exceeds ${PCR_COUNT}`);
    for (let i = 0; i < range; i++) this.#locked[i] = true;
  }

  /**
   * What a document's `pcrs` map carries: the boot PCRs 0..15 always, and any application PCR only
   * once it is locked (a held-back real sample has PCR16 only because the app locked it).
   */
  documentPcrs(): Map<number, Uint8Array> {
    const m = new Map<number, Uint8Array>();
    for (let i = 0; i < PCR_COUNT; i++) if (i < FIRST_APP_PCR || this.#locked[i]) m.set(i, Uint8Array.from(this.#values[i]!));
    return m;
  }
}
