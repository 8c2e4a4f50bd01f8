/**
 * Differential privacy pieces: integer noise from a CSPRNG, the rational epsilon it is calibrated
 * with, and a per-dataset epsilon budget.
 *
 * ## Noise: the discrete Laplace mechanism, sampled exactly
 *
 * `DiscreteLaplace` draws from the discrete Laplace (two-sided geometric) distribution on the
 * integers, P[Z = z] = (1 - a) / (1 + a) * a^|z| with a = exp(-1/b) for a rational scale b = t/s. It
 * is Algorithm 2 of Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential Privacy"
 * (NeurIPS 2020), with Bernoulli(exp(-gamma)) for rational gamma sampled exactly by their Algorithm 1
 * (series for gamma <= 1, product of Bernoulli(exp(-1)) draws for gamma > 1), and Bernoulli(n/d) by a
 * uniform integer below d. Everything is integer arithmetic (BigInt, with an exact Number path for
 * small ranges); no floating-point value is ever part of a sample, so the attack of Mironov ("On
 * significance of the least significant bits for differential privacy", CCS 2012) on floating-point
 * Laplace does not apply. Adding Z to an integer with sensitivity D at scale b = D/epsilon is
 * epsilon-DP (pure); the output is an integer.
 *
 * Randomness: an injected `(n) => Uint8Array` byte source (default `node:crypto` randomBytes, read
 * through a pool). Uniform integers below m are drawn by rejection sampling over the smallest number of
 * bits that holds m - 1 (no modulo bias; at most 2 draws expected).
 *
 * Termination: every loop has an expected number of iterations below 3 whatever the scale (the
 * algorithm draws the magnitude as U + t*V with U uniform and V geometric with parameter 1 - 1/e, so
 * a large scale costs bigger integers, not more iterations). Each loop also has a hard cap far above
 * anything a working source reaches (the probability of reaching any cap is below 2^-100); reaching
 * it throws `ERR_JOB_FAILED` / `random_source` (a source stuck on one value does that) and no
 * sample is produced.
 *
 * ## Epsilon as a rational
 *
 * The sampler needs the scale as a ratio of integers, so an epsilon is represented as
 * `num / EPSILON_DENOMINATOR` with `EPSILON_DENOMINATOR = 2^32` and `num` rounded DOWN
 * (`splitEpsilon`): the epsilon actually used is never larger than the one stated, at most 2^-32
 * smaller per measurement (e.g. 1.5% of 1e-6/63). Noise is therefore calibrated to an epsilon <= the
 * requested one, which is what the result states. An epsilon share below 2^-32 cannot be represented
 * and is refused (`ERR_QUERY_REFUSED` / `epsilon`).
 *
 * ## Known limits
 *
 * - The threshold for releasing data-derived group keys (engine.ts) uses a float `ln`; it carries a
 *   safety margin of at least half a unit of count, far above the float error.
 * - Timing: the number of loop iterations depends on the random draws (not on the data), and BigInt
 *   arithmetic time depends on the size of the numbers, i.e. on the scale and the drawn magnitude,
 *   not on the value being protected. The noisy output itself is released, so the magnitude is no
 *   secret once the result is out.
 * - The budget object holds the state only; persisting it is the caller's job (`toJSON`/`fromJSON`).
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { ToolkitError } from '../../attestation/errors.js';

/** A source of uniformly random bytes (default `node:crypto` randomBytes). */
export type RandomBytes = (n: number) => Uint8Array;

/** Epsilons are represented as `num / EPSILON_DENOMINATOR`, num rounded down. */
export const EPSILON_DENOMINATOR_BITS = 32;
export const EPSILON_DENOMINATOR: bigint = 1n << BigInt(EPSILON_DENOMINATOR_BITS);

