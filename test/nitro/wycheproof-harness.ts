/**
 * Wycheproof ECDSA P-384/SHA-384 through exactly the functions the Nitro verifier uses: the DER suite
 * through verifyEcdsaP384Der (strict DER -> P1363, then the provider) for certificate signatures, the
 * P1363 suite through provider.verifyEcdsaP384 for the COSE signature. Both backends.
 */
import { expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fromHex } from '../../attestation/bytes.js';
import { isToolkitError } from '../../attestation/errors.js';
import { WYCHEPROOF } from './helpers.js';

interface Suite { testGroups: { publicKeyDer: string; tests: { tcId: number; msg: string; sig: string; result: string; flags: string[] }[] }[] }
const load = (f: string): Suite => JSON.parse(readFileSync(WYCHEPROOF + f, 'utf8'));
export const der = load('ecdsa_secp384r1_sha384_test.json');
export const p1363 = load('ecdsa_secp384r1_sha384_p1363_test.json');

export function run(suite: Suite, verify: (spki: Uint8Array, msg: Uint8Array, sig: Uint8Array) => boolean) {
  let n = 0;
  for (const g of suite.testGroups) {
    const spki = fromHex(g.publicKeyDer);
    for (const t of g.tests) {
      let got: boolean;
      try {
        got = verify(spki, fromHex(t.msg), fromHex(t.sig));
      } catch (e) {
        // A key the provider refuses is a project error, acceptable only for invalid vectors.
        if (!isToolkitError(e) || t.result === 'valid') throw new Error(`tcId ${t.tcId}: ${(e as Error).message}`);
        got = false;
      }
      if (t.result === 'valid') expect(got, `tcId ${t.tcId} ${t.flags}`).toBe(true);
      else if (t.result === 'invalid') expect(got, `tcId ${t.tcId} ${t.flags}`).toBe(false);
      else if (t.result !== 'acceptable') throw new Error(`unknown test result ${t.result}`);
      n++;
    }
  }
  return n;
}

