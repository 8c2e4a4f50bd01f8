/** verifyNitro defaulting to the node:crypto provider (the `enclavekit/attestation` entry). */
import { nodeCrypto } from '../crypto/node.js';
import { verifyNitroWith, type NitroVerifyOptions, type VerifiedNitroDocument } from './verify.js';

export function verifyNitro(doc: Uint8Array, options: NitroVerifyOptions = {}): VerifiedNitroDocument {
  return verifyNitroWith(doc, options, nodeCrypto);
}
