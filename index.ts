/** enclavekit: see README.md. The subpath entries (`enclavekit/attestation`, ...) hold the API. */
export * from './attestation/index.js';
