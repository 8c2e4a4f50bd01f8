/**
 * Property tests for the parsers of untrusted bytes in attestation/eif: whatever the bytes, the
 * result is a description or a ToolkitError with a stable code, never another throw, and nothing is
 * allocated from a length that was not checked against the input.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isToolkitError } from '../../attestation/errors.js';
import { nodeCrypto } from '../../attestation/crypto/node.js';
import {
  bytesSource,
  crc32,
  decodeCoseSign1,
  decodeSignatureSection,
  describeEif,
  parseJsonTree,
  ryuFormat,
  serdeJson,
  type ByteSource,
} from '../../attestation/eif/index.js';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { cli, read, selfSigned, tmp } from './helpers.js';

let signed: Uint8Array;
let plain: Uint8Array;

beforeAll(async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'k'), Buffer.alloc(3000, 7));
  writeFileSync(join(dir, 'r0'), Buffer.alloc(1000, 1));
  writeFileSync(join(dir, 'r1'), Buffer.alloc(2000, 2));
  const { certPem, keyPem } = await selfSigned('P-384');
  writeFileSync(join(dir, 'c'), certPem);
  writeFileSync(join(dir, 'kk'), keyPem);
  const base = ['eif', 'build', '--kernel', join(dir, 'k'), '--cmdline', 'console=ttyS0', '--ramdisk', join(dir, 'r0'), '--ramdisk', join(dir, 'r1')];
  await cli([...base, '--out', join(dir, 'p.eif')]);
  await cli([...base, '--sign-cert', join(dir, 'c'), '--sign-key', join(dir, 'kk'), '--out', join(dir, 's.eif')]);
  plain = new Uint8Array(read(join(dir, 'p.eif')));
  signed = new Uint8Array(read(join(dir, 's.eif')));
});

/** A source that fails the test if asked for more than the input holds or for absurd lengths. */
function guarded(b: Uint8Array): ByteSource {
  const s = bytesSource(b);
  return {
    size: s.size,
    read(off, len) {
      if (len > b.length) throw new Error(`asked for ${len} bytes of a ${b.length}-byte input`);
      return s.read(off, len);
    },
  };
}

function outcome(b: Uint8Array): string {
  try {
    const d = describeEif(guarded(b), { crypto: nodeCrypto });
    return d.ok ? 'ok' : d.code!;
  } catch (e) {
    if (isToolkitError(e)) return e.code;
    throw e;
  }
}

const CODES = new Set(['ok', 'ERR_EIF_INVALID', 'ERR_EIF_CRC', 'ERR_EIF_SIGNATURE_INVALID']);

