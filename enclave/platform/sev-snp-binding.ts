/**
 * How a worker binds its public key, user data and nonce into an SEV-SNP report: the formula is
 * attestation/sevsnp/binding.ts `snpReportData` (a host-side verifier recomputes it from there).
 */
export { snpReportData, SNP_REPORT_DATA_DOMAIN, type SnpBindingInput } from '../../attestation/sevsnp/binding.js';

export const SNP_REPORT_BYTES = 0x4a0;

/**
 * Split platform evidence (`report || certificate table`, as `attest` returns it) for
 * `verifySevSnp(report, { certTable }, ...)`. Structure only: the verifier checks the rest.
 */
export function splitSnpEvidence(evidence: Uint8Array): { report: Uint8Array; certTable: Uint8Array } {
  if (!(evidence instanceof Uint8Array)) throw new TypeError('"evidence" expected Uint8Array');
  return { report: evidence.subarray(0, SNP_REPORT_BYTES), certTable: evidence.subarray(SNP_REPORT_BYTES) };
}
