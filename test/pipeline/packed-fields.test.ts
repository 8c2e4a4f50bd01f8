/**
 * Issue 6 (pipeline throughput): the job parses encrypted fields straight into one packed buffer.
 * `PackedFieldWriter` must agree with `parseField` (same bytes, same error reasons) and with
 * `fieldAad` (same additional data), or fields would fail to open or be bound differently.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PackedFieldWriter, aadPart, aadPrefix, fieldAad, parseField } from '../../enclave/protocol/field.js';

function outcome(f: () => unknown): unknown {
  try {
    return f();
  } catch (e) {
    return { code: (e as { code?: string }).code, reason: (e as { reason?: string }).reason, message: (e as Error).message };
  }
}

const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const fieldish = fc.oneof(
  fc.tuple(fc.constantFrom('ekf1', 'ekf2', 'ekf1x', ''), fc.constantFrom('k0', 'k-1', '', 'k!', 'k'.repeat(65)),
    fc.string({ unit: fc.constantFrom(...b64, '=', '.', '+'), minLength: 14, maxLength: 18 }),
    fc.string({ unit: fc.constantFrom(...b64, '=', '+'), maxLength: 40 }))
    .map(([v, k, iv, body]) => `${v}.${k}.${iv}.${body}`),
  fc.string(),
  fc.constantFrom(1, null, {}, 'ekf1.k0.AAAAAAAAAAAAAAAA.' + 'A'.repeat(22), 'ekf1.k0.AAAAAAAAAAAAAAAA.' + 'A'.repeat(21) + 'B'),
);

describe('PackedFieldWriter', () => {
  it('property: parses like parseField (same bytes or the same error)', () => {
    const w = new PackedFieldWriter();
    fc.assert(
      fc.property(fieldish, (s) => {
        const want = outcome(() => {
          const p = parseField(s);
          return { keyRef: p.keyRef, iv: Buffer.from(p.iv).toString('hex'), ct: Buffer.from(p.ciphertext).toString('hex'), tag: Buffer.from(p.tag).toString('hex') };
        });
        const got = outcome(() => {
          w.reset();
          w.parse(s);
          const b = w.buf;
          const ctEnd = w.bodyOff + w.bodyLen - 16;
          return {
            keyRef: w.keyRef,
            iv: b.subarray(w.ivOff, w.ivOff + 12).toString('hex'),
            ct: b.subarray(w.bodyOff, ctEnd).toString('hex'),
            tag: b.subarray(ctEnd, ctEnd + 16).toString('hex'),
          };
        });
        expect(got).toEqual(want);
      }),
      { numRuns: 300 },
    );
  });

  it('property: writes the additional data fieldAad returns', () => {
    const w = new PackedFieldWriter();
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 30 }), fc.constantFrom('email', 'orders.total', 'a_b.c-d'), fc.constantFrom('k0', 'key_1-A'),
        (ds, rid, path, ref) => {
          w.reset();
          w.pos = 3;
          const at = w.aad(aadPrefix(ds), rid, aadPart(path), ref);
          expect(Buffer.from(w.buf.subarray(at, w.pos))).toEqual(Buffer.from(fieldAad(ds, rid, path, ref)));
        }),
      { numRuns: 200 },
    );
  });

  it('grows its buffer without losing what it holds', () => {
    const w = new PackedFieldWriter();
    const s = 'ekf1.k0.AAAAAAAAAAAAAAAA.' + 'QUJD'.repeat(30_000);
    w.parse(s);
    const first = Buffer.from(w.buf.subarray(w.bodyOff, w.bodyOff + w.bodyLen));
    const off = w.bodyOff;
    w.parse(s);
    expect(Buffer.from(w.buf.subarray(off, off + first.length))).toEqual(first);
    expect(first.subarray(0, 3).toString()).toBe('ABC');
  });
});
