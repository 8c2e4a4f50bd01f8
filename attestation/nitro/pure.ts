/** verifyNitro defaulting to the pure-JS noble provider (the `enclavekit/attestation/pure` entry). */
import { nobleCrypto } from '../crypto/noble.js';
import { verifyNitroWith, type NitroVerifyOptions, type VerifiedNitroDocument } from './verify.js';

export function verifyNitro(doc: Uint8Array, options: NitroVerifyOptions = {}): VerifiedNitroDocument {
  return verifyNitroWith(doc, options, nobleCrypto);
}
