/**
 * Build `CiphertextForRecipient` as AWS KMS does: CMS EnvelopedData v2, one KeyTransRecipientInfo v2
 * whose rid is the SubjectKeyIdentifier SHA-256(SPKI DER), RSAES-OAEP with SHA-256 and MGF1-SHA-256
 * (empty label), AES-256-CBC content with PKCS#7 padding. Emitted as DER, which every BER reader
 * (the SDK's, enclaver's, OpenSSL's and ours) accepts.
 */
import 'reflect-metadata';
import { constants, createCipheriv, createHash, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  ContentInfo,
  EncryptedContent,
  EncryptedContentInfo,
  EnvelopedData,
  KeyTransRecipientInfo,
  RecipientIdentifier,
  RecipientInfo,
  RecipientInfos,
  id_data,
  id_envelopedData,
  ContentEncryptionAlgorithmIdentifier,
  KeyEncryptionAlgorithmIdentifier,
  CMSVersion,
} from '@peculiar/asn1-cms';
import { RsaEsOaepParams, id_RSAES_OAEP, id_mgf1, id_sha256 } from '@peculiar/asn1-rsa';
import { AlgorithmIdentifier, SubjectKeyIdentifier } from '@peculiar/asn1-x509';

const ID_AES256_CBC = '2.16.840.1.101.3.4.1.42';
const NULL_DER = new Uint8Array([0x05, 0x00]).buffer;

let oaepParams: ArrayBuffer | undefined;
/** The RSAES-OAEP parameters never change; serializing them costs more than the RSA encryption. */
function oaepParamsDer(): ArrayBuffer {
  if (oaepParams === undefined) {
    const sha256 = new AlgorithmIdentifier({ algorithm: id_sha256, parameters: NULL_DER });
    oaepParams = AsnConvert.serialize(
      new RsaEsOaepParams({
        hashAlgorithm: sha256,
        maskGenAlgorithm: new AlgorithmIdentifier({ algorithm: id_mgf1, parameters: AsnConvert.serialize(sha256) }),
      }),
    );
  }
  return oaepParams;
}

export interface EnvelopeRandom {
  (n: number): Uint8Array;
}

/**
 * `spkiDer` is the attestation document's `public_key` (already checked to be an RSA SPKI);
 * `random` is injectable so tests can pin the CEK and IV.
 */
export function buildCiphertextForRecipient(
  plaintext: Uint8Array,
  spkiDer: Uint8Array,
  publicKey: KeyObject,
  random: EnvelopeRandom = (n) => new Uint8Array(randomBytes(n)),
): Uint8Array {
  const cek = Buffer.from(random(32));
  const iv = random(16);
  try {
    const c = createCipheriv('aes-256-cbc', cek, iv);
    const content = Buffer.concat([c.update(plaintext), c.final()]);
    const encryptedKey = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek);
    const ktri = new KeyTransRecipientInfo({
      version: CMSVersion.v2,
      rid: new RecipientIdentifier({
        subjectKeyIdentifier: new SubjectKeyIdentifier(createHash('sha256').update(spkiDer).digest()),
      }),
      keyEncryptionAlgorithm: new KeyEncryptionAlgorithmIdentifier({ algorithm: id_RSAES_OAEP, parameters: oaepParamsDer() }),
      encryptedKey: new OctetString(encryptedKey),
    });
    const ed = new EnvelopedData({
      version: CMSVersion.v2,
      recipientInfos: new RecipientInfos([new RecipientInfo({ ktri })]),
      encryptedContentInfo: new EncryptedContentInfo({
        contentType: id_data,
        contentEncryptionAlgorithm: new ContentEncryptionAlgorithmIdentifier({
          algorithm: ID_AES256_CBC,
          parameters: AsnConvert.serialize(new OctetString(iv)),
        }),
        encryptedContent: new EncryptedContent({ value: new OctetString(content) }),
      }),
    });
    const ci = new ContentInfo({ contentType: id_envelopedData, content: AsnConvert.serialize(ed) });
    return new Uint8Array(AsnConvert.serialize(ci));
  } finally {
    cek.fill(0);
  }
}
