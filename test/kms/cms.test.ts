import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { openCiphertextForRecipient, recipientKeyId } from '../../enclave/cms.js';
import { buildCiphertextForRecipient } from '../../host/kms-sim/cms.js';
import { ToolkitError } from '../../attestation/errors.js';

const V = join(import.meta.dirname, '../vectors/nitro');
const enclaverBer = new Uint8Array(readFileSync(join(V, 'kms-cms-enclaver-1.ber')));
const enclaverKey = createPrivateKey({ key: readFileSync(join(V, 'kms-cms-enclaver-1.key.pk8.der')), format: 'der', type: 'pkcs8' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const spki = new Uint8Array(rsa.publicKey.export({ type: 'spki', format: 'der' }));

function cmsCode(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof ToolkitError) {
      expect(e.message).toBe('CiphertextForRecipient is invalid');
      return e.code;
    }
    throw e;
  }
}

describe('openCiphertextForRecipient on real KMS envelopes', () => {
  it('decrypts the enclaver vector to "Hello, World"', () => {
    const pt = openCiphertextForRecipient(enclaverBer, enclaverKey);
    expect(new TextDecoder().decode(pt)).toBe('Hello, World');
  });

  it('rid of the enclaver vector is SHA-256 of the SPKI', () => {
    const spkiE = new Uint8Array(createPublicKey(enclaverKey).export({ type: 'spki', format: 'der' }));
    expect(Buffer.from(recipientKeyId(spkiE)).toString('hex')).toBe('fb09e9af2940ddcf0d2bbf6358c983af46fc5fdcedbca251d54ceab4d069cd89');
  });

  for (const name of ['kms-cms-sdkc-1', 'kms-cms-sdkc-2']) {
    it(`${name} parses up to the recipient check (no private key is published)`, () => {
      const ber = new Uint8Array(readFileSync(join(V, `${name}.ber`)));
      let err: unknown;
      try {
        openCiphertextForRecipient(ber, enclaverKey);
      } catch (e) {
        err = e;
      }
      // Structure accepted; only the recipient id (someone else's key) is refused.
      expect(err).toBeInstanceOf(ToolkitError);
      expect((err as ToolkitError).code).toBe('ERR_CMS_INVALID');
      expect((err as ToolkitError).reason).toBe('recipient_mismatch');
    });
  }

  it('refuses the wrong private key', () => {
    expect(cmsCode(() => openCiphertextForRecipient(enclaverBer, rsa.privateKey))).toBe('ERR_CMS_INVALID');
  });

  it('truncation, trailing bytes and any flipped byte give ERR_CMS_INVALID or the same plaintext, never a foreign throw', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: enclaverBer.length - 1 }), fc.constantFrom(0x80, 0x40, 0x20, 0x01, 0x10, 0xff), (i, x) => {
        const t = enclaverBer.slice();
        t[i]! ^= x;
        let out: Uint8Array | undefined;
        try {
          out = openCiphertextForRecipient(t, enclaverKey);
        } catch (e) {
          expect(e).toBeInstanceOf(ToolkitError);
          expect((e as ToolkitError).code).toBe('ERR_CMS_INVALID');
          return;
        }
        // A flip inside the CBC content can still unpad; it must never yield "Hello, World" then.
        expect(Buffer.from(out).toString()).not.toBe('Hello, World');
      }),
      { numRuns: 200 },
    );
    for (let n = 0; n < enclaverBer.length; n += 7)
      expect(cmsCode(() => openCiphertextForRecipient(enclaverBer.subarray(0, n), enclaverKey))).toBe('ERR_CMS_INVALID');
    const trailing = new Uint8Array([...enclaverBer, 0]);
    expect(cmsCode(() => openCiphertextForRecipient(trailing, enclaverKey))).toBe('ERR_CMS_INVALID');
  });

  it('a SEQUENCE re-tagged as context [16] is refused (the parser alone would accept it)', () => {
    for (const i of [0, 15, 20, 65]) {
      const t = enclaverBer.slice();
      t[i]! ^= 0x80;
      expect(cmsCode(() => openCiphertextForRecipient(t, enclaverKey))).toBe('ERR_CMS_INVALID');
    }
  });

  it('caller misuse is a TypeError', () => {
    expect(() => openCiphertextForRecipient('x' as unknown as Uint8Array, enclaverKey)).toThrow(TypeError);
    expect(() => openCiphertextForRecipient(enclaverBer, rsa.publicKey)).toThrow(TypeError);
  });
});

describe('buildCiphertextForRecipient (simulator side)', () => {
  it('round-trips through our unwrap', () => {
    const pt = new Uint8Array(createHash('sha256').update('k').digest());
    const env = buildCiphertextForRecipient(pt, spki, rsa.publicKey);
    expect(openCiphertextForRecipient(env, rsa.privateKey)).toEqual(pt);
  });

  it('is opened by `openssl cms -decrypt -inform DER`', () => {
    const dir = mkdtempSync(join(tmpdir(), 'enclavekit-cms-'));
    try {
      const pt = new TextEncoder().encode('data key for openssl');
      writeFileSync(join(dir, 'env.der'), buildCiphertextForRecipient(pt, spki, rsa.publicKey));
      writeFileSync(join(dir, 'key.pem'), rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      const out = execFileSync('openssl', ['cms', '-decrypt', '-inform', 'DER', '-in', join(dir, 'env.der'), '-inkey', join(dir, 'key.pem')], {
        timeout: 10_000,
      });
      expect(new Uint8Array(out)).toEqual(pt);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
