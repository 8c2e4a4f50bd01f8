/**
 * The pipeline's CBOR (enclave/protocol/cbor.ts): the bounded structural walk, the strict cbor-x
 * decode, canonical decoding (decode, re-encode, compare) and the span decoder for record batches.
 * Differential check: whatever the span decoder accepts, canonical decoding accepts too, with the
 * same value (both promise "canonical, or refused").
 */
import { isDeepStrictEqual } from 'node:util';
import { checkCborStructure, decodeCanonical, decodeCanonicalSpans, decodeCbor, encodeCanonical } from '../../../enclave/protocol/cbor.js';
import { ToolkitError } from '../../../attestation/errors.js';
import { canonicalResults, canonicalValues, frames } from '../seeds.js';
import { FuzzInvariantError, type FuzzTarget } from '../types.js';
import { runAllSync } from './_util.js';

const target: FuzzTarget = {
  name: 'cbor',
  description: 'checkCborStructure, decodeCbor, decodeCanonical and decodeCanonicalSpans (differential: spans accepted => canonical, same value)',
  covers: ['enclave/protocol/cbor.ts'],
  format: 'cbor',
  maxLen: 64 * 1024,
  dict: ['__proto__', 'records', 't', 'id', 'jobId'],
  seeds: () => [...canonicalValues(), ...canonicalResults(), ...frames().map((f) => f.subarray(4))],
  run(input) {
    runAllSync([
      () => checkCborStructure(input, 'ERR_PROTOCOL', 'fuzz', 1000),
      () => decodeCbor(input, 'ERR_PROTOCOL', 'fuzz'),
      () => {
        const spans = decodeCanonicalSpans(input, 'records', 100_000);
        if (spans === undefined) return;
        let v: unknown;
        try {
          v = decodeCanonical(input, 'ERR_PROTOCOL', 'fuzz');
        } catch (e) {
          if (e instanceof ToolkitError) throw new FuzzInvariantError(`decodeCanonicalSpans accepted bytes that decodeCanonical refuses (${e.reason})`);
          throw e;
        }
        if (!isDeepStrictEqual(spans.value, v)) throw new FuzzInvariantError('decodeCanonicalSpans and decodeCanonical decode different values');
        const last = spans.offsets[spans.offsets.length - 1];
        if (last === undefined || last > input.length) throw new FuzzInvariantError('span offsets run past the input');
      },
      () => {
        const v = decodeCanonical(input, 'ERR_RESULT_INVALID', 'fuzz');
        const again = encodeCanonical(v);
        if (again.length !== input.length || again.some((x, i) => x !== input[i])) throw new FuzzInvariantError('decodeCanonical accepted bytes that do not re-encode to themselves');
      },
    ]);
  },
};
export default target;