/** Hard caps on loop iterations (see the module comment): each is reached with probability < 2^-100. */
const MAX_UNIFORM_TRIES = 256; // each try is accepted with probability > 1/2
const MAX_SERIES_TERMS = 64; // Bernoulli(exp(-gamma)), gamma <= 1: P[K > n] <= 1/n!
const MAX_GEOMETRIC = 256; // V ~ Geometric(1 - 1/e): P[V > n] = e^-n
const MAX_OUTER = 512; // each round of Algorithm 2 succeeds with probability > 0.3
const MAX_WHOLE_PART = 1 << 24; // Bernoulli(exp(-gamma)) for gamma > 1 loops floor(gamma) times at most

function capReached(what: string): never {
  throw new ToolkitError('ERR_JOB_FAILED', `noise sampler: ${what} did not terminate; the random source looks broken`, { reason: 'random_source' });
}

/**
 * Convert an epsilon to the rational the sampler uses: `floor(epsilon * 2^32 / parts) / 2^32`, the
 * largest such rational not above `epsilon / parts` (exact: no float rounding can push it above).
 * Throws `ERR_QUERY_REFUSED` / `epsilon` when the share is below 2^-32.
 */
export function splitEpsilon(epsilon: number, parts = 1): { num: bigint; den: bigint } {
  if (!(typeof epsilon === 'number' && Number.isFinite(epsilon) && epsilon > 0)) throw new RangeError('"epsilon" expected a finite number > 0');
  if (!(Number.isSafeInteger(parts) && parts >= 1)) throw new RangeError('"parts" expected a positive integer');
  // epsilon * 2^32 is exact (a power-of-two scaling of a double); floor of a double is exact.
  const scaled = BigInt(Math.floor(epsilon * 2 ** EPSILON_DENOMINATOR_BITS));
  const num = scaled / BigInt(parts); // BigInt division truncates: floor for non-negative values
  if (num === 0n)
    throw new ToolkitError('ERR_QUERY_REFUSED', `epsilon ${epsilon} split over ${parts} measurements is below 2^-${EPSILON_DENOMINATOR_BITS}`, { reason: 'epsilon' });
  return { num, den: EPSILON_DENOMINATOR };
}

/** The rational's value as a number (for reporting and for the release threshold). */
export function rationalToNumber(r: { num: bigint; den: bigint }): number {
  return Number(r.num) / Number(r.den);
}

/** Exact integer sampling over a byte source. */
export class DiscreteLaplace {
  readonly #source: RandomBytes;
  #pool: Uint8Array = new Uint8Array(0);
  #view: DataView = new DataView(this.#pool.buffer);
  #off = 0;

  constructor(randomBytes: RandomBytes = nodeRandomBytes) {
    this.#source = randomBytes;
  }

