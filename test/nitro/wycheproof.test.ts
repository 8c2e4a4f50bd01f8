/** Wycheproof ECDSA P-384 through the verifier's own signature paths, node backend; noble runs in its own files (slow). */
import { describe, it, expect } from 'vitest';
import { verifyEcdsaP384Der } from '../../attestation/x509/path.js';
import { der, p1363, run } from './wycheproof-harness.js';
import { nodeCrypto as c } from '../../attestation/crypto/node.js';
import { derEcdsaToP1363 } from '../../attestation/x509/der.js';
import { fromHex } from '../../attestation/bytes.js';

describe('Wycheproof ECDSA P-384 on node', () => {
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
