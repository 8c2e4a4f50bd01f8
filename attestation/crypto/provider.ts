/**
 * The only crypto the verifiers use. `attestation/` never imports `node:` modules: a backend is
 * handed in. `nodeCrypto` (node:crypto, fast, the default of the package's main entry) and
 * `nobleCrypto` (@noble/curves + @noble/hashes + BigInt RSA, runs anywhere) implement it.
 */
export interface CryptoProvider {
  readonly name: string;
  sha256(data: Uint8Array): Uint8Array;
  sha384(data: Uint8Array): Uint8Array;
  /**
   * ECDSA P-384 over SHA-384(message). `signature` is r‖s, 96 bytes (IEEE P1363). High-S signatures
   * are valid (AWS and AMD do not normalise S). Returns false for any bad signature, including a
   * wrong length; throws `ERR_CERT_INVALID` only when `spki` is not a P-384 public key.
   */
  verifyEcdsaP384(spki: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  /**
   * RSASSA-PSS, SHA-384, MGF1-SHA-384, salt length 48 (AMD's ARK/ASK/VCEK links). Returns false
   * for any bad signature; throws `ERR_CERT_INVALID` only when `spki` is not an RSA public key.
   */
  verifyRsaPssSha384(spki: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}
