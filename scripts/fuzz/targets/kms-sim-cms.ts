/**
 * host/kms-sim/cms.ts builds envelopes and parses nothing hostile itself; what it takes from outside
 * is the Recipient's public key (checked by the server, see kms-server) and the plaintext. This target
 * checks the builder against the enclave's parser as a round trip: for any plaintext (1..4096 bytes)
 * and any CEK/IV, buildCiphertextForRecipient then openCiphertextForRecipient returns exactly the
 * plaintext.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { openCiphertextForRecipient } from '../../../enclave/cms.js';
import { buildCiphertextForRecipient } from '../../../host/kms-sim/cms.js';
import { ToolkitError } from '../../../attestation/errors.js';
import { file } from '../seeds.js';
import { FuzzInvariantError, type FuzzTarget } from '../types.js';

interface Ctx {
  key: KeyObject;
  pub: KeyObject;
  spki: Uint8Array;
}

const target: FuzzTarget<Ctx> = {
  name: 'kms-sim-cms',
  description: 'round trip: buildCiphertextForRecipient (simulator) -> openCiphertextForRecipient (enclave) returns the plaintext',
  covers: ['host/kms-sim/cms.ts', 'enclave/cms.ts'],
  format: 'bytes',
  maxLen: 4096 + 48,
  setup() {
    const key = createPrivateKey({ key: Buffer.from(file('nitro/kms-cms-enclaver-1.key.pk8.der')), format: 'der', type: 'pkcs8' });
    const pub = createPublicKey(key);
    return { key, pub, spki: new Uint8Array(pub.export({ type: 'spki', format: 'der' })) };
  },
  seeds: (ctx) => [new Uint8Array(48 + 32).fill(1), new Uint8Array(49).fill(0xff), new Uint8Array(48 + 4096), ctx.spki],
  run(input, ctx) {
    // First 48 bytes: CEK (32) and IV (16); the rest is the plaintext (KMS plaintexts are 1..4096 bytes).
    if (input.length < 49) return;
    const cekIv = input.subarray(0, 48);
    const plaintext = input.subarray(48, 48 + 4096);
    const random = (n: number) => (n === 32 ? cekIv.slice(0, 32) : cekIv.slice(32, 32 + n));
    const env = buildCiphertextForRecipient(plaintext, ctx.spki, ctx.pub, random);
    let out: Uint8Array;
    try {
      out = openCiphertextForRecipient(env, ctx.key);
    } catch (e) {
      if (e instanceof ToolkitError) throw new FuzzInvariantError(`an envelope the simulator built was refused by the enclave (${e.code} ${e.reason})`);
      throw e;
    }
    if (out.length !== plaintext.length || out.some((x, i) => x !== plaintext[i])) throw new FuzzInvariantError('the enclave opened a different plaintext than the simulator sealed');
  },
};
export default target;
