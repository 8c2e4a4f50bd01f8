/**
 * `CiphertextForRecipient` (enclave/cms.ts openCiphertextForRecipient): the BER pre-walk, the CMS
 * EnvelopedData profile checks, RSA-OAEP unwrap and AES-256-CBC. Seeds: the real KMS envelopes in
 * test/vectors/nitro (one with its private key, so mutations reach decryption) and envelopes the KMS
 * simulator builds for that key.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { openCiphertextForRecipient } from '../../../enclave/cms.js';
import { buildCiphertextForRecipient } from '../../../host/kms-sim/cms.js';
import { file } from '../seeds.js';
import type { FuzzTarget } from '../types.js';

interface Ctx {
  key: KeyObject;
  spki: Uint8Array;
}

const target: FuzzTarget<Ctx> = {
  name: 'cms',
  description: 'openCiphertextForRecipient (BER walk, EnvelopedData profile, RSA-OAEP, AES-CBC) on mutated real KMS envelopes',
  covers: ['enclave/cms.ts'],
  format: 'der',
  maxLen: 64 * 1024 + 16,
  setup() {
    const key = createPrivateKey({ key: Buffer.from(file('nitro/kms-cms-enclaver-1.key.pk8.der')), format: 'der', type: 'pkcs8' });
    const spki = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
    return { key, spki };
  },
  seeds(ctx) {
    const pub = createPublicKey(ctx.key);
    let n = 0;
    const random = (k: number) => new Uint8Array(k).fill(++n);
    return [
      file('nitro/kms-cms-enclaver-1.ber'),
      file('nitro/kms-cms-sdkc-1.ber'),
      file('nitro/kms-cms-sdkc-2.ber'),
      buildCiphertextForRecipient(new Uint8Array(32).fill(0xaa), ctx.spki, pub, random),
      buildCiphertextForRecipient(new Uint8Array(1), ctx.spki, pub, random),
      buildCiphertextForRecipient(new Uint8Array(1024).fill(3), ctx.spki, pub, random),
    ];
  },
  run(input, ctx) {
    openCiphertextForRecipient(input, ctx.key);
  },
};
export default target;
