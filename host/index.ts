/**
 * enclavekit/host: the parent side. Job runner, enclave connection, KMS proxy, result verification,
 * dataset encryption and readers, audit log, the KMS simulator and the simulator stack.
 */
export { runJob, datasetDigestOfFile, workerError, type RunJobOptions, type RunOutcome, type JobSummary, type AttestedRefusal } from './run.js';
export { EnclaveConnection, connectEnclave, parseEnclaveTarget, probeWorker, type EnclaveTarget, type EnclaveConnectionOptions, type WorkerProbe } from './enclave-conn.js';
export {
  parentCredentials,
  staticCredentials,
  checkHandoverCredentials,
  credentialsPayload,
  describeCredentials,
  type AwsCredentials,
  type CredentialProvider,
  type CredentialsPayload,
  type ParentCredentialOptions,
} from './credentials.js';
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
  type SimPrincipalName,
  SIM_STACK_PRINCIPALS,
  SIM_STACK_SESSION_SECONDS,
} from './sim-stack.js';
export { encryptDataset, KmsDataKeySource, type EncryptDatasetOptions, type DataKeySource, type DataKey } from './encrypt.js';
export { readDataset, readDatasetBatches, detectFormat, type DatasetFormat, type DatasetRecord, type ReadDatasetOptions } from './dataset.js';
export { syntheticCustomers, writeSyntheticDataset, type SyntheticOptions, type SyntheticCustomer } from './synthetic.js';
export { appendAuditEntry, verifyAuditLog, auditRecordFromOutcome, AUDIT_GENESIS, type AuditRecord, type AuditEntry, type AuditVerifyResult, type AuditVerifyOptions } from './audit.js';
export { startKmsSimulator, type KmsSimulator, type KmsSimulatorOptions } from './kms-sim/server.js';
export { addSimulatorPrincipal, ensureRootCredentials, CREDENTIALS_FILE, CREDENTIALS_PROFILE, type SimCredentials, type AddPrincipalOptions } from './kms-sim/principals.js';
export { buildEnclaveKeyPolicy, parseKeyPolicy, evaluateKeyPolicy, pcr3ForRoleArn, pcr4ForInstanceId, type EnclavePolicyOptions } from './key-policy.js';
export { buildEif, type BuildEifOptions, type BuiltEif } from './eif/build.js';
export { buildAppRamdisk, buildBootstrapRamdisk, type AppRamdiskResult } from './eif/ramdisk.js';
export { fetchVcek, fetchCertChain, fetchCrl, kdsVcekUrl, KDS_BASE_URL, type KdsOptions, type VcekResult } from './kds.js';
