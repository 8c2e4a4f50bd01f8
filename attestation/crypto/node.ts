/** node:crypto backend. The one file under attestation/ that imports a `node:` module. */
import { createHash, createPublicKey, verify, constants, type KeyObject } from 'node:crypto';
import { AttestationError } from '../errors.js';
import type { CryptoProvider } from './provider.js';

// Importing a public key costs about as much as a verification; certificates repeat, so keep a few.
const KEY_CACHE_MAX = 256;
const keyCache = new Map<string, KeyObject>();

function importSpki(spki: Uint8Array, want: 'ec' | 'rsa'): KeyObject {
  const id = Buffer.from(spki.buffer, spki.byteOffset, spki.byteLength).toString('base64');
  let key = keyCache.get(id);
  if (key === undefined) {
    try {
      key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    } catch (cause) {
      throw new AttestationError('ERR_CERT_INVALID', 'public key is not a valid SubjectPublicKeyInfo', {
        cause,
        reason: 'public_key',
      });
    }
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value!);
    keyCache.set(id, key);
  }
  const type = key.asymmetricKeyType;
  if (want === 'ec' && (type !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1'))
    throw new AttestationError('ERR_CERT_INVALID', 'public key is not ECDSA P-384', { reason: 'public_key_type' });
  if (want === 'rsa' && type !== 'rsa' && type !== 'rsa-pss')
    throw new AttestationError('ERR_CERT_INVALID', 'public key is not RSA', { reason: 'public_key_type' });
  return key;
}

export const nodeCrypto: CryptoProvider = Object.freeze({
  name: 'node',
  sha256: (data: Uint8Array) => new Uint8Array(createHash('sha256').update(data).digest()),
  sha384: (data: Uint8Array) => new Uint8Array(createHash('sha384').update(data).digest()),
  verifyEcdsaP384(spki: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    const key = importSpki(spki, 'ec');
    if (signature.length !== 96) return false;
    try {
      return verify('sha384', message, { key, dsaEncoding: 'ieee-p1363' }, signature);
    } catch {
      return false;
    }
  },
  verifyRsaPssSha384(spki: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    const key = importSpki(spki, 'rsa');
    try {
      return verify(
        'sha384',
        message,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 },
        signature,
      );
    } catch {
      return false;
    }
  },
});
