/**
 * enclavekit/attestation: parse and verify TEE evidence. This entry uses the node:crypto backend by
 * default; `enclavekit/attestation/pure` exports the same API over the pure-JS backend.
 */
import 'reflect-metadata';
export * from './errors.js';
export * from './bytes.js';
export type { CryptoProvider } from './crypto/provider.js';
export { nodeCrypto } from './crypto/node.js';
export { nobleCrypto } from './crypto/noble.js';
export * from './nitro/index.js';
export { verifyNitro } from './nitro/node.js';
export * from './sevsnp/index.js';
/** Reference values: EIF layout, PCRs and signature (Nitro); SEV-SNP launch digests and ID key digests. */
export * from './eif/index.js';
export { snpLaunchDigest, snpOvmfHash, snpIdKeyDigest, parseOvmf, sevHashesTable, cpuSig, VCPU_TYPES, VMM_TYPES, snpPolicyFromMeasureJson, type SnpMeasureInput, type VmmType, type OvmfInfo } from './sevsnp/measure.js';
export { verifySevSnp, verifyEvidence } from './sevsnp/node.js';
/** The simulator's image formulas: issuers and verifiers derive expected values from the same code. */
export * from './sim/image.js';
export { verifyEvidenceWith, detectEvidenceFormat, type EvidenceInput, type EvidenceOptions, type EvidenceFormat, type VerifiedEvidence } from './evidence.js';
