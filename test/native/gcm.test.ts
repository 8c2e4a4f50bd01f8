import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createCipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { FieldDecryptor, packFields, nativeGcmCeiling, type GcmField } from '../../native/gcm.js';
import { nativeBinding } from '../../native/binding.js';

interface WyTest { tcId: number; key: string; iv: string; aad: string; msg: string; ct: string; tag: string; result: 'valid' | 'invalid' | 'acceptable' }
interface WyGroup { keySize: number; ivSize: number; tagSize: number; tests: WyTest[] }
const wy = JSON.parse(readFileSync(new URL('../vectors/wycheproof/aes_gcm_test.json', import.meta.url), 'utf8')) as { testGroups: WyGroup[] };

const h = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const native = nativeBinding();
const impls: [string, FieldDecryptor][] = [['node:crypto fallback', new FieldDecryptor({ binding: null })]];
if (native) impls.unshift(['native', new FieldDecryptor({ binding: native })]);

it('the addon is built (CI requires it)', () => {
  if (process.env.ENCLAVEKIT_REQUIRE_NATIVE === '1') expect(native).not.toBeNull();
});

function encrypt(key: Uint8Array, pt: Uint8Array, aad?: Uint8Array): GcmField {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  if (aad) c.setAAD(aad);
  const ct = Buffer.concat([c.update(pt), c.final()]);
  return { iv, ciphertext: ct, tag: c.getAuthTag(), ...(aad ? { aad } : {}) };
}

describe.each(impls)('AES-256-GCM batch (%s)', (_name, dec) => {
  it('Wycheproof: every 256-bit/96-bit-IV/128-bit-tag case opens (valid) or fails (invalid), in one batch', () => {
    const cases = wy.testGroups.filter((g) => g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128).flatMap((g) => g.tests);
    expect(cases.length).toBeGreaterThan(50);
    // Each Wycheproof case has its own key, so batch per key.
    let valid = 0;
    let invalid = 0;
    for (const t of cases) {
      const r = dec.decryptFields(h(t.key), [{ iv: h(t.iv), ciphertext: h(t.ct), tag: h(t.tag), aad: h(t.aad) }]);
      if (t.result === 'valid') {
        expect(r.ok[0], `tcId ${t.tcId}`).toBe(1);
        expect(Buffer.from(r.field(0)!).toString('hex')).toBe(t.msg);
        valid++;
      } else if (t.result === 'invalid') {
        expect(r.ok[0], `tcId ${t.tcId}`).toBe(0);
        expect(r.field(0)).toBeNull();
        expect(r.plaintext.every((b) => b === 0)).toBe(true);
        invalid++;
      } else {
        throw new Error(`unknown test result ${String(t.result)}`);
      }
    }
    expect(valid).toBeGreaterThan(0);
    expect(invalid).toBeGreaterThan(0);
  });

  it('Wycheproof: every other key, IV or tag size is rejected before any work', () => {
    const others = wy.testGroups.filter((g) => !(g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128));
    let n = 0;
    for (const g of others) {
      for (const t of g.tests) {
        expect(() => dec.decryptFields(h(t.key), [{ iv: h(t.iv), ciphertext: h(t.ct), tag: h(t.tag), aad: h(t.aad) }])).toThrow(RangeError);
        n++;
      }
    }
    expect(n).toBeGreaterThan(100);
  });

  it('a bad field anywhere in the batch rejects the whole call up front', () => {
    const key = randomBytes(32);
    const good = encrypt(key, Buffer.from('hello'));
    expect(() => dec.decryptFields(key, [good, { ...good, iv: new Uint8Array(16) }])).toThrow(/field 1: "iv" expected Uint8Array of length 12, got length=16/);
    expect(() => dec.decryptFields(key, [good, { ...good, tag: new Uint8Array(12) }])).toThrow(/field 1: "tag"/);
    expect(() => dec.decryptFields(key.subarray(0, 16), [good])).toThrow(/"key" expected Uint8Array of length 32, got length=16/);
    expect(() => dec.decryptFields(key, [{ ...good, ciphertext: 'x' as unknown as Uint8Array }])).toThrow(TypeError);
  });

  it('cross-checks node:crypto on random fields, with tampering flagged per field', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.array(fc.record({ pt: fc.uint8Array({ maxLength: 200 }), aad: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: undefined }), tamper: fc.nat(3) }), { maxLength: 20 }),
        (key, specs) => {
          const fields = specs.map((s) => {
            const f = encrypt(key, s.pt, s.aad);
            if (s.tamper === 1 && f.ciphertext.length > 0) f.ciphertext[0]! ^= 1;
            if (s.tamper === 2) f.tag[15]! ^= 0x80;
            return f;
          });
          const r = dec.decryptFields(key, fields);
          let ok = 0;
          specs.forEach((s, i) => {
            const tampered = (s.tamper === 1 && s.pt.length > 0) || s.tamper === 2;
            expect(r.ok[i]).toBe(tampered ? 0 : 1);
            if (!tampered) {
              expect(Buffer.from(r.field(i)!).equals(Buffer.from(s.pt))).toBe(true);
              ok++;
            }
          });
          expect(r.okCount).toBe(ok);
          expect(r.offsets[specs.length]).toBe(specs.reduce((a, s) => a + s.pt.length, 0));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('packs fields that share one buffer without copying, and wipe() zeroes plaintexts', () => {
    const key = randomBytes(32);
    const a = encrypt(key, Buffer.from('secret-a'), Buffer.from('aad'));
    const blob = Buffer.concat([a.iv, a.ciphertext, a.tag, a.aad!]);
    const shared: GcmField = {
      iv: blob.subarray(0, 12),
      ciphertext: blob.subarray(12, 20),
      tag: blob.subarray(20, 36),
      aad: blob.subarray(36),
    };
    const p = packFields([shared, shared]);
    expect(p.input.buffer).toBe(blob.buffer);
    const r = dec.decryptPacked(key, p);
    expect(Buffer.from(r.field(1)!).toString()).toBe('secret-a');
    r.wipe();
    expect(r.plaintext.every((b) => b === 0)).toBe(true);
  });

  it('refuses a packed table that points outside its input', () => {
    const key = randomBytes(32);
    const p = packFields([encrypt(key, Buffer.from('x'))]);
    p.table[2] = p.input.length;
    expect(() => dec.decryptPacked(key, p)).toThrow(/range outside input/);
  });

  it('an empty batch is fine', () => {
    const r = dec.decryptFields(randomBytes(32), []);
    expect(r.count).toBe(0);
    expect(r.okCount).toBe(0);
  });
});

