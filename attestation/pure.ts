/** enclavekit/attestation/pure: the verifier with no `node:` imports (browsers, edge runtimes). */
import 'reflect-metadata';
export * from './errors.js';
export * from './bytes.js';
export type { CryptoProvider } from './crypto/provider.js';
export { nobleCrypto } from './crypto/noble.js';
export * from './nitro/index.js';
export { verifyNitro } from './nitro/pure.js';
export * from './sevsnp/index.js';
export { verifySevSnp, verifyEvidence } from './sevsnp/pure.js';
/** The simulator's image formulas: issuers and verifiers derive expected values from the same code. */
export * from './sim/image.js';
export { verifyEvidenceWith, detectEvidenceFormat, type EvidenceInput, type EvidenceOptions, type EvidenceFormat, type VerifiedEvidence } from './evidence.js';
