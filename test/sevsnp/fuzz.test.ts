/**
 * Property tests: mutated real reports and certificates always give a project error (never a foreign
 * throw, a crash or a hang), and no mutation of signed bytes is ever accepted.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { verifySevSnp } from '../../attestation/sevsnp/node.js';
import { parseSnpReport } from '../../attestation/sevsnp/abi.js';
import { parseSnpCertTable, buildSnpCertTable } from '../../attestation/sevsnp/certtable.js';
import { parseAmdCert } from '../../attestation/sevsnp/cert.js';
import { SnpChainCache } from '../../attestation/sevsnp/verify.js';
import { ToolkitError } from '../../attestation/errors.js';
import { amdRoots } from '../../attestation/sevsnp/roots.js';
import { loadVectors } from './_vectors.js';

const vectors = loadVectors();
const certsOf = (v: (typeof vectors)[number], leaf = v.leaf) => (v.kind === 'vlek' ? { vlek: leaf } : { vcek: leaf });
const policy = { guestPolicy: { allowDebug: true } };
const cache = new SnpChainCache();

/** Returns 'ok' or the error code; fails the property on any non-project throw. */
function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (!(e instanceof ToolkitError)) throw new Error(`foreign throw: ${String(e)}`, { cause: e });
    return e.code;
  }
}

const mutation = (len: number) =>
  fc.array(fc.record({ at: fc.nat({ max: len - 1 }), xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 4 });

function apply(b: Uint8Array, muts: { at: number; xor: number }[]): Uint8Array {
  const out = b.slice();
  for (const m of muts) out[m.at]! ^= m.xor;
  return out;
}
const changed = (a: Uint8Array, b: Uint8Array) => a.some((x, i) => x !== b[i]);

describe('SEV-SNP property tests', () => {
  it('any byte change in a real report is rejected with a project error', () => {
    fc.assert(
      fc.property(fc.constantFrom(...vectors), mutation(0x4a0), (v, muts) => {
        const bad = apply(v.report, muts);
        fc.pre(changed(bad, v.report));
        expect(outcome(() => verifySevSnp(bad, certsOf(v), { now: v.at, policy, cache }))).not.toBe('ok');
      }),
      { numRuns: 300 },
    );
  });

  it('truncated or extended reports are ERR_SNP_REPORT_INVALID', () => {
    fc.assert(
      fc.property(fc.constantFrom(...vectors), fc.integer({ min: 0, max: 0x600 }), (v, n) => {
        fc.pre(n !== 0x4a0);
        const b = new Uint8Array(n);
        b.set(v.report.subarray(0, Math.min(n, 0x4a0)));
        expect(outcome(() => parseSnpReport(b))).toBe('ERR_SNP_REPORT_INVALID');
      }),
      { numRuns: 100 },
    );
  });

  it('any byte change in a real VCEK/VLEK is rejected with a project error', () => {
    const ders = vectors.filter((v) => v.leafPath.endsWith('.der'));
    fc.assert(
      fc.property(fc.constantFrom(...ders), fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 1, max: 255 }), (v, at, xor) => {
        fc.pre(at < v.leaf.length);
        const bad = apply(v.leaf, [{ at, xor }]);
        expect(outcome(() => verifySevSnp(v.report, certsOf(v, bad), { now: v.at, policy, cache }))).not.toBe('ok');
      }),
      { numRuns: 300 },
    );
  });

  it('a changed or truncated ASK is never accepted', () => {
    const v = vectors.find((x) => x.id === 'oak-2')!;
    const ask = amdRoots().Genoa.ask;
    fc.assert(
      fc.property(fc.nat({ max: ask.length - 1 }), fc.integer({ min: 1, max: 255 }), fc.boolean(), (at, xor, truncate) => {
        const bad = truncate ? ask.subarray(0, at) : apply(ask, [{ at, xor }]);
        expect(outcome(() => verifySevSnp(v.report, { vcek: v.leaf, ask: bad }, { now: v.at, cache }))).not.toBe('ok');
      }),
      { numRuns: 150 },
    );
  });

  it('random bytes as a certificate or a certificate table give project errors only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        const c = outcome(() => parseAmdCert(b));
        expect(c).not.toBe('ok');
        outcome(() => parseSnpCertTable(b));
      }),
      { numRuns: 300 },
    );
  });

  it('mutated certificate tables give project errors only', () => {
    const v = vectors.find((x) => x.id === 'oak-1')!;
    const table = buildSnpCertTable({ vcek: v.leaf, ask: amdRoots().Turin.ask });
    fc.assert(
      fc.property(mutation(table.length), (muts) => {
        const bad = apply(table, muts);
        outcome(() => verifySevSnp(v.report, { certTable: bad }, { now: v.at, cache }));
      }),
      { numRuns: 200 },
    );
  });
});
