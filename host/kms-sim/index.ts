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
export { readSimulatorRootFromState, readSnpSimulatorRootFromState, readRootsPem, SIM_CA_FILE, SIM_SNP_FILE } from './sim-root.js';
export { STATE_FILE, MASTER_KEY_FILE } from './store.js';
