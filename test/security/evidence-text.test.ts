// decodeEvidenceText reads untrusted files and stdin. Base64 with wrong padding (`a==`, `abcde=`)
// reached atob, whose DOMException escaped as a non-project error from `enclavekit verify`.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeEvidenceText } from '../../attestation/bytes.js';
import { AttestationError } from '../../attestation/errors.js';

const enc = (s: string) => new TextEncoder().encode(s);
function outcome(s: string): string {
  try {
    return Buffer.from(decodeEvidenceText(enc(s))).toString('hex');
  } catch (e) {
    if (e instanceof AttestationError) return e.code;
    throw e;
  }
}

describe('decodeEvidenceText on untrusted text', () => {
  it('badly padded base64 is ERR_INPUT_ENCODING, not a DOMException', () => {
    for (const s of ['a==', 'abcde=', 'abcde==', 'ab=', 'abcdef=', 'a===', '====', 'QUJD====='])
      expect(outcome(s)).toBe('ERR_INPUT_ENCODING');
  });

  it('well-formed base64, padded or not, standard or url-safe, still decodes', () => {
    expect(outcome('QUJD')).toBe('414243');
    expect(outcome('QUI=')).toBe('4142');
    expect(outcome('QUI')).toBe('4142');
    expect(outcome('QQ==')).toBe('41');
    expect(outcome('QQ')).toBe('41');
    expect(outcome('-_8')).toBe(Buffer.from([0xfb, 0xff]).toString('hex'));
    expect(outcome('-----BEGIN X-----\nQUJD\nREVG\n-----END X-----\n')).toBe('414243444546');
    expect(outcome('a1b2')).toBe('a1b2');
  });

  it('any printable text gives bytes or a project error', () => {
    const ch = fc.constantFrom(...'ABCDEFabcdef0123456789+/_-= \n'.split(''));
    fc.assert(
      fc.property(fc.array(ch, { minLength: 1, maxLength: 40 }), (a) => {
        outcome(a.join(''));
      }),
      { numRuns: 2000 },
    );
  });
});
