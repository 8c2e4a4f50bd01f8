import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { roundForRelease } from '../../enclave/job.js';

describe('released numbers carry no binary noise of the summation', () => {
  it('rounds non-integers to 15 significant digits, deep inside aggregate values; integers, null and text untouched', () => {
    expect(roundForRelease(0.1 + 0.2)).toBe(0.3);
    expect(roundForRelease(89335.65000000001)).toBe(89335.65);
    expect(roundForRelease({ mean: 1 / 3, q: [{ q: 0.5, value: 2.0000000000000004 }], n: 7, s: 'x', z: null })).toEqual({ mean: 0.333333333333333, q: [{ q: 0.5, value: 2 }], n: 7, s: 'x', z: null });
    expect(roundForRelease(2 ** 60)).toBe(2 ** 60);
  });
  it('property: the change is below one part in 10^14', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e300, max: 1e300 }), (x) => {
        const r = roundForRelease(x) as number;
        if (x === 0) return r === 0;
        return Math.abs(r - x) <= Math.abs(x) * 1e-14;
      }),
    );
  });
});
