/**
 * The host <-> enclave contract: frames and messages, the encrypted field format, the key manifest,
 * the result document and the dataset digest. The host imports this module and nothing else from
 * `enclave/`.
 */
export * from './messages.js';
export * from './frame.js';
export * from './field.js';
export * from './manifest.js';
export * from './result.js';
export * from './digest.js';
export * from './seal.js';
export * from './release-policy.js';
export { encodeCanonical, decodeCanonical } from './cbor.js';
