/**
 * Bounded-memory summaries, one per group: memory depends on the number of groups, never on the
 * number of records nor on the size of the values. Each class states its bound (`maxBytes`), which
 * `accumulatorBytes` (engine.ts) adds up for the per-job memory budget (docs/privacy.md section 7).
 * The bounds are upper bounds for V8 on a 64-bit platform (8-byte pointers, no pointer compression
 * assumed), generous by design.
 */

/** Rough fixed cost of one small JS object with a handful of fields (header, properties, slack). */
export const OBJECT_BYTES = 128;

/**
 * A copy of `s` that shares no memory with the string it came from. V8 represents a substring of 13
 * or more characters as a slice that keeps its whole parent alive (a 64-byte word could pin a 1 MB
 * review text); whatever a summary keeps must be flat.
 */
export function flatCopy(s: string): string {
  return s.length < 13 ? s : (JSON.parse(JSON.stringify(s)) as string);
}

/**
 * Quantiles with a relative-error guarantee (the logarithmic-bucket idea of DDSketch): value x > 0
 * falls in bucket ceil(log_gamma(x)); every estimate is within `alpha` (1%) relative error of a value
 * of the right rank, as long as the values of each sign span at most gamma^maxBuckets (a factor of
 * about 28 000 for 512 buckets). Each sign keeps a fixed window of `maxBuckets` counters
 * (a Float64Array, allocated on first use); when a value falls above the window, the window moves up
 * and the lowest-magnitude buckets are merged into its lowest bucket (the "collapsing lowest" store of
 * DDSketch), so only values close to zero lose accuracy (they are reported as the lowest bucket's
 * value, then clamped to the observed min/max). Values below 1e-9 in magnitude count as zero.
 * Quantiles 0 and 1 are the exact minimum and maximum.
 */
export class QuantileSketch {
  static readonly ALPHA = 0.01;
  static readonly DEFAULT_MAX_BUCKETS = 512;
  readonly #gamma = (1 + QuantileSketch.ALPHA) / (1 - QuantileSketch.ALPHA);
  readonly #lnGamma = Math.log(this.#gamma);
  readonly #pos: BucketStore;
  readonly #neg: BucketStore;
  #zero = 0;
  #n = 0;
  #min = Infinity;
  #max = -Infinity;

  constructor(readonly maxBuckets = QuantileSketch.DEFAULT_MAX_BUCKETS) {
    if (!(Number.isInteger(maxBuckets) && maxBuckets >= 2 && maxBuckets <= 65536)) throw new RangeError('maxBuckets expected an integer from 2 to 65536');
    this.#pos = new BucketStore(maxBuckets);
    this.#neg = new BucketStore(maxBuckets);
  }

  /** Upper bound of the memory one sketch holds, whatever is added to it. */
  static maxBytes(maxBuckets = QuantileSketch.DEFAULT_MAX_BUCKETS): number {
    // the sketch object, two stores (object + typed array wrapper + ArrayBuffer + backing store)
    return OBJECT_BYTES + 2 * (OBJECT_BYTES + 256 + 8 * maxBuckets);
  }

  get count(): number {
    return this.#n;
  }

