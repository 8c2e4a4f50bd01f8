/** One negative test per parse rule; each failure is ERR_NITRO_DOC_INVALID with its own reason. */
import { describe, it, expect } from 'vitest';
import { parseNitroDocument, checkCbor } from '../../attestation/nitro/parse.js';
import { cborBstr, cborHead, cborTstr, cborUint64, PROTECTED_ES384 } from '../../attestation/nitro/cose.js';
import { encodeCoseSign1 } from '../../attestation/sim/nitro.js';
import { concatBytes, toHex } from '../../attestation/bytes.js';
import { attErr, loadDoc, pcr } from './helpers.js';

type Entry = [string | Uint8Array, Uint8Array];
const NULL = Uint8Array.of(0xf6);
const enc = (x: string | Uint8Array) => (typeof x === 'string' ? cborTstr(x) : x);
const map = (entries: Entry[]) => concatBytes(cborHead(5, entries.length), ...entries.flatMap(([k, v]) => [enc(k), v]));
const arr = (items: Uint8Array[]) => concatBytes(cborHead(4, items.length), ...items);
const pcrMap = (m: [number, Uint8Array][]) => concatBytes(cborHead(5, m.length), ...m.flatMap(([k, v]) => [cborHead(0, k), cborBstr(v)]));
const CERT = new Uint8Array(100).fill(0x30);

function base(): Entry[] {
  return [
    ['module_id', cborTstr('i-0-enc0')],
    ['digest', cborTstr('SHA384')],
    ['timestamp', cborUint64(1_700_000_000_000)],
    ['pcrs', pcrMap([[0, pcr(1)], [1, pcr(2)]])],
    ['certificate', cborBstr(CERT)],
    ['cabundle', arr([cborBstr(CERT)])],
    ['public_key', NULL],
    ['user_data', NULL],
    ['nonce', NULL],
  ];
}
const SIG = new Uint8Array(96).fill(7);
const cose = (payload: Uint8Array, prot: Uint8Array = PROTECTED_ES384, sig: Uint8Array = SIG) => encodeCoseSign1(prot, payload, sig);
function withField(name: string, value: Uint8Array | undefined): Uint8Array {
  const e = base().filter(([k]) => k !== name);
  if (value !== undefined) e.push([name, value]);
  return cose(map(e));
}
const reason = (bytes: Uint8Array) => {
  const e = attErr(() => parseNitroDocument(bytes));
  expect(e.code).toBe('ERR_NITRO_DOC_INVALID');
  return e.reason;
};

describe('parseNitroDocument: accepted shapes', () => {
  it('a minimal well-formed document parses, keeping the exact payload bytes', () => {
    const payload = map(base());
    const p = parseNitroDocument(cose(payload));
    expect(toHex(p.payload)).toBe(toHex(payload));
    expect(p.tagged).toBe(false);
    expect(p.timestamp).toBe(1_700_000_000_000);
    expect(p.publicKey).toBeUndefined();
  });
  it('empty optional byte strings stay empty, distinct from null', () => {
    const p = parseNitroDocument(withField('user_data', cborBstr(new Uint8Array(0))));
    expect(p.userData).toEqual(new Uint8Array(0));
    expect(parseNitroDocument(withField('nonce', undefined)).nonce).toBeUndefined();
  });
  it('1024-byte optional fields are accepted (the real NSM does)', () => {
    expect(parseNitroDocument(withField('nonce', cborBstr(new Uint8Array(1024)))).nonce).toHaveLength(1024);
  });
  it('tag 18 is accepted', () => {
    expect(parseNitroDocument(concatBytes(Uint8Array.of(0xd2), cose(map(base())))).tagged).toBe(true);
  });
  it('the real base-1 document has an indefinite-length payload map', () => {
    const p = parseNitroDocument(loadDoc('base-1.cose'));
    expect(p.payload[0]).toBe(0xbf);
  });
});

