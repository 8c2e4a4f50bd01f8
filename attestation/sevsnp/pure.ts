/** verifySevSnp and verifyEvidence defaulting to the pure-JS noble provider (the `enclavekit/attestation/pure` entry). */
import { nobleCrypto } from '../crypto/noble.js';
import { verifySevSnpWith, type SnpCerts, type SnpVerifyOptions, type VerifiedSnpReport } from './verify.js';
import { verifyEvidenceWith, type EvidenceInput, type EvidenceOptions, type VerifiedEvidence } from '../evidence.js';

export function verifySevSnp(report: Uint8Array, certs: SnpCerts, options: SnpVerifyOptions = {}): VerifiedSnpReport {
  return verifySevSnpWith(report, certs, options, nobleCrypto);
}

/** Verify a Nitro document or an SEV-SNP report (detected from the bytes); one claims shape for both. */
export function verifyEvidence(input: EvidenceInput, options: EvidenceOptions = {}): VerifiedEvidence {
  return verifyEvidenceWith(input, options, nobleCrypto);
}
