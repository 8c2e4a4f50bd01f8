import { describe, it, expect } from 'vitest';
import { verifyEcdsaP384Der } from '../../attestation/x509/path.js';
import { der, run } from './wycheproof-harness.js';
import { nobleCrypto as c } from '../../attestation/crypto/noble.js';

describe('Wycheproof ECDSA P-384 DER suite on noble', () => {
  it('through the certificate-signature path (strict DER -> P1363)', () => {
    expect(run(der, (k, m, s) => verifyEcdsaP384Der(c, k, m, s))).toBe(504);
  });
});
