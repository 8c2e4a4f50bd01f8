// A CBOR head need not be minimal, so one key can be spelled two ways. The duplicate-key check
// compared key *bytes*, so `"nonce"` and a long-form `"nonce"` (or `1` and `18 01`) both passed it,
// and cbor-x then kept only the last value: a parser differential with any verifier that keeps the
// first, on a format whose README promises "no duplicate keys".
import { describe, expect, it } from 'vitest';
import { checkCbor, parseNitroDocument } from '../../attestation/nitro/parse.js';
import { cborBstr, cborHead, cborTstr, cborUint64, PROTECTED_ES384 } from '../../attestation/nitro/cose.js';
import { encodeCoseSign1 } from '../../attestation/sim/nitro.js';
import { concatBytes } from '../../attestation/bytes.js';
import { AttestationError } from '../../attestation/errors.js';

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const reasonOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationError);
    expect((e as AttestationError).code).toBe('ERR_NITRO_DOC_INVALID');
    return (e as AttestationError).reason;
  }
  return 'accepted';
};
const longText = (s: string) => concatBytes(Uint8Array.of(0x78, s.length), new TextEncoder().encode(s));

function payload(extra: Uint8Array[] = []): Uint8Array {
  const entries: Uint8Array[] = [
    cborTstr('module_id'), cborTstr('i-0-enc0'),
    cborTstr('digest'), cborTstr('SHA384'),
    cborTstr('timestamp'), cborUint64(1_700_000_000_000),
    cborTstr('pcrs'), concatBytes(cborHead(5, 1), cborHead(0, 0), cborBstr(new Uint8Array(48).fill(1))),
    cborTstr('certificate'), cborBstr(new Uint8Array(100).fill(0x30)),
    cborTstr('cabundle'), concatBytes(cborHead(4, 1), cborBstr(new Uint8Array(100).fill(0x30))),
    cborTstr('public_key'), Uint8Array.of(0xf6),
    cborTstr('user_data'), Uint8Array.of(0xf6),
    cborTstr('nonce'), cborBstr(new Uint8Array(16).fill(0xaa)),
    ...extra,
  ];
  return concatBytes(cborHead(5, entries.length / 2), ...entries);
}

describe('Nitro CBOR: duplicate keys spelled differently', () => {
  it('text keys: short and long form of the same string', () => {
    expect(reasonOf(() => checkCbor(hex('a2 61 61 01 78 01 61 02')))).toBe('cbor');
    expect(reasonOf(() => checkCbor(hex('a2 61 61 01 79 0001 61 02')))).toBe('cbor');
  });

  it('integer keys: 1 and 18 01, -1 and 38 00', () => {
    expect(reasonOf(() => checkCbor(hex('a2 01 01 18 01 02')))).toBe('cbor');
    expect(reasonOf(() => checkCbor(hex('a2 20 01 38 00 02')))).toBe('cbor');
  });

  it('distinct keys still pass: 1 vs -2, "a" vs h\'61\', "a" vs "b"', () => {
    expect(() => checkCbor(hex('a2 01 01 21 02'))).not.toThrow();
    expect(() => checkCbor(hex('a2 61 61 01 41 61 02'))).not.toThrow();
    expect(() => checkCbor(hex('a2 61 61 01 78 01 62 02'))).not.toThrow();
  });

  it('a document whose payload repeats "nonce" in long form is refused, not read as the last nonce', () => {
    const ok = encodeCoseSign1(PROTECTED_ES384, payload(), new Uint8Array(96));
    expect(parseNitroDocument(ok).nonce).toEqual(new Uint8Array(16).fill(0xaa));
    const dup = encodeCoseSign1(PROTECTED_ES384, payload([longText('nonce'), cborBstr(new Uint8Array(16).fill(0xbb))]), new Uint8Array(96));
    expect(reasonOf(() => parseNitroDocument(dup))).toBe('cbor');
  });

  it('the protected header cannot say {1: -35, 1: <other>} with a long-form key', () => {
    const prot = hex('a2 01 38 22 18 01 38 22');
    expect(reasonOf(() => parseNitroDocument(encodeCoseSign1(prot, payload(), new Uint8Array(96))))).toBe('cbor');
  });
});
