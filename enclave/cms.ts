/**
 * Open the `CiphertextForRecipient` that AWS KMS returns when a request carries a Recipient:
 * CMS (RFC 5652) ContentInfo -> EnvelopedData, one KeyTransRecipientInfo (RSAES-OAEP SHA-256 /
 * MGF1-SHA-256, rid = SubjectKeyIdentifier = SHA-256 of the recipient SPKI), AES-256-CBC content.
 * AWS sends BER with indefinite lengths, so BER is accepted; anything other than this exact profile
 * is refused, because an enclave must never be talked into a weaker unwrap.
 *
 * Every failure is `ERR_CMS_INVALID` with a constant message and a `reason`: no key material, no
 * plaintext and no padding-oracle detail ever reaches an error.
 */
import 'reflect-metadata';
import { createDecipheriv, createHash, createPublicKey, privateDecrypt, constants, type KeyObject } from 'node:crypto';
import { AsnParser } from '@peculiar/asn1-schema';
import { ContentInfo, EnvelopedData, id_envelopedData, id_data } from '@peculiar/asn1-cms';
import { RsaEsOaepParams, id_RSAES_OAEP, id_mgf1, id_pSpecified, id_sha256 } from '@peculiar/asn1-rsa';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { ToolkitError } from '../attestation/errors.js';

/** Largest envelope accepted: KMS plaintexts are at most 4 KiB, so this is generous. */
export const MAX_CMS_BYTES = 64 * 1024;
const MAX_BER_DEPTH = 16;
const ID_AES256_CBC = '2.16.840.1.101.3.4.1.42';
const PARSER_DEFAULT_PSOURCE = new Uint8Array(new RsaEsOaepParams().pSourceAlgorithm.parameters ?? new ArrayBuffer(0));

export class CmsError extends ToolkitError {
  constructor(reason: string, cause?: unknown) {
    super('ERR_CMS_INVALID', 'CiphertextForRecipient is invalid', { reason, cause });
  }
}

/**
 * Walk one BER TLV at `off` and return the offset just past it. Checks every length against the
 * buffer and bounds nesting, so the library parser only ever sees a well-framed single element and
 * trailing bytes are detected.
 */
function skipTlv(b: Uint8Array, off: number, depth: number): number {
  if (depth > MAX_BER_DEPTH) throw new CmsError('ber_depth');
  if (off + 2 > b.length) throw new CmsError('ber_truncated');
  const tag = b[off]!;
  let p = off + 1;
  if ((tag & 0x1f) === 0x1f) throw new CmsError('ber_high_tag');
  // The parser matches tag numbers but not always the class, so it would read a context tag [16] as
  // a SEQUENCE. This profile uses only universal tags and context tags [0]..[3]; refuse the rest here.
  const cls = tag & 0xc0;
  if (cls === 0x40 || cls === 0xc0 || (cls === 0x80 && (tag & 0x1f) > 3)) throw new CmsError('ber_tag');
  const l0 = b[p++]!;
  if (l0 === 0x80) {
    if ((tag & 0x20) === 0) throw new CmsError('ber_indefinite_primitive');
    for (;;) {
      if (p + 2 > b.length) throw new CmsError('ber_truncated');
      if (b[p] === 0 && b[p + 1] === 0) return p + 2;
      p = skipTlv(b, p, depth + 1);
    }
  }
  let len: number;
  if (l0 < 0x80) len = l0;
  else {
    const n = l0 & 0x7f;
    if (n > 3) throw new CmsError('ber_length');
    if (p + n > b.length) throw new CmsError('ber_truncated');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p++]!;
  }
  if (p + len > b.length) throw new CmsError('ber_truncated');
  if (tag & 0x20) {
    const end = p + len;
    while (p < end) p = skipTlv(b.subarray(0, end), p, depth + 1);
    return end;
  }
  return p + len;
}

function parse<T>(bytes: ArrayBuffer | Uint8Array, type: new () => T, reason: string): T {
  try {
    return AsnParser.parse(bytes, type);
  } catch (e) {
    throw new CmsError(reason, e);
  }
}

function u8(b: ArrayBuffer | ArrayBufferView): Uint8Array {
  return b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function isNullOrAbsent(params: ArrayBuffer | null | undefined): boolean {
  if (params === undefined || params === null) return true;
  const p = new Uint8Array(params);
  return p.length === 2 && p[0] === 0x05 && p[1] === 0x00;
}

function checkSha256(alg: AlgorithmIdentifier, reason: string): void {
  if (alg.algorithm !== id_sha256 || !isNullOrAbsent(alg.parameters)) throw new CmsError(reason);
}

/** SHA-256 of the DER SubjectPublicKeyInfo: the SubjectKeyIdentifier KMS puts in `rid`. */
export function recipientKeyId(spkiDer: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(spkiDer).digest());
}

/**
 * Decrypt a `CiphertextForRecipient` with the enclave's RSA private key (the one whose SPKI went into
 * the attestation document's `public_key`). Returns the plaintext (a data key, random bytes, ...).
 */