  #refill(): void {
    const b = this.#source(4096);
    if (!(b instanceof Uint8Array) || b.length !== 4096) throw new ToolkitError('ERR_JOB_FAILED', 'noise sampler: the random source returned the wrong number of bytes', { reason: 'random_source' });
    this.#pool = b;
    this.#view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.#off = 0;
  }

  /** 48 random bits as a Number. */
  #bits48(): number {
    if (this.#off + 6 > this.#pool.length) this.#refill();
    const v = this.#view.getUint32(this.#off) * 65536 + this.#view.getUint16(this.#off + 4);
    this.#off += 6;
    return v;
  }

  /** 64 random bits as a BigInt. */
  #bits64(): bigint {
    if (this.#off + 8 > this.#pool.length) this.#refill();
    const v = this.#view.getBigUint64(this.#off);
    this.#off += 8;
    return v;
  }

  /** Uniform integer in [0, m), m >= 1, by rejection sampling (no modulo bias). */
  uniform(m: bigint): bigint {
    if (m < 1n) throw new RangeError('uniform: m must be >= 1');
    if (m === 1n) return 0n;
    const top = m - 1n;
    const bits = top.toString(2).length;
    if (bits <= 48) {
      const mn = Number(m);
      const div = 2 ** (48 - bits); // keep the top `bits` bits: an exact integer division
      for (let i = 0; i < MAX_UNIFORM_TRIES; i++) {
        const x = Math.floor(this.#bits48() / div);
        if (x < mn) return BigInt(x);
      }
      return capReached('uniform');
    }
    const words = Math.ceil(bits / 64);
    const mask = (1n << BigInt(bits)) - 1n;
    for (let i = 0; i < MAX_UNIFORM_TRIES; i++) {
      let x = 0n;
      for (let w = 0; w < words; w++) x = (x << 64n) | this.#bits64();
      x &= mask;
      if (x < m) return x;
    }
    return capReached('uniform');
  }

  /** Bernoulli(n/d), 0 <= n <= d, d >= 1. */
  bernoulli(n: bigint, d: bigint): boolean {
    if (n < 0n || d < 1n || n > d) throw new RangeError('bernoulli: expected 0 <= n <= d, d >= 1');
    return this.uniform(d) < n;
  }

  /** Bernoulli(exp(-n/d)), n >= 0, d >= 1, exactly (CKS 2020, Algorithm 1). */
  bernoulliExp(n: bigint, d: bigint): boolean {
    if (n < 0n || d < 1n) throw new RangeError('bernoulliExp: expected n >= 0, d >= 1');
    if (n <= d) {
      // K = 1; while Bernoulli(gamma / K): K++. Return K odd.
      let k = 1n;
      for (let i = 0; i < MAX_SERIES_TERMS; i++) {
        if (!this.bernoulli(n, d * k)) return (k & 1n) === 1n;
        k++;
      }
      return capReached('Bernoulli(exp(-gamma))');
    }
    const whole = n / d;
    if (whole > BigInt(MAX_WHOLE_PART)) throw new RangeError('bernoulliExp: gamma too large');
    for (let i = 0n; i < whole; i++) if (!this.bernoulliExp(1n, 1n)) return false;
    return this.bernoulliExp(n - whole * d, d);
  }

  /**
   * One draw from the discrete Laplace distribution of scale t/s: P[z] proportional to exp(-|z| s/t)
   * (CKS 2020, Algorithm 2). For sensitivity D and epsilon = num/den, call it with s = num and
   * t = D * den.
   */
  sample(s: bigint, t: bigint): bigint {
    if (s < 1n || t < 1n) throw new RangeError('discrete Laplace: expected s, t >= 1');
    for (let round = 0; round < MAX_OUTER; round++) {
      const u = this.uniform(t);
      if (!this.bernoulliExp(u, t)) continue;
      let v = 0n;
      let i = 0;
      for (; i < MAX_GEOMETRIC; i++) {
        if (!this.bernoulliExp(1n, 1n)) break;
        v++;
      }
      if (i === MAX_GEOMETRIC) capReached('geometric draw');
      const x = u + t * v;
      const y = x / s;
      const negative = this.uniform(2n) === 1n;
      if (negative && y === 0n) continue;
      return negative ? -y : y;
    }
    return capReached('discrete Laplace');
  }

  /**
   * `value + Z` where Z is discrete Laplace noise for an integer query of the given sensitivity
   * (in the same integer units) at epsilon `eps` (a rational from `splitEpsilon`).
   */
  noisy(value: bigint, sensitivity: bigint, eps: { num: bigint; den: bigint }): bigint {
    if (sensitivity < 1n) throw new RangeError('sensitivity must be >= 1');
    return value + this.sample(eps.num, sensitivity * eps.den);
  }
}

/** Variance of the discrete Laplace distribution of scale b: 2a / (1 - a)^2 with a = exp(-1/b). */
export function discreteLaplaceVariance(b: number): number {
  const a = Math.exp(-1 / b);
  return (2 * a) / (1 - a) ** 2;
}

/** P[Z >= k] for k >= 1 under the discrete Laplace distribution of scale b: a^k / (1 + a). */
export function discreteLaplaceTail(b: number, k: number): number {
  const a = Math.exp(-1 / b);
  return k <= 0 ? 1 : a ** k / (1 + a);
}

