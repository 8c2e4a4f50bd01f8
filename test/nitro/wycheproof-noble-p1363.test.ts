import { describe, it, expect } from 'vitest';
import { p1363, run } from './wycheproof-harness.js';
import { nobleCrypto as c } from '../../attestation/crypto/noble.js';

describe('Wycheproof ECDSA P-384 P1363 suite on noble', () => {
  it('through the COSE-signature path', () => {
    expect(run(p1363, (k, m, s) => c.verifyEcdsaP384(k, m, s))).toBe(280);
  });
});