export function openCiphertextForRecipient(ber: Uint8Array, privateKey: KeyObject): Uint8Array {
  if (!(ber instanceof Uint8Array)) throw new TypeError(`"ber" expected Uint8Array, got ${typeof ber}`);
  if (privateKey === null || typeof privateKey !== 'object' || (privateKey as KeyObject).type !== 'private')
    throw new TypeError('"privateKey" expected a private KeyObject');
  if (privateKey.asymmetricKeyType !== 'rsa') throw new TypeError('"privateKey" expected an RSA key');
  if (ber.length === 0 || ber.length > MAX_CMS_BYTES) throw new CmsError('size');
  if (skipTlv(ber, 0, 0) !== ber.length) throw new CmsError('trailing_data');

  const ci = parse(ber, ContentInfo, 'content_info');
  if (ci.contentType !== id_envelopedData) throw new CmsError('content_type');
  const ed = parse(ci.content, EnvelopedData, 'enveloped_data');
  // RFC 5652 6.1: version 2 when any recipient uses a SubjectKeyIdentifier and nothing needs 3/4.
  if (ed.version !== 2) throw new CmsError('version');
  if (ed.originatorInfo !== undefined || ed.unprotectedAttrs !== undefined) throw new CmsError('unexpected_fields');
  if (ed.recipientInfos.length !== 1) throw new CmsError('recipient_count');
  const ktri = ed.recipientInfos[0]!.ktri;
  if (ktri === undefined) throw new CmsError('recipient_type');
  if (ktri.version !== 2) throw new CmsError('recipient_version');
  const ski = ktri.rid.subjectKeyIdentifier;
  if (ski === undefined) throw new CmsError('recipient_id');

  const spki = u8(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  const expectedId = recipientKeyId(spki);
  const rid = u8(ski.buffer);
  if (rid.length !== 32 || !equal(rid, expectedId)) throw new CmsError('recipient_mismatch');

  const kea = ktri.keyEncryptionAlgorithm;
  if (kea.algorithm !== id_RSAES_OAEP || !kea.parameters) throw new CmsError('key_encryption_algorithm');
  const oaep = parse(kea.parameters, RsaEsOaepParams, 'oaep_params');
  checkSha256(oaep.hashAlgorithm, 'oaep_hash');
  if (oaep.maskGenAlgorithm.algorithm !== id_mgf1 || !oaep.maskGenAlgorithm.parameters) throw new CmsError('oaep_mgf');
  checkSha256(parse(oaep.maskGenAlgorithm.parameters, AlgorithmIdentifier, 'oaep_mgf'), 'oaep_mgf');
  if (oaep.pSourceAlgorithm.algorithm !== id_pSpecified) throw new CmsError('oaep_label');
  // An absent pSource means the empty label. The parser fills an absent field with its own default
  // (a 20-byte value), so that value is accepted as "absent": decryption below always uses the empty
  // label, so any real non-empty label fails there anyway.
  const label = oaep.pSourceAlgorithm.parameters ? new Uint8Array(oaep.pSourceAlgorithm.parameters) : new Uint8Array([4, 0]);
  const explicitEmpty = label.length === 2 && label[0] === 0x04 && label[1] === 0x00;
  if (!explicitEmpty && !equal(label, PARSER_DEFAULT_PSOURCE)) throw new CmsError('oaep_label');

  const modulusBytes = Math.ceil((privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  const encryptedKey = u8(ktri.encryptedKey.buffer);
  if (modulusBytes === 0 || encryptedKey.length !== modulusBytes) throw new CmsError('encrypted_key_length');

  const eci = ed.encryptedContentInfo;
  if (eci.contentType !== id_data) throw new CmsError('encrypted_content_type');
  const cea = eci.contentEncryptionAlgorithm;
  if (cea.algorithm !== ID_AES256_CBC || !cea.parameters) throw new CmsError('content_encryption_algorithm');
  const ivParam = new Uint8Array(cea.parameters);
  if (ivParam.length !== 18 || ivParam[0] !== 0x04 || ivParam[1] !== 0x10) throw new CmsError('iv');
  const iv = ivParam.subarray(2);

  const ec = eci.encryptedContent;
  let content: Uint8Array;
  if (ec?.value !== undefined) content = u8(ec.value.buffer);
  else if (ec?.constructedValue !== undefined) {
    const parts = ec.constructedValue.map((o) => u8(o.buffer));
    content = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      content.set(p, o);
      o += p.length;
    }
  } else throw new CmsError('encrypted_content_missing');
  if (content.length === 0 || content.length % 16 !== 0) throw new CmsError('encrypted_content_length');

  let cek: Buffer;
  try {
    cek = privateDecrypt(
      { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      encryptedKey,
    );
  } catch {
    throw new CmsError('key_unwrap');
  }
  try {
    if (cek.length !== 32) throw new CmsError('cek_length');
    try {
      const d = createDecipheriv('aes-256-cbc', cek, iv);
      return new Uint8Array(Buffer.concat([d.update(content), d.final()]));
    } catch {
      throw new CmsError('content_decrypt');
    }
  } finally {
    cek.fill(0);
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
