/** verifySevSnp defaulting to the node:crypto provider (the `enclavekit/attestation` entry). */
import { nodeCrypto } from '../crypto/node.js';
import { verifySevSnpWith, type SnpCerts, type SnpVerifyOptions, type VerifiedSnpReport } from './verify.js';

export function verifySevSnp(report: Uint8Array, certs: SnpCerts, options: SnpVerifyOptions = {}): VerifiedSnpReport {
  return verifySevSnpWith(report, certs, options, nodeCrypto);
}