describe.runIf(native !== null)('native-only entry points', () => {
  it('the binding checks its own arguments (no crash on misuse)', () => {
    const b = native!;
    const key = new Uint8Array(32);
    expect(() => b.gcmDecryptBatch(new Uint8Array(31), new Uint8Array(0), new Uint32Array(0), new Uint8Array(0), new Uint8Array(0))).toThrow(RangeError);
    expect(() => b.gcmDecryptBatch(key, new Uint8Array(10), new Uint32Array([0, 12, 0, 0, 0, 16, 0, 0]), new Uint8Array(0), new Uint8Array(1))).toThrow(/outside input/);
    expect(() => b.gcmDecryptBatch(key, new Uint8Array(40), new Uint32Array([0, 12, 0, 0, 0, 16, 0, 0, 1]), new Uint8Array(0), new Uint8Array(1))).toThrow(/multiple of 8/);
    expect(() => b.gcmDecryptBatch(key, new Uint8Array(40), new Uint32Array([0, 12, 0, 8, 0, 16, 0, 0]), new Uint8Array(4), new Uint8Array(1))).toThrow(/"out"/);
    expect(() => b.gcmDecryptBatch(key, new Uint8Array(40), new Uint32Array([0, 12, 0xffffffff, 8, 0, 16, 0, 0]), new Uint8Array(8), new Uint8Array(1))).toThrow(/outside input/);
    expect(() => b.gcmDecryptBatch(key, [] as unknown as Uint8Array, new Uint32Array(0), new Uint8Array(0), new Uint8Array(0))).toThrow(TypeError);
  });

  it('the ceiling loop decrypts the same batch repeatedly', () => {
    const key = randomBytes(32);
    const fields = Array.from({ length: 10 }, () => encrypt(key, randomBytes(32)));
    expect(nativeGcmCeiling(key, packFields(fields), 7)).toBe(70);
  });
});
