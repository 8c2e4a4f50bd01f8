/** SEV-SNP API shared by both entry points (everything except the provider-defaulting verifySevSnp). */
export {
  parseSnpReport,
  decodeTcb,
  encodeTcb,
  productFromCpuid,
  policyFlags,
  platformInfoFlags,
  POLICY as SNP_POLICY_BITS,
  PLATFORM_INFO as SNP_PLATFORM_INFO_BITS,
  SNP_REPORT_SIZE,
  SNP_SIGNED_LENGTH,
  SNP_PRODUCTS,
  type SnpReport,
  type SnpProduct,
  type SnpSigningKey,
  type SnpTcb,
} from './abi.js';
export {
  verifySevSnpWith,
  isVerifiedSnpReport,
  SnpChainCache,
  type SnpCerts,
  type SnpVerifyOptions,
  type SnpTcbClaims,
  type VerifiedSnpReport,
} from './verify.js';
export { checkSnpPolicy, parseSnpPolicy, type SnpPolicy, type SnpTcbFloor } from './policy.js';
export { parseSnpCertTable, buildSnpCertTable, CERT_TABLE_GUID, type SnpCertTable } from './certtable.js';
export { parseAmdCert, parseAmdCrl, pemToDer, certBytes, AMD_OID, type AmdCert, type AmdCrl, type AmdExtensions } from './cert.js';
export { amdRoots, type AmdProductRoots } from './roots.js';
export { snpReportData, SNP_REPORT_DATA_DOMAIN, type SnpBindingInput } from './binding.js';
