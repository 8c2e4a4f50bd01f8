/** enclavekit/attestation/pure: the verifier with no `node:` imports (browsers, edge runtimes). */
import 'reflect-metadata';
export * from './errors.js';
export * from './bytes.js';
export type { CryptoProvider } from './crypto/provider.js';
export { nobleCrypto } from './crypto/noble.js';
export * from './nitro/index.js';
export { verifyNitro } from './nitro/pure.js';
export * from './sevsnp/index.js';
/** Reference values: EIF layout, PCRs and signature (Nitro); SEV-SNP launch digests and ID key digests. */
export * from './eif/index.js';
export { snpLaunchDigest, snpOvmfHash, snpIdKeyDigest, parseOvmf, sevHashesTable, cpuSig, VCPU_TYPES, VMM_TYPES, snpPolicyFromMeasureJson, type SnpMeasureInput, type VmmType, type OvmfInfo } from './sevsnp/measure.js';
export { verifySevSnp, verifyEvidence } from './sevsnp/pure.js';
/** The simulator's image formulas: issuers and verifiers derive expected values from the same code. */
export * from './sim/image.js';
export { verifyEvidenceWith, detectEvidenceFormat, type EvidenceInput, type EvidenceOptions, type EvidenceFormat, type VerifiedEvidence } from './evidence.js';
