/**
 * enclavekit/enclave: the worker that runs inside the TEE. Most users run it as a program
 * (`enclavekit enclave ...`); these exports are for embedding it and for tests.
 */
export { Worker, WORKER_VERSION, pickFieldDecryptor, type WorkerOptions } from './worker.js';
export { serveSession, listenSessions, publicError, JobRefusal, type ActiveJob, type SessionHandler, type SessionOptions, type ListenEndpoint, type WorkerServer } from './server.js';
export { createJob, jobRefused, JOB_REFUSED_MESSAGE, type Job, type JobOptions, type JobOutput, type JobCompletion, type ResultLinks } from './job.js';
export { EnclaveKms, keyReferencesFromManifest, type EnclaveKmsOptions, type KmsKeyReference } from './kms-client.js';
export { generateRecipientKeyPair, DataKeyCache, type RecipientKeyPair } from './keys.js';
export { nodeFieldDecryptor, type FieldDecryptor, type DecryptItem, type DecryptBatchResult } from './field-decrypt.js';
export { openSimulatorState, type SimulatorState } from './sim-state.js';
export * from './platform/index.js';
export * as protocol from './protocol/index.js';
