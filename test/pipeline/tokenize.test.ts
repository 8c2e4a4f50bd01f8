/** Issue 6 (pipeline throughput): the ASCII fast path of `tokenize` gives the Unicode path's tokens. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { tokenize } from '../../enclave/analytics/lexicon.js';

/** The Unicode-aware definition, as `tokenize` states it. */
function reference(text: string, maxTokens: number): string[] {
  const out: string[] = [];
  const re = /[\p{L}\p{N}']+/gu;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null && out.length < maxTokens) {
    const w = m[0].toLowerCase().replace(/^'+|'+$/g, '');
    if (w.length > 0) out.push(w);
  }
  return out;
}

describe('tokenize', () => {
  it('property: ASCII and mixed text tokenize as the regex definition says', () => {
    const text = fc.oneof(
      fc.string({ unit: fc.constantFrom(...'ab Z9\'\'.,!-_\t\nXyQ0'.split('')), maxLength: 60 }),
      fc.string({ unit: 'binary-ascii', maxLength: 60 }),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      fc.constantFrom("Don't 'quoted' ''' DELAYED!", 'İstanbul naïve CAFÉ', "it's 'ok'"),
    );
    fc.assert(fc.property(text, fc.integer({ min: 0, max: 12 }), (t, max) => {
      expect(tokenize(t, max)).toEqual(reference(t, max));
      expect(tokenize(t)).toEqual(reference(t, 10_000));
    }), { numRuns: 300 });
  });
});
