/**
 * Differential privacy pieces: the Laplace mechanism over an injected random source, and a
 * per-dataset epsilon budget. The budget object holds the state; persisting it (a file on the
 * worker, a KMS-sealed blob) is the owner's job, through `toJSON`/`fromJSON`.
 *
 * Known limit: the Laplace sampler works in IEEE doubles; the low-order bits of noisy outputs are
 * not protected against the floating-point attack described by Mironov (2012). Outputs are rounded
 * (counts to integers) which mitigates but does not remove it. See README, Security.
 */
import { randomBytes } from 'node:crypto';
import { ToolkitError } from '../../attestation/errors.js';

/** Uniform in [0, 1). Injected so tests (and audits) can reproduce noise. */
export type RandomSource = () => number;

/** A cryptographic uniform source: 53 random bits per draw, drawn from a pool. */
export function cryptoRandom(): RandomSource {
  let pool = randomBytes(0);
  let off = 0;
  return () => {
    if (off + 8 > pool.length) {
      pool = randomBytes(8 * 512);
      off = 0;
    }
    const hi = pool.readUInt32BE(off) >>> 11; // 21 bits
    const lo = pool.readUInt32BE(off + 4); // 32 bits
    off += 8;
    return (hi * 0x100000000 + lo) / 2 ** 53;
  };
}

/** One draw from Laplace(0, scale). */
export function laplace(random: RandomSource, scale: number): number {
  for (let i = 0; i < 64; i++) {
    const r = random();
    if (!(r >= 0 && r < 1)) throw new RangeError('random source returned a value outside [0, 1)');
    const u = r - 0.5;
    if (u === -0.5) continue; // ln(0) otherwise
    return -scale * Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
  }
  throw new RangeError('random source keeps returning 0');
}

export interface PrivacyBudgetState {
  limit: number;
  spent: Record<string, number>;
}

const EPS_TOLERANCE = 1e-9;

/** An epsilon budget per dataset id: a query that would spend past `limit` is refused. */
export class PrivacyBudget {
  readonly limit: number;
  readonly #spent = new Map<string, number>();

  constructor(opts: { limit: number; spent?: Record<string, number> }) {
    if (typeof opts.limit !== 'number' || !Number.isFinite(opts.limit) || opts.limit < 0) throw new RangeError('"limit" expected a finite number >= 0');
    this.limit = opts.limit;
    for (const [k, v] of Object.entries(opts.spent ?? {})) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`"spent.${k}" expected a finite number >= 0`);
      this.#spent.set(k, v);
    }
  }

  spent(datasetId: string): number {
    return this.#spent.get(datasetId) ?? 0;
  }

  remaining(datasetId: string): number {
    return Math.max(0, this.limit - this.spent(datasetId));
  }

  /** Spend `epsilon` on `datasetId` or throw `ERR_PRIVACY_BUDGET` and spend nothing. */
  charge(datasetId: string, epsilon: number): { limit: number; spent: number } {
    if (!(epsilon > 0) || !Number.isFinite(epsilon)) throw new RangeError('"epsilon" expected a finite number > 0');
    const after = this.spent(datasetId) + epsilon;
    if (after > this.limit + EPS_TOLERANCE) {
      throw new ToolkitError(
        'ERR_PRIVACY_BUDGET',
        `dataset "${datasetId}": epsilon ${epsilon} exceeds the remaining budget ${this.remaining(datasetId)} of ${this.limit}`,
        { reason: 'exhausted' },
      );
    }
    this.#spent.set(datasetId, after);
    return { limit: this.limit, spent: after };
  }

  toJSON(): PrivacyBudgetState {
    return { limit: this.limit, spent: Object.fromEntries(this.#spent) };
  }

  /** Load persisted state strictly (`ERR_CONFIG_INVALID`). */
  static fromJSON(v: unknown): PrivacyBudget {
    const o = v as Record<string, unknown>;
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new ToolkitError('ERR_CONFIG_INVALID', 'privacy budget: expected an object', { reason: 'budget' });
    for (const k of Object.keys(o)) if (k !== 'limit' && k !== 'spent') throw new ToolkitError('ERR_CONFIG_INVALID', `privacy budget: unknown key ${k}`, { reason: 'budget' });
    const spent = o.spent ?? {};
    if (spent === null || typeof spent !== 'object' || Array.isArray(spent)) throw new ToolkitError('ERR_CONFIG_INVALID', 'privacy budget: spent must be an object', { reason: 'budget' });
    try {
      return new PrivacyBudget({ limit: o.limit as number, spent: spent as Record<string, number> });
    } catch (e) {
      throw new ToolkitError('ERR_CONFIG_INVALID', `privacy budget: ${(e as Error).message}`, { reason: 'budget', cause: e });
    }
  }
}
