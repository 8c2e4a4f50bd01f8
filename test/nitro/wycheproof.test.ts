/**
 * Wycheproof ECDSA P-384/SHA-384 through exactly the functions the Nitro verifier uses: the DER suite
 * through verifyEcdsaP384Der (strict DER -> P1363, then the provider) for certificate signatures, the
 * P1363 suite through provider.verifyEcdsaP384 for the COSE signature. Both backends.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { nodeCrypto } from '../../attestation/crypto/node.js';
import { nobleCrypto } from '../../attestation/crypto/noble.js';
import { verifyEcdsaP384Der } from '../../attestation/x509/path.js';
import { derEcdsaToP1363 } from '../../attestation/x509/der.js';
import { fromHex } from '../../attestation/bytes.js';
import { isToolkitError } from '../../attestation/errors.js';
import type { CryptoProvider } from '../../attestation/crypto/provider.js';
import { WYCHEPROOF } from './helpers.js';

interface Suite { testGroups: { publicKeyDer: string; tests: { tcId: number; msg: string; sig: string; result: string; flags: string[] }[] }[] }
const load = (f: string): Suite => JSON.parse(readFileSync(WYCHEPROOF + f, 'utf8'));
const der = load('ecdsa_secp384r1_sha384_test.json');
const p1363 = load('ecdsa_secp384r1_sha384_p1363_test.json');

function run(suite: Suite, verify: (spki: Uint8Array, msg: Uint8Array, sig: Uint8Array) => boolean) {
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

describe.each([nodeCrypto, nobleCrypto] as CryptoProvider[])('Wycheproof ECDSA P-384 on $name', (c) => {
  it('DER suite through the certificate-signature path (strict DER -> P1363)', () => {
    expect(run(der, (k, m, s) => verifyEcdsaP384Der(c, k, m, s))).toBe(504);
  });
  it('P1363 suite through the COSE-signature path', () => {
    expect(run(p1363, (k, m, s) => c.verifyEcdsaP384(k, m, s))).toBe(280);
  });
});

describe('derEcdsaToP1363', () => {
  it('rejects every BER variation of a valid signature', () => {
    const ok = fromHex('3006020101020102');
    expect(derEcdsaToP1363(ok)).toHaveLength(96);
    for (const bad of ['308106020101020102', '3007020101020102', '30060201010201020000', '3006020181020102', '300702020001020102', '3006020100020102'.replace('0201000201', '0201800201'), '3080020101020102']) {
      expect(derEcdsaToP1363(fromHex(bad)), bad).toBeUndefined();
    }
    // r longer than 48 bytes.
    expect(derEcdsaToP1363(fromHex('3036' + '0231' + '01'.repeat(49) + '020101'))).toBeUndefined();
  });
});
