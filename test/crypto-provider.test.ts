import { describe, it, expect } from 'vitest';
import { generateKeyPairSync, sign, constants } from 'node:crypto';
import { nodeCrypto } from '../attestation/crypto/node.js';
import { nobleCrypto } from '../attestation/crypto/noble.js';
import { AttestationError } from '../attestation/errors.js';

const msg = new TextEncoder().encode('enclavekit');

describe.each([nodeCrypto, nobleCrypto])('crypto provider $name', (c) => {
  it('verifies ECDSA P-384 and rejects a flipped bit', () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
    const sig = new Uint8Array(sign('sha384', msg, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
    expect(c.verifyEcdsaP384(spki, msg, sig)).toBe(true);
    sig[10]! ^= 1;
    expect(c.verifyEcdsaP384(spki, msg, sig)).toBe(false);
    expect(c.verifyEcdsaP384(spki, msg, sig.subarray(1))).toBe(false);
  });

  it('verifies RSA-PSS SHA-384 salt 48 and rejects a flipped bit', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
    const sig = new Uint8Array(
      sign('sha384', msg, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }),
    );
    expect(c.verifyRsaPssSha384(spki, msg, sig)).toBe(true);
    sig[3]! ^= 1;
    expect(c.verifyRsaPssSha384(spki, msg, sig)).toBe(false);
  });

  it('throws ERR_CERT_INVALID for a key of the wrong type or garbage', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
    expect(() => c.verifyEcdsaP384(spki, msg, new Uint8Array(96))).toThrow(AttestationError);
    expect(() => c.verifyRsaPssSha384(spki, msg, new Uint8Array(256))).toThrow(AttestationError);
    expect(() => c.verifyEcdsaP384(new Uint8Array([1, 2, 3]), msg, new Uint8Array(96))).toThrow(
      expect.objectContaining({ code: 'ERR_CERT_INVALID' }),
    );
  });

  it('hashes', () => {
    expect(Buffer.from(c.sha256(new Uint8Array())).toString('hex')).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    expect(c.sha384(msg)).toEqual(nodeCrypto.sha384(msg));
  });
});
