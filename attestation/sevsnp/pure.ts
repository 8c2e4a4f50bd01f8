/** verifySevSnp defaulting to the pure-JS noble provider (the `enclavekit/attestation/pure` entry). */
import { nobleCrypto } from '../crypto/noble.js';
import { verifySevSnpWith, type SnpCerts, type SnpVerifyOptions, type VerifiedSnpReport } from './verify.js';

export function verifySevSnp(report: Uint8Array, certs: SnpCerts, options: SnpVerifyOptions = {}): VerifiedSnpReport {
  return verifySevSnpWith(report, certs, options, nobleCrypto);
}
