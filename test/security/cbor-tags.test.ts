// The frame decoder fell back to cbor-x for input the strict canonical path refuses, and cbor-x acts
// on tags while decoding: shared references (tags 28/29) turned ~200 bytes into a structure of 2^23
// nodes (which the canonicality re-encode then walked), and other tags built RegExp/Date/Set objects.
// A structural walk now refuses every tag, deep nesting and lying lengths before cbor-x runs.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeMessage, encodeCanonical } from '../../enclave/protocol/index.js';
import { checkCborStructure, decodeCanonical, decodeCbor, encodeCborFast, MAX_CBOR_DEPTH } from '../../enclave/protocol/cbor.js';
import { Decoder } from 'cbor-x/decode-no-eval';
import { expectCode, onlyProjectErrors } from '../pipeline/helpers.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));

/** [L0..L22], Lk = shareable([ref(k-1), ref(k-1)]): 2^23 leaves once expanded. */
function sharedRefBomb(levels = 23): Uint8Array {
  const out: number[] = [0x80 | levels, 0xd8, 0x1c, 0x82, 0x00, 0x00];
  for (let k = 1; k < levels; k++) out.push(0xd8, 0x1c, 0x82, 0xd8, 0x1d, k - 1, 0xd8, 0x1d, k - 1);
  return Uint8Array.from(out);
}

const hasProto = (v: unknown): boolean =>
  v !== null && typeof v === 'object' && (Object.prototype.hasOwnProperty.call(v, '__proto__') || Object.values(v).some(hasProto));

function reason(fn: () => unknown): [string, string | undefined] {
  try {
    fn();
  } catch (e) {
    const t = e as { code: string; reason?: string };
    return [t.code, t.reason];
  }
  throw new Error('expected a throw');
}

describe('CBOR tags and structure are refused before cbor-x decodes', () => {
  it('the shared-reference bomb is refused (and cbor-x alone would have built it)', () => {
    const bomb = sharedRefBomb();
    expect(bomb.length).toBeLessThan(213);
    // What the walk prevents: cbor-x resolves the references into a shared 2^23-leaf structure.
    const raw = new Decoder({ useRecords: false, mapsAsObjects: true, structuredClone: true } as ConstructorParameters<typeof Decoder>[0]).decode(bomb) as unknown[][];
    expect(raw[22]![0]).toBe(raw[21]);
    expect(reason(() => decodeMessage(bomb))).toEqual(['ERR_PROTOCOL', 'cbor_tag']);
    // Inside a records-shaped frame (strict path refuses, general path must refuse too).
    const body = Buffer.concat([hex('a26172'), bomb, hex('617401')]);
    expect(reason(() => decodeMessage(body))).toEqual(['ERR_PROTOCOL', 'cbor_tag']);
    expect(reason(() => decodeCanonical(bomb, 'ERR_RESULT_INVALID', 'r'))).toEqual(['ERR_RESULT_INVALID', 'cbor_tag']);
  });

  it('every tag is refused: date, regexp, set, typed arrays, bignums, self-described', () => {
    for (const t of ['c074323032302d30312d30315a', 'c11a00000001', 'd9010a6161', 'd9010280', 'd84040', 'c24101', 'd9d9f700', 'a16161c100']) {
      expect(reason(() => decodeMessage(hex(t)))).toEqual(['ERR_PROTOCOL', 'cbor_tag']);
    }
  });

  it('nesting deeper than MAX_CBOR_DEPTH is refused; up to it the walk passes', () => {
    const nest = (n: number): Uint8Array => Uint8Array.from([...new Array<number>(n).fill(0x81), 0x00]);
    expect(() => checkCborStructure(nest(MAX_CBOR_DEPTH), 'ERR_PROTOCOL', 't')).not.toThrow();
    expect(reason(() => decodeMessage(nest(MAX_CBOR_DEPTH + 1)))).toEqual(['ERR_PROTOCOL', 'cbor_depth']);
    expect(reason(() => decodeMessage(nest(100_000)))).toEqual(['ERR_PROTOCOL', 'cbor_depth']);
    const indef = Uint8Array.from([...new Array<number>(200).fill(0x9f), ...new Array<number>(200).fill(0xff)]);
    expect(reason(() => decodeMessage(indef))).toEqual(['ERR_PROTOCOL', 'cbor_depth']);
  });

  it('item count, declared lengths, simple values and trailing bytes', () => {
    expect(reason(() => checkCborStructure(hex('83010203'), 'ERR_PROTOCOL', 't', 3))).toEqual(['ERR_PROTOCOL', 'cbor_items']);
    expect(() => checkCborStructure(hex('83010203'), 'ERR_PROTOCOL', 't', 4)).not.toThrow();
    for (const t of ['9bffffffffffffffff', '5a7fffffff', 'bb0000000100000000', 'f0', 'f820', 'ff', '0102', '', '9f01', 'bf01ff', '5f4101ff', '5f6101ff', '1f']) {
      expect(reason(() => decodeMessage(hex(t)))).toEqual(['ERR_PROTOCOL', 'cbor']);
    }
  });

  it('property: what the walk lets through is what cbor-x decoded before; any bytes give ERR_PROTOCOL or a message', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => {
        const b = encodeCborFast(v);
        // An own "__proto__" key (fc.jsonValue makes some) is refused by design: cbor-x would rename it.
        if (hasProto(v)) {
          expect(() => checkCborStructure(b, 'ERR_PROTOCOL', 't')).toThrow(expect.objectContaining({ reason: 'proto_key' }));
          return;
        }
        expect(() => checkCborStructure(b, 'ERR_PROTOCOL', 't')).not.toThrow();
        const c = encodeCanonical(JSON.parse(JSON.stringify(v)));
        expect(() => checkCborStructure(c, 'ERR_PROTOCOL', 't')).not.toThrow();
        expect(decodeCbor(c, 'ERR_PROTOCOL', 't')).toBeDefined();
      }),
      { numRuns: 300 },
    );
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => onlyProjectErrors(() => decodeMessage(b), ['ERR_PROTOCOL'])), { numRuns: 300 });
  });

  it('a tag in a result document is refused with the caller code', () => {
    expectCode(() => decodeCanonical(hex('c11a00000001'), 'ERR_RESULT_INVALID', 't'), 'ERR_RESULT_INVALID');
  });
});
