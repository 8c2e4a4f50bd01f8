/** Nitro API shared by both entry points (everything except the provider-defaulting verifyNitro). */
export { parseNitroDocument, checkCbor, NITRO_LIMITS, type ParsedNitroDocument } from './parse.js';
export {
  verifyNitroWith,
  BoundedChainCache,
  type NitroChainCache,
  type NitroVerifyOptions,
  type NitroCertificateFacts,
  type VerifiedNitroDocument,
} from './verify.js';
export { checkNitroPolicy, compileNitroPolicy, isDebugMode, type NitroPolicy, type NitroPolicyBytes } from './policy.js';
export { awsNitroRootG1, AWS_NITRO_ROOT_G1_SHA256 } from './roots.js';
export { verifyEcdsaP384Der } from '../x509/path.js';
export { derEcdsaToP1363 } from '../x509/der.js';