describe('parseNitroDocument: one negative test per rule', () => {
  const cases: [string, () => Uint8Array, string][] = [
    ['empty input', () => new Uint8Array(0), 'empty'],
    ['oversized input', () => new Uint8Array(40_000), 'too_large'],
    ['trailing bytes after the envelope', () => concatBytes(cose(map(base())), Uint8Array.of(0)), 'trailing_bytes'],
    ['truncated envelope', () => cose(map(base())).subarray(0, 200), 'cbor'],
    ['another tag than 18', () => concatBytes(Uint8Array.of(0xd1), cose(map(base()))), 'cbor'],
    ['envelope of 3 items', () => concatBytes(Uint8Array.of(0x83), cborBstr(PROTECTED_ES384), Uint8Array.of(0xa0), cborBstr(map(base()))), 'cose_structure'],
    ['envelope is a map', () => Uint8Array.of(0xa0), 'cose_structure'],
    ['protected header empty', () => cose(map(base()), new Uint8Array(0)), 'protected_header'],
    ['alg ES256 (-7)', () => cose(map(base()), Uint8Array.of(0xa1, 0x01, 0x26)), 'alg'],
    ['alg as text "ES384"', () => cose(map(base()), concatBytes(Uint8Array.of(0xa1, 0x01), cborTstr('ES384'))), 'alg'],
    ['unprotected header null', () => concatBytes(Uint8Array.of(0x84), cborBstr(PROTECTED_ES384), NULL, cborBstr(map(base())), cborBstr(SIG)), 'unprotected_header'],
    ['alg in the unprotected header', () => concatBytes(Uint8Array.of(0x84), cborBstr(PROTECTED_ES384), Uint8Array.of(0xa1, 0x01, 0x38, 0x22), cborBstr(map(base())), cborBstr(SIG)), 'unprotected_header'],
    ['payload empty', () => cose(new Uint8Array(0)), 'payload'],
    ['signature of 64 bytes', () => cose(map(base()), PROTECTED_ES384, new Uint8Array(64)), 'signature_length'],
    ['payload not a map', () => cose(arr([])), 'payload_type'],
    ['payload with trailing bytes', () => cose(concatBytes(map(base()), Uint8Array.of(0))), 'trailing_bytes'],
    ['payload with a float', () => withField('digest', Uint8Array.of(0xf9, 0x3c, 0x00)), 'cbor'],
    ['payload with a nested tag', () => withField('timestamp', concatBytes(Uint8Array.of(0xc1), cborUint64(1))), 'cbor'],
    ['payload with a duplicate key', () => cose(map([...base(), ['nonce', NULL]])), 'cbor'],
    ['indefinite-length byte string', () => withField('nonce', Uint8Array.of(0x5f, 0x41, 0x00, 0xff)), 'cbor'],
    ['unterminated indefinite map', () => cose(concatBytes(Uint8Array.of(0xbf), ...base().flatMap(([k, v]) => [enc(k), v]))), 'cbor'],
    ['array declaring 2^32-1 items', () => withField('cabundle', Uint8Array.of(0x9a, 0xff, 0xff, 0xff, 0xff)), 'cbor'],
    ['non-text key', () => cose(map([...base(), [cborHead(0, 1), NULL]])), 'field_key'],
    ['unknown field', () => cose(map([...base(), ['extra', NULL]])), 'unknown_field'],
    ['module_id missing', () => withField('module_id', undefined), 'missing_field'],
    ['cabundle null', () => withField('cabundle', NULL), 'missing_field'],
    ['module_id empty', () => withField('module_id', cborTstr('')), 'module_id'],
    ['module_id with invalid UTF-8', () => withField('module_id', Uint8Array.of(0x62, 0xc3, 0x28)), 'cbor'],
    ['module_id not text', () => withField('module_id', cborBstr(Uint8Array.of(1))), 'module_id'],
    ['digest SHA256', () => withField('digest', cborTstr('SHA256')), 'digest'],
    ['timestamp zero', () => withField('timestamp', cborHead(0, 0)), 'timestamp'],
    ['timestamp negative', () => withField('timestamp', cborHead(1, 5)), 'timestamp'],
    ['timestamp beyond 2^53', () => withField('timestamp', Uint8Array.of(0x1b, 0xff, 0, 0, 0, 0, 0, 0, 0)), 'timestamp'],
    ['pcrs empty', () => withField('pcrs', pcrMap([])), 'pcrs'],
    ['pcrs with 33 entries', () => withField('pcrs', concatBytes(cborHead(5, 33), ...Array.from({ length: 33 }, (_, i) => [cborHead(0, i), cborBstr(pcr(0))]).flat())), 'pcrs'],
    ['PCR index 32', () => withField('pcrs', pcrMap([[32, pcr(1)]])), 'pcr_index'],
    ['PCR index as text', () => withField('pcrs', concatBytes(cborHead(5, 1), cborTstr('0'), cborBstr(pcr(1)))), 'pcr_index'],
    ['PCR of 47 bytes', () => withField('pcrs', pcrMap([[0, pcr(1, 47)]])), 'pcr_length'],
    ['certificate empty', () => withField('certificate', cborBstr(new Uint8Array(0))), 'certificate'],
    ['certificate of 1025 bytes', () => withField('certificate', cborBstr(new Uint8Array(1025))), 'certificate'],
    ['cabundle empty', () => withField('cabundle', arr([])), 'cabundle'],
    ['cabundle entry not bytes', () => withField('cabundle', arr([cborTstr('x')])), 'cabundle_entry'],
    ['cabundle entry of 1025 bytes', () => withField('cabundle', arr([cborBstr(new Uint8Array(1025))])), 'cabundle_entry'],
    ['public_key of 1025 bytes', () => withField('public_key', cborBstr(new Uint8Array(1025))), 'public_key'],
    ['user_data as text', () => withField('user_data', cborTstr('x')), 'user_data'],
    ['nonce as integer', () => withField('nonce', cborHead(0, 1)), 'nonce'],
  ];
  it.each(cases)('%s', (_t, make, want) => {
    expect(reason(make())).toBe(want);
  });

  it('every rule has its own reason', () => {
    const reasons = new Set(cases.map((c) => c[2]));
    expect(reasons.size).toBeGreaterThanOrEqual(25);
  });

  it('caller misuse is a TypeError, not evidence failure', () => {
    expect(() => parseNitroDocument('84' as unknown as Uint8Array)).toThrow(TypeError);
  });

  it('checkCbor bounds nesting depth', () => {
    const deep = concatBytes(new Uint8Array(50).fill(0x81), Uint8Array.of(0x00));
    expect(attErr(() => checkCbor(deep)).reason).toBe('cbor');
  });
});