describe('describeEif properties', () => {
  it('the built images describe as ok', () => {
    expect(outcome(plain)).toBe('ok');
    expect(outcome(signed)).toBe('ok');
  });

  it('any truncation is ERR_EIF_INVALID', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.nat(), (useSigned, n) => {
        const b = useSigned ? signed : plain;
        const cut = b.subarray(0, n % b.length);
        expect(outcome(cut)).toBe('ERR_EIF_INVALID');
      }),
      { numRuns: 300 },
    );
  });

  it('flipping any byte gives a verdict or a structural error, never another throw', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 255 }), (useSigned, at, x) => {
        const b = new Uint8Array(useSigned ? signed : plain);
        b[at % b.length]! ^= x;
        const o = outcome(b);
        expect(CODES.has(o), o).toBe(true);
        // A flip anywhere but the CRC field itself is caught by something.
        if (at % b.length < 544 || at % b.length >= 548) expect(o).not.toBe('ok');
      }),
      { numRuns: 500 },
    );
  });

  it('regression: a signature-section map key that is not UTF-8 is ERR_EIF_SIGNATURE_INVALID, not a TypeError', () => {
    // Found by the byte-flip property above: TextDecoder's TypeError escaped the CBOR reader's text().
    // [ { "\xff": h'00', "a": h'00' } ]
    const bad = new Uint8Array([0x81, 0xa2, 0x61, 0xff, 0x41, 0x00, 0x61, 0x61, 0x41, 0x00]);
    let thrown: unknown;
    try {
      decodeSignatureSection(bad);
    } catch (e) {
      thrown = e;
    }
    expect(isToolkitError(thrown)).toBe(true);
    expect((thrown as { code?: string }).code).toBe('ERR_EIF_SIGNATURE_INVALID');
  });

  it('crafted headers (random bytes after the magic) never crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 2000 }), (tail) => {
        const b = new Uint8Array(4 + tail.length);
        b.set([0x2e, 0x65, 0x69, 0x66]);
        b.set(tail, 4);
        expect(CODES.has(outcome(b))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('a header whose table claims huge sections is refused without reading them', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.integer({ min: 0, max: 31 }), (size, i) => {
        const b = new Uint8Array(plain);
        new DataView(b.buffer).setBigUint64(28 + 256 + 8 * i, size);
        expect(CODES.has(outcome(b))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe('signature section and COSE_Sign1 decoders', () => {
  const sigCodes = (f: () => unknown) => {
    try {
      f();
      return 'ok';
    } catch (e) {
      if (isToolkitError(e)) return e.code;
      throw e;
    }
  };
  it('random bytes are ERR_EIF_SIGNATURE_INVALID or decode', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        expect(['ok', 'ERR_EIF_SIGNATURE_INVALID']).toContain(sigCodes(() => decodeSignatureSection(b)));
        expect(['ok', 'ERR_EIF_SIGNATURE_INVALID']).toContain(sigCodes(() => decodeCoseSign1(b)));
      }),
      { numRuns: 500 },
    );
  });
  it('a claimed array length beyond the input is refused before allocating', () => {
    // [ {"signing_certificate": array(2^32-1) ...
    const b = Uint8Array.from([0x81, 0xa2, 0x73, ...Buffer.from('signing_certificate'), 0x9a, 0xff, 0xff, 0xff, 0xff]);
    expect(sigCodes(() => decodeSignatureSection(b))).toBe('ERR_EIF_SIGNATURE_INVALID');
  });
});

describe('small pure pieces, checked against independent implementations', () => {
  it('CRC-32 equals zlib.crc32, incrementally too', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), (a, b) => {
        expect(crc32(b, crc32(a))).toBe(zlibCrc32(Buffer.concat([a, b])));
      }),
    );
  });
  it('ryu layout of doubles (serde_json float output)', () => {
    const cases: [number, string][] = [
      [1, '1.0'], [1.5, '1.5'], [1000, '1000.0'], [-0, '-0.0'], [0, '0.0'], [0.001234, '0.001234'], [1e-7, '1e-7'], [1.5e-7, '1.5e-7'],
      [1e16, '1e16'], [1e15, '1000000000000000.0'], [123456789012345680000, '1.2345678901234568e20'], [0.1, '0.1'], [-2.5e-5, '-0.000025'], [5e-324, '5e-324'],
    ];
    for (const [x, s] of cases) expect(ryuFormat(x), String(x)).toBe(s);
  });
  it('JSON re-serialisation: sorted keys, last duplicate wins, strict syntax refused with ERR_INPUT_ENCODING', () => {
    expect(serdeJson(parseJsonTree('{"b":1,"a":2,"b":3}'))).toBe('{"a":2,"b":3}');
    expect(serdeJson(parseJsonTree('[18446744073709551615, -9223372036854775808, 18446744073709551616]'))).toBe(
      '[18446744073709551615,-9223372036854775808,1.8446744073709552e19]',
    );
    for (const bad of ['{"a":1,}', '[1 2]', "{'a':1}", '01', '"\\ud800"', '[' .repeat(100) + ']'.repeat(100), 'nul']) {
      let code = 'ok';
      try {
        parseJsonTree(bad);
      } catch (e) {
        code = isToolkitError(e) ? e.code : 'other';
      }
      expect(code, bad).toBe('ERR_INPUT_ENCODING');
    }
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v);
        expect(JSON.parse(serdeJson(parseJsonTree(text)))).toEqual(JSON.parse(text));
      }),
      { numRuns: 200 },
    );
  });
});
