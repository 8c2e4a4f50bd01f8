// The integer noise sampler (privacy.ts): exactness of the rational epsilon, uniform integers without
// modulo bias, Bernoulli(exp(-gamma)), and the discrete Laplace distribution itself. Every draw
// comes from a seeded deterministic byte source, so the statistical checks are not flaky.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DiscreteLaplace, EPSILON_DENOMINATOR, discreteLaplaceTail, discreteLaplaceVariance, rationalToNumber, splitEpsilon } from '../../enclave/analytics/index.js';
import { expectCode } from './helpers.js';

function seededBytes(seed: string): (n: number) => Uint8Array {
  let ctr = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) out.set(createHash('sha256').update(`${seed}/${ctr++}`).digest().subarray(0, Math.min(32, n - off)), off);
    return out;
  };
}

function stats(xs: number[]): { mean: number; variance: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1);
  return { mean, variance };
}

describe('epsilon as a rational', () => {
  it('rounds down to a multiple of 2^-32, exactly', () => {
    expect(EPSILON_DENOMINATOR).toBe(2n ** 32n);
    expect(splitEpsilon(1)).toEqual({ num: 2n ** 32n, den: 2n ** 32n });
    expect(splitEpsilon(1, 4)).toEqual({ num: 2n ** 30n, den: 2n ** 32n });
    expect(splitEpsilon(0.1, 3).num).toBe(BigInt(Math.floor(0.1 * 2 ** 32)) / 3n);
    expect(splitEpsilon(1e-6).num).toBe(4294n);
    expect(rationalToNumber(splitEpsilon(0.5))).toBe(0.5);
  });

  it('property: the share is the largest multiple of 2^-32 not above epsilon / parts', () => {
    fc.assert(
      fc.property(fc.double({ min: 1e-6, max: 10, noNaN: true }), fc.integer({ min: 1, max: 200 }), (eps, parts) => {
        const { num } = splitEpsilon(eps, parts);
        // exact comparison in integers: eps * 2^32 is exact in a double
        const scaled = eps * 2 ** 32;
        const p = BigInt(parts);
        expect(Number(num * p) <= scaled).toBe(true);
        expect(Number((num + 1n) * p) > Math.floor(scaled)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a share below 2^-32 and bad input', () => {
    expectCode(() => splitEpsilon(1e-9, 10), 'ERR_QUERY_REFUSED', 'epsilon');
    expect(() => splitEpsilon(0)).toThrow(RangeError);
    expect(() => splitEpsilon(Number.NaN)).toThrow(RangeError);
    expect(() => splitEpsilon(1, 0)).toThrow(RangeError);
  });
});

describe('uniform integers and Bernoulli draws', () => {
  it('uniform over small and BigInt-sized ranges, no value out of range, no visible bias', () => {
    const d = new DiscreteLaplace(seededBytes('uniform'));
    const hist = new Array<number>(6).fill(0);
    const N = 60_000;
    for (let i = 0; i < N; i++) hist[Number(d.uniform(6n))]!++;
    // chi-square with 5 degrees of freedom; 20.5 is its 0.999 quantile
    const chi = hist.reduce((a, c) => a + (c - N / 6) ** 2 / (N / 6), 0);
    expect(chi).toBeLessThan(20.5);
    const big = 2n ** 100n + 12345n;
    let top = 0;
    for (let i = 0; i < 2000; i++) {
      const x = d.uniform(big);
      expect(x >= 0n && x < big).toBe(true);
      if (x >= big / 2n) top++;
    }
    expect(Math.abs(top - 1000)).toBeLessThan(150);
    expect(d.uniform(1n)).toBe(0n);
  });

  it('a stuck source hits the cap and fails clearly instead of looping', () => {
    const ff = new DiscreteLaplace((n) => new Uint8Array(n).fill(0xff));
    expectCode(() => ff.uniform(3n), 'ERR_JOB_FAILED', 'random_source');
    const zero = new DiscreteLaplace((n) => new Uint8Array(n));
    expectCode(() => zero.sample(1n, 1n), 'ERR_JOB_FAILED', 'random_source');
    const short = new DiscreteLaplace((n) => new Uint8Array(n - 1));
    expectCode(() => short.uniform(10n), 'ERR_JOB_FAILED', 'random_source');
  });

  it('Bernoulli(exp(-gamma)) for rational gamma below, at and above 1', () => {
    const d = new DiscreteLaplace(seededBytes('bexp'));
    const N = 40_000;
    for (const [n, den] of [[1n, 2n], [1n, 1n], [5n, 2n], [0n, 7n]] as const) {
      let hits = 0;
      for (let i = 0; i < N; i++) if (d.bernoulliExp(n, den)) hits++;
      const p = Math.exp(-Number(n) / Number(den));
      expect(Math.abs(hits / N - p)).toBeLessThanOrEqual(4 * Math.sqrt((p * (1 - p)) / N) + 1e-12);
    }
  });
});

describe('discrete Laplace', () => {
  const draw = (seed: string, s: bigint, t: bigint, n: number): number[] => {
    const d = new DiscreteLaplace(seededBytes(seed));
    return Array.from({ length: n }, () => Number(d.sample(s, t)));
  };

  for (const [s, t] of [[1n, 3n], [5n, 2n], [1n, 1_000_000n], [4294n, 2n ** 32n]] as const) {
    const b = Number(t) / Number(s);
    it(`scale ${t}/${s}: mean 0, variance 2a/(1-a)^2, symmetric, integer`, () => {
      const N = 20_000;
      const xs = draw(`dl-${s}-${t}`, s, t, N);
      for (const x of xs.slice(0, 100)) expect(Number.isInteger(x)).toBe(true);
      const { mean, variance } = stats(xs);
      const v = discreteLaplaceVariance(b);
      expect(Math.abs(mean)).toBeLessThan(4 * Math.sqrt(v / N));
      // Laplace kurtosis 6: the variance estimate has a relative standard error of about sqrt(5/N) = 1.6%
      expect(Math.abs(variance / v - 1)).toBeLessThan(0.06);
      const pos = xs.filter((x) => x > 0).length;
      const neg = xs.filter((x) => x < 0).length;
      expect(Math.abs(pos - neg)).toBeLessThan(4 * Math.sqrt(pos + neg) + 1);
    });
  }

  it('the probability mass matches (1-a)/(1+a) a^|z| and the tail a^k/(1+a)', () => {
    const N = 50_000;
    const xs = draw('pmf', 2n, 3n, N); // scale 1.5
    const a = Math.exp(-1 / 1.5);
    for (let z = -3; z <= 3; z++) {
      const p = ((1 - a) / (1 + a)) * a ** Math.abs(z);
      const got = xs.filter((x) => x === z).length / N;
      expect(Math.abs(got - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / N));
    }
    for (const k of [1, 2, 4]) {
      const p = discreteLaplaceTail(1.5, k);
      const got = xs.filter((x) => x >= k).length / N;
      expect(Math.abs(got - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / N));
    }
  });

  it('noisy(): value + noise calibrated to sensitivity / epsilon', () => {
    const d = new DiscreteLaplace(seededBytes('noisy'));
    const eps = splitEpsilon(0.5);
    const xs = Array.from({ length: 20_000 }, () => Number(d.noisy(1000n, 3n, eps)));
    const { mean, variance } = stats(xs);
    const v = discreteLaplaceVariance(3 / 0.5);
    expect(Math.abs(mean - 1000)).toBeLessThan(4 * Math.sqrt(v / xs.length));
    expect(Math.abs(variance / v - 1)).toBeLessThan(0.06);
    expect(() => d.noisy(0n, 0n, eps)).toThrow(RangeError);
  });

  it('the default source is node:crypto and draws are fast enough for 10 000 groups', () => {
    const d = new DiscreteLaplace();
    const eps = splitEpsilon(1, 65);
    const t0 = performance.now();
    for (let i = 0; i < 20_000; i++) d.noisy(0n, 1n << 20n, eps);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });
});