  add(x: number): void {
    if (!Number.isFinite(x)) return;
    this.#n++;
    if (x < this.#min) this.#min = x;
    if (x > this.#max) this.#max = x;
    const a = Math.abs(x);
    if (a < 1e-9) {
      this.#zero++;
      return;
    }
    (x > 0 ? this.#pos : this.#neg).add(Math.ceil(Math.log(a) / this.#lnGamma));
  }

  #value(i: number): number {
    return (2 * this.#gamma ** i) / (this.#gamma + 1);
  }

  quantile(q: number): number | null {
    if (this.#n === 0) return null;
    if (q <= 0) return this.#min; // the extremes are kept exactly
    if (q >= 1) return this.#max;
    const rank = q * (this.#n - 1);
    let seen = 0;
    let found: number | undefined;
    // negative values, most negative (highest bucket) first
    this.#neg.forEachDescending((k, c) => {
      seen += c;
      if (seen > rank) { found = -this.#value(k); return true; }
      return false;
    });
    if (found !== undefined) return this.#clamp(found);
    seen += this.#zero;
    if (seen > rank) return this.#clamp(0);
    this.#pos.forEachAscending((k, c) => {
      seen += c;
      if (seen > rank) { found = this.#value(k); return true; }
      return false;
    });
    if (found !== undefined) return this.#clamp(found);
    return this.#max;
  }

  #clamp(v: number): number {
    return v < this.#min ? this.#min : v > this.#max ? this.#max : v;
  }
}

/** A window of `size` bucket counters [lo, lo + size) that collapses its lowest buckets. */
class BucketStore {
  #counts: Float64Array | undefined;
  #lo = 0;
  #maxKey = -Infinity;
  constructor(readonly size: number) {}

  add(key: number): void {
    const n = this.size;
    let c = this.#counts;
    if (c === undefined) {
      c = this.#counts = new Float64Array(n);
      this.#lo = key;
      this.#maxKey = key;
    }
    if (key > this.#maxKey) this.#maxKey = key;
    if (key < this.#lo) {
      // move the window down as far as the highest key allows; what still falls below collapses
      const newLo = Math.max(key, this.#maxKey - n + 1);
      const d = this.#lo - newLo;
      if (d > 0) {
        c.copyWithin(d, 0, n - d);
        c.fill(0, 0, d);
        this.#lo = newLo;
      }
      c[Math.max(0, key - this.#lo)]! += 1;
      return;
    }
    if (key >= this.#lo + n) {
      // move the window up so that key is its highest bucket; merge what falls out into the lowest
      const newLo = key - n + 1;
      const d = newLo - this.#lo;
      let merged = 0;
      for (let i = 0; i < Math.min(d + 1, n); i++) merged += c[i]!;
      if (d >= n) c.fill(0);
      else {
        c.copyWithin(0, d);
        c.fill(0, n - d);
      }
      c[0] = merged;
      this.#lo = newLo;
    }
    c[key - this.#lo]! += 1;
  }

  forEachAscending(f: (key: number, count: number) => boolean): void {
    const c = this.#counts;
    if (!c) return;
    for (let i = 0; i < c.length; i++) if (c[i]! > 0 && f(this.#lo + i, c[i]!)) return;
  }

  forEachDescending(f: (key: number, count: number) => boolean): void {
    const c = this.#counts;
    if (!c) return;
    for (let i = c.length - 1; i >= 0; i--) if (c[i]! > 0 && f(this.#lo + i, c[i]!)) return;
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

const HLL_SEED = 0x811c9dc5;
const TABLE_SEED = 0x9e3779b9;

/**
 * Distinct count: exact up to `EXACT_LIMIT` values (as 52-bit hashes in an open-addressing table of
 * at most 2 * EXACT_LIMIT slots, so values are never kept; two values collide with probability about
 * 2^-52 per pair), then HyperLogLog with 2^10 registers (about 3% standard error) over a 32-bit hash.
 * Memory: at most 16 KiB for the table plus 1 KiB of registers (`maxBytes`).
 */
export class DistinctCounter {
  static readonly EXACT_LIMIT = 1024;
  static readonly P = 10;
  #table: Float64Array | undefined = new Float64Array(64);
  #size = 0;
  #reg: Uint8Array | undefined;

  static maxBytes(): number {
    return OBJECT_BYTES + (256 + 8 * 2 * DistinctCounter.EXACT_LIMIT) + (256 + (1 << DistinctCounter.P));
  }

  /** Add a value; `kind` separates value spaces (e.g. the string "1" from the number 1). */
  add(v: string, kind = 0): void {
    const h2 = hash32(v, (HLL_SEED ^ kind) >>> 0);
    if (this.#table) {
      const h1 = hash32(v, (TABLE_SEED ^ kind) >>> 0);
      if (this.#insert(this.#table, (h1 & 0xfffff) * 2 ** 32 + h2 + 1)) {
        this.#size++;
        if (this.#size > DistinctCounter.EXACT_LIMIT) this.#toHll();
        else if (this.#size * 2 > this.#table.length) this.#grow();
      }
      return;
    }
    this.#addHll(h2);
  }

  /** Insert a non-zero key; false when already present. */
  #insert(t: Float64Array, key: number): boolean {
    const mask = t.length - 1;
    let i = (key % 2 ** 32) & mask;
    for (;;) {
      const x = t[i]!;
      if (x === 0) {
        t[i] = key;
        return true;
      }
      if (x === key) return false;
      i = (i + 1) & mask;
    }
  }

  #grow(): void {
    const old = this.#table!;
    const t = new Float64Array(old.length * 2);
    for (let i = 0; i < old.length; i++) if (old[i] !== 0) this.#insert(t, old[i]!);
    this.#table = t;
  }

  #toHll(): void {
    this.#reg = new Uint8Array(1 << DistinctCounter.P);
    const t = this.#table!;
    for (let i = 0; i < t.length; i++) if (t[i] !== 0) this.#addHll((t[i]! - 1) % 2 ** 32);
    this.#table = undefined;
  }

  #addHll(h: number): void {
    const idx = h >>> (32 - DistinctCounter.P);
    const rest = (h << DistinctCounter.P) >>> 0;
    const rank = rest === 0 ? 32 - DistinctCounter.P + 1 : Math.clz32(rest) + 1;
    if (rank > this.#reg![idx]!) this.#reg![idx] = rank;
  }

  estimate(): number {
    if (this.#table) return this.#size;
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
 * Frequent terms (Misra-Gries): at most `capacity` counters, each term at most `MAX_TERM_CHARS`
 * characters (longer tokens are not words; they are ignored) and kept as a flat copy. A reported
 * count is a lower bound on the number of records that contain the term (it undercounts by at most
 * n/(capacity+1)), which is what the minimum-group-size guard needs: a term shown with count c is in
 * at least c records. Memory: `maxBytes(capacity)`, about 128 KiB for the default 512 counters.
 */
export class FrequentTerms {
  static readonly DEFAULT_CAPACITY = 512;
  static readonly MAX_TERM_CHARS = 64;
  readonly #counts = new Map<string, number>();
  constructor(readonly capacity = FrequentTerms.DEFAULT_CAPACITY) {}

  static maxBytes(capacity = FrequentTerms.DEFAULT_CAPACITY): number {
    // per counter: the term (header + up to 2 bytes a character) and its share of the hash table,
    // counted twice for the moment a rehash holds the old and the new table
    const term = 32 + 2 * FrequentTerms.MAX_TERM_CHARS;
    const table = 2 * 48;
    return OBJECT_BYTES + capacity * (term + table);
  }

  add(term: string): void {
    if (term.length > FrequentTerms.MAX_TERM_CHARS) return;
    const c = this.#counts.get(term);
    if (c !== undefined) {
      this.#counts.set(term, c + 1);
      return;
    }
    if (this.#counts.size < this.capacity) {
      this.#counts.set(flatCopy(term), 1);
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
