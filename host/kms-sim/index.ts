/** The KMS simulator's public face. */
export {
  startKmsSimulator,
  DEFAULT_ACCOUNT_ID,
  DEFAULT_REGION,
  DEFAULT_MAX_BODY_BYTES,
  type KmsSimulator,
  type KmsSimulatorOptions,
  type RecipientClaims,
  type RecipientVerifier,
  type RecipientVerifyContext,
} from './server.js';
export { buildCiphertextForRecipient } from './cms.js';
export { readSimulatorRootFromState, readSnpSimulatorRootFromState, readRootsPem, ensureSimulatorRootInState, SIM_CA_FILE, SIM_SNP_FILE, SIM_ROOT_PEM } from './sim-root.js';
export {
  addSimulatorPrincipal,
  ensureRootCredentials,
  credentialsFileText,
  PrincipalStore,
  CREDENTIALS_FILE,
  CREDENTIALS_PROFILE,
  PRINCIPALS_DIR,
  DEFAULT_SESSION_SECONDS,
  DEFAULT_SESSION_NAME,
  MAX_SESSION_SECONDS,
  type SimCredentials,
  type AddPrincipalOptions,
  type StoredPrincipal,
} from './principals.js';
export { verifySigV4, parseAmzDate, formatAmzDate, DEFAULT_MAX_SKEW_MS, type Caller, type SigV4Request, type SigV4Options } from './sigv4.js';
export { STATE_FILE, MASTER_KEY_FILE } from './store.js';
