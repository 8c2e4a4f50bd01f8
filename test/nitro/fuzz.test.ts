/**
 * Properties: any flip, truncation or extension of a real document, and any byte string at all, gives
 * an AttestationError with an ERR_ code (never another exception, hang or acceptance).
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { verifyNitro } from '../../attestation/index.js';
import { AttestationError } from '../../attestation/errors.js';
import { BoundedChainCache } from '../../attestation/nitro/verify.js';
import { parseNitroDocument } from '../../attestation/nitro/parse.js';
import { parseCertificate, CertParseError } from '../../attestation/x509/cert.js';
import { loadDoc } from './helpers.js';

const DOCS = [
  ['blocky-1.cose', new Date('2024-09-07T14:37:39Z')],
  ['base-1.cose', new Date('2026-01-03T20:41:07Z')],
  ['evervault-1.cose', new Date('2022-10-13T08:58:02Z')],
] as const;
const cache = new BoundedChainCache(64);

function mustReject(bytes: Uint8Array, now: Date): void {
  let err: unknown;
  try {
    verifyNitro(bytes, { now, allowDebug: true, cache });
  } catch (e) {
    err = e;
  }
  if (!(err instanceof AttestationError)) throw new Error(`expected an AttestationError, got ${err === undefined ? 'acceptance' : String(err)}`);
  expect(err.code).toMatch(/^ERR_[A-Z_]+$/);
}

describe.each(DOCS)('mutations of %s', (file, now) => {
  const doc = loadDoc(file);
  it('verifies unmodified', () => {
    expect(verifyNitro(doc, { now, allowDebug: true, cache }).format).toBe('nitro');
  });
  it('no single-bit flip anywhere is accepted', () => {
    fc.assert(
      fc.property(fc.nat({ max: doc.length - 1 }), fc.integer({ min: 0, max: 7 }), (i, bit) => {
        const m = doc.slice();
        m[i] = m[i]! ^ (1 << bit);
        mustReject(m, now);
      }),
      { numRuns: 250 },
    );
  });
  it('byte replacements are never accepted', () => {
    fc.assert(
      fc.property(fc.nat({ max: doc.length - 1 }), fc.integer({ min: 0, max: 255 }), (i, v) => {
        fc.pre(doc[i] !== v);
        const m = doc.slice();
        m[i] = v;
        mustReject(m, now);
      }),
      { numRuns: 150 },
    );
  });
  it('truncation at any length is rejected', () => {
    fc.assert(fc.property(fc.nat({ max: doc.length - 1 }), (n) => mustReject(doc.subarray(0, n), now)), { numRuns: 150 });
  });
  it('extension with any bytes is rejected', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (tail) => {
        const m = new Uint8Array(doc.length + tail.length);
        m.set(doc);
        m.set(tail, doc.length);
        mustReject(m, now);
      }),
      { numRuns: 100 },
    );
  });
});

describe('arbitrary input', () => {
  it('any byte string gives a project error from the parser', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        try {
          parseNitroDocument(b);
        } catch (e) {
          expect(e).toBeInstanceOf(AttestationError);
          return;
        }
        throw new Error('random bytes parsed');
      }),
      { numRuns: 300 },
    );
  });
  it('CBOR-looking input (valid heads, random structure) is a project error', () => {
    const head = fc.constantFrom(0x84, 0xd2, 0xa1, 0xbf, 0x9f, 0x5a, 0x7a, 0x9b, 0xbb, 0xff, 0xf6, 0x44, 0xc6, 0x1b, 0x59);
    fc.assert(
      fc.property(fc.array(fc.oneof(head, fc.integer({ min: 0, max: 255 })), { maxLength: 200 }), (xs) => {
        try {
          parseNitroDocument(Uint8Array.from(xs));
        } catch (e) {
          expect(e).toBeInstanceOf(AttestationError);
        }
      }),
      { numRuns: 300 },
    );
  });
  it('certificate parser only throws CertParseError on mutated certificates', () => {
    const cert = parseNitroDocument(loadDoc('blocky-1.cose')).cabundle[2]!;
    fc.assert(
      fc.property(fc.nat({ max: cert.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.nat({ max: cert.length }), (i, v, cut) => {
        const m = cert.slice(0, Math.max(cut, i + 1));
        m[i] = v;
        try {
          parseCertificate(m);
        } catch (e) {
          expect(e).toBeInstanceOf(CertParseError);
        }
      }),
      { numRuns: 300 },
    );
  });
});
