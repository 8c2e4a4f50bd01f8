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
export { verifySevSnp, verifyEvidence } from './sevsnp/node.js';
/** The simulator's image formulas: issuers and verifiers derive expected values from the same code. */
export * from './sim/image.js';
export { verifyEvidenceWith, detectEvidenceFormat, type EvidenceInput, type EvidenceOptions, type EvidenceFormat, type VerifiedEvidence } from './evidence.js';
