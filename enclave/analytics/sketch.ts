/**
 * Bounded-memory summaries, one per group: memory depends on the number of groups, never on the
 * number of records.
 */

/**
 * Quantiles with a relative-error guarantee (the logarithmic-bucket idea of DDSketch): value x > 0
 * falls in bucket ceil(log_gamma(x)); every estimate is within `alpha` (1%) relative error of a value
 * of the right rank. At most `maxBuckets` buckets per sign; past that the lowest-magnitude buckets
 * are merged, which only coarsens values close to zero.
 */
export class QuantileSketch {
  static readonly ALPHA = 0.01;
  readonly #gamma = (1 + QuantileSketch.ALPHA) / (1 - QuantileSketch.ALPHA);
  readonly #lnGamma = Math.log(this.#gamma);
  readonly #pos = new Map<number, number>();
  readonly #neg = new Map<number, number>();
  #zero = 0;
  #n = 0;
  #min = Infinity;
  #max = -Infinity;
  constructor(readonly maxBuckets = 2048) {}

  get count(): number {
    return this.#n;
  }

  add(x: number): void {
    this.#n++;
    if (x < this.#min) this.#min = x;
    if (x > this.#max) this.#max = x;
    const a = Math.abs(x);
    // Below 1e-9 is treated as zero: keeps bucket indices bounded.
    if (a < 1e-9) {
      this.#zero++;
      return;
    }
    const m = x > 0 ? this.#pos : this.#neg;
    const i = Math.ceil(Math.log(a) / this.#lnGamma);
    m.set(i, (m.get(i) ?? 0) + 1);
    if (m.size > this.maxBuckets) this.#collapse(m);
  }

  #collapse(m: Map<number, number>): void {
    const ks = [...m.keys()].sort((a, b) => a - b);
    const [a, b] = [ks[0]!, ks[1]!];
    m.set(b, m.get(b)! + m.get(a)!);
    m.delete(a);
  }

  #value(i: number): number {
    return (2 * this.#gamma ** i) / (this.#gamma + 1);
  }

  quantile(q: number): number | null {
    if (this.#n === 0) return null;
    const rank = q * (this.#n - 1);
    let seen = 0;
    const negKeys = [...this.#neg.keys()].sort((a, b) => b - a);
    for (const k of negKeys) {
      seen += this.#neg.get(k)!;
      if (seen > rank) return this.#clamp(-this.#value(k));
    }
    seen += this.#zero;
    if (seen > rank) return this.#clamp(0);
    const posKeys = [...this.#pos.keys()].sort((a, b) => a - b);
    for (const k of posKeys) {
      seen += this.#pos.get(k)!;
      if (seen > rank) return this.#clamp(this.#value(k));
    }
    return this.#max;
  }

  #clamp(v: number): number {
    return v < this.#min ? this.#min : v > this.#max ? this.#max : v;
  }
}

function hash32(s: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  }
  // final avalanche so that similar strings spread over all bits
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Distinct count: exact up to `EXACT_LIMIT` values, then HyperLogLog with 2^10 registers (about 3%
 * standard error) over a 32-bit hash.
 */
export class DistinctCounter {
  static readonly EXACT_LIMIT = 1024;
  static readonly P = 10;
  #exact: Set<string> | undefined = new Set();
  #reg: Uint8Array | undefined;

  add(v: string): void {
    if (this.#exact) {
      this.#exact.add(v);
      if (this.#exact.size > DistinctCounter.EXACT_LIMIT) {
        this.#reg = new Uint8Array(1 << DistinctCounter.P);
        for (const x of this.#exact) this.#addHll(x);
        this.#exact = undefined;
      }
      return;
    }
    this.#addHll(v);
  }

  #addHll(v: string): void {
    const h = hash32(v, 0x811c9dc5);
    const idx = h >>> (32 - DistinctCounter.P);
    const rest = (h << DistinctCounter.P) >>> 0;
    const rank = rest === 0 ? 32 - DistinctCounter.P + 1 : Math.clz32(rest) + 1;
    if (rank > this.#reg![idx]!) this.#reg![idx] = rank;
  }

  estimate(): number {
    if (this.#exact) return this.#exact.size;
    const reg = this.#reg!;
    const m = reg.length;
    let sum = 0;
    let zeros = 0;
    for (let i = 0; i < m; i++) {
      sum += 2 ** -reg[i]!;
      if (reg[i] === 0) zeros++;
    }
    const alpha = 0.7213 / (1 + 1.079 / m);
    let e = (alpha * m * m) / sum;
    if (e <= 2.5 * m && zeros > 0) e = m * Math.log(m / zeros);
    return Math.round(e);
  }
}

/**
 * Frequent terms (Misra-Gries): at most `capacity` counters. A reported count is a lower bound on
 * the number of records that contain the term (it undercounts by at most n/(capacity+1)), which is
 * what the minimum-group-size guard needs: a term shown with count c is in at least c records.
 */
export class FrequentTerms {
  readonly #counts = new Map<string, number>();
  constructor(readonly capacity = 512) {}

  add(term: string): void {
    const c = this.#counts.get(term);
    if (c !== undefined) {
      this.#counts.set(term, c + 1);
      return;
    }
    if (this.#counts.size < this.capacity) {
      this.#counts.set(term, 1);
      return;
    }
    for (const [k, v] of this.#counts) {
      if (v <= 1) this.#counts.delete(k);
      else this.#counts.set(k, v - 1);
    }
  }

  /** Terms with a guaranteed count of at least `minCount`, highest first, ties by term. */
  top(k: number, minCount: number): { term: string; count: number }[] {
    return [...this.#counts]
      .filter(([, c]) => c >= minCount)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, k)
      .map(([term, count]) => ({ term, count }));
  }
}
