/**
 * enclavekit/host: the parent side. Job runner, enclave connection, KMS proxy, result verification,
 * dataset encryption and readers, audit log, the KMS simulator and the simulator stack.
 */
export { runJob, datasetDigestOfFile, workerError, type RunJobOptions, type RunOutcome, type JobSummary, type AttestedRefusal } from './run.js';
export { EnclaveConnection, connectEnclave, parseEnclaveTarget, type EnclaveTarget, type EnclaveConnectionOptions } from './enclave-conn.js';
export {
  startKmsProxy,
  parseAllowlistYaml,
  parseHostPort,
  hostPortOfUrl,
  isAllowed,
  listenUnixNet,
  type KmsProxy,
  type KmsProxyOptions,
  type HostPort,
  type ProxyListen,
  type ListenFn,
} from './kms-proxy.js';
export { verifyResult, verifyRefusal, verifyWorkerEvidence, type Expectations, type VerifiedEvidence, type VerifiedResult, type VerifiedRefusal, type ResultBinding } from './verify-result.js';
export { createProgress, renderProgress, formatDuration, type Progress, type ProgressOptions } from './progress.js';
export { startWorkerProcess, workerCommand, packageRoot, type WorkerProcess, type WorkerProcessOptions } from './worker-process.js';
export {
  startSimStack,
  simImageId,
  simImageIdFromFiles,
  simPcr0,
  freeLoopbackPort,
  type SimStack,
  type SimStackOptions,
  type SimWorkerOptions,
} from './sim-stack.js';
export { encryptDataset, KmsDataKeySource, type EncryptDatasetOptions, type DataKeySource, type DataKey } from './encrypt.js';
export { readDataset, readDatasetBatches, detectFormat, type DatasetFormat, type DatasetRecord, type ReadDatasetOptions } from './dataset.js';
export { syntheticCustomers, writeSyntheticDataset, type SyntheticOptions, type SyntheticCustomer } from './synthetic.js';
export { appendAuditEntry, verifyAuditLog, auditRecordFromOutcome, AUDIT_GENESIS, type AuditRecord, type AuditEntry, type AuditVerifyResult, type AuditVerifyOptions } from './audit.js';
export { startKmsSimulator, type KmsSimulator, type KmsSimulatorOptions } from './kms-sim/server.js';
export { buildEnclaveKeyPolicy, parseKeyPolicy, evaluateKeyPolicy, type EnclavePolicyOptions } from './key-policy.js';
export { fetchVcek, fetchCertChain, fetchCrl, kdsVcekUrl, KDS_BASE_URL, type KdsOptions, type VcekResult } from './kds.js';
