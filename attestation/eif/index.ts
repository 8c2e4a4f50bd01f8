/** EIF (Nitro Enclave Image Format): layout, PCRs, signature section, metadata, describe. See FORMAT.md. */
export { crc32, type Crc32Fn } from './crc32.js';
export {
  EIF_MAGIC,
  EIF_HEADER_SIZE,
  EIF_SECTION_HEADER_SIZE,
  EIF_MAX_SECTIONS,
  EIF_CURRENT_VERSION,
  EIF_FLAG_ARM64,
  EIF_CRC_OFFSET,
  EIF_DEFAULT_MEMORY,
  EIF_DEFAULT_CPUS,
  SECTION_TYPE,
  decodeEifHeader,
  encodeEifHeader,
  encodeSectionHeader,
  eifSectionOrder,
  eifHeaderFor,
  type EifHeader,
  type EifArch,
  type EifSectionName,
} from './format.js';
export { EifMeasurer, extendZeroPcr, certificatePcr, nobleSha384, type EifPcrs, type HashFactory, type IncrementalHash } from './pcrs.js';
export {
  pcrInfoPayload,
  coseProtected,
  pcrSignatureToBeSigned,
  encodeCoseSign1,
  encodeSignatureSection,
  decodeSignatureSection,
  decodeCoseSign1,
  COSE_ALG_ID,
  COSE_SIG_HALF,
  type CoseAlg,
  type EifSignatureEntry,
} from './signature.js';
export { verifyEifSignature, signingCertificate, firstPemCertificate, ecPublicKey, type EifSignatureCheck } from './verify-signature.js';
export { encodeEifMetadata, decodeEifMetadata, parseJsonTree, serdeJson, ryuFormat, type EifIdentityInfo, type EifBuildInfo, type JsonTree } from './metadata.js';
export {
  describeEif,
  bytesSource,
  pcrsHex,
  type ByteSource,
  type DescribeEifOptions,
  type EifDescription,
  type EifSectionInfo,
  type EifSignatureInfo,
} from './describe.js';
