/** Parser: one test per structural rule, each with its own `reason`. */
import { describe, expect, it } from 'vitest';
import { decodeTcb, encodeTcb, parseSnpReport, productFromCpuid } from '../../attestation/sevsnp/abi.js';
import { toHex } from '../../attestation/bytes.js';
import { vecFile } from './_vectors.js';

const v5 = vecFile('oak-1.report.bin'); // Turin v5
const v3 = vecFile('oak-3.report.bin'); // Milan v3
const v2 = vecFile('virtee-1.report.bin'); // Milan v2

function edit(base: Uint8Array, f: (b: Uint8Array, dv: DataView) => void): Uint8Array {
  const b = base.slice();
  f(b, new DataView(b.buffer));
  return b;
}
const expectReason = (b: Uint8Array, reason: string) =>
  expect(() => parseSnpReport(b)).toThrow(expect.objectContaining({ code: 'ERR_SNP_REPORT_INVALID', reason }));

describe('parseSnpReport', () => {
  it('parses v2, v3 and v5 reports', () => {
    const a = parseSnpReport(v5);
    expect(a.version).toBe(5);
    expect(a.cpuid).toEqual({ family: 0x1a, model: 0x02, stepping: 1 });
    expect(a.launchMitVector).toBe(0n);
    expect(a.currentVersion).toEqual({ major: 1, minor: 55, build: 61 });
    expect(toHex(a.signedBytes)).toBe(toHex(v5.subarray(0, 0x2a0)));
    const b = parseSnpReport(v2);
    expect(b.version).toBe(2);
    expect(b.cpuid).toBeUndefined();
    expect(parseSnpReport(v3).cpuid?.model).toBe(0x01);
  });

  it('accepts v4 with the v3 layout', () => {
    expect(parseSnpReport(edit(v3, (_b, dv) => dv.setUint32(0, 4, true))).version).toBe(4);
  });

  it('converts r and s from little-endian 72-byte slots to P1363', () => {
    const p = parseSnpReport(v5);
    expect(p.signatureP1363[0]).toBe(v5[0x2a0 + 47]);
    expect(p.signatureP1363[47]).toBe(v5[0x2a0]);
    expect(p.signatureP1363[48]).toBe(v5[0x2e8 + 47]);
  });

  it('does not alias the caller\'s buffer', () => {
    const b = v5.slice();
    const p = parseSnpReport(b);
    b[0x90]! ^= 0xff;
    expect(p.measurement[0]).toBe(v5[0x90]);
  });

  it('length', () => {
    expectReason(v5.subarray(0, 0x49f), 'length');
    expectReason(new Uint8Array(0x4a1), 'length');
    expectReason(new Uint8Array(0), 'length');
  });
  it('version 1, 6 and 0xffffffff', () => {
    for (const ver of [0, 1, 6, 0xffffffff]) expectReason(edit(v5, (_b, dv) => dv.setUint32(0, ver, true)), 'version');
  });
  it('signature algorithm other than 1', () => {
    expectReason(edit(v5, (_b, dv) => dv.setUint32(0x34, 2, true)), 'signature_algo');
  });
  it('policy bit 17 clear / bits 63:26 set', () => {
    expectReason(edit(v5, (b) => (b[0x0a] = b[0x0a]! & ~0x02)), 'policy_reserved_bit');
    expectReason(edit(v5, (b) => (b[0x0b] = b[0x0b]! | 0x04)), 'policy_reserved_bits');
    expectReason(edit(v5, (b) => (b[0x0f] = 0x80)), 'policy_reserved_bits');
  });
  it('VMPL out of range', () => {
    expectReason(edit(v5, (_b, dv) => dv.setUint32(0x30, 4, true)), 'vmpl');
  });
  it('signer info: reserved bits, masked chip key, no key, reserved key', () => {
    expectReason(edit(v5, (_b, dv) => dv.setUint32(0x48, 1 << 5, true)), 'signer_info_reserved');
    expectReason(edit(v5, (_b, dv) => dv.setUint32(0x48, 2, true)), 'mask_chip_key');
    expectReason(edit(v5, (_b, dv) => dv.setUint32(0x48, 7 << 2, true)), 'no_signing_key');
    expectReason(edit(v5, (_b, dv) => dv.setUint32(0x48, 3 << 2, true)), 'signing_key_reserved');
    expect(parseSnpReport(edit(v5, (_b, dv) => dv.setUint32(0x48, 1 << 2, true))).signingKey).toBe('VLEK');
  });
  it('every must-be-zero range, per version, names its offset', () => {
    const ranges: [Uint8Array, number, string][] = [
      [v5, 0x04c, 'mbz_0x04c'],
      [v5, 0x18b, 'mbz_0x18b'],
      [v5, 0x19f, 'mbz_0x18b'],
      [v2, 0x188, 'mbz_0x188'],
      [v5, 0x1eb, 'mbz_0x1eb'],
      [v5, 0x1ef, 'mbz_0x1ef'],
      [v3, 0x1f8, 'mbz_0x1f8'],
      [v3, 0x200, 'mbz_0x1f8'],
      [v5, 0x208, 'mbz_0x208'],
      [v5, 0x29f, 'mbz_0x208'],
      [v5, 0x330, 'mbz_0x330'],
      [v5, 0x49f, 'mbz_0x330'],
    ];
    for (const [base, off, reason] of ranges) {
      const b = edit(base, (x) => (x[off] = 1));
      expectReason(b, reason);
      expect(() => parseSnpReport(b)).toThrow(/0x[0-9a-f]{3}/);
    }
    // v5 uses 0x1F8..0x207 for the mitigation vectors.
    expect(parseSnpReport(edit(v5, (x) => (x[0x1f8] = 1))).launchMitVector).toBe(1n);
  });
  it('r and s upper 24 bytes must be zero', () => {
    expectReason(edit(v5, (b) => (b[0x2d0] = 1)), 'signature_r_padding');
    expectReason(edit(v5, (b) => (b[0x2e7] = 1)), 'signature_r_padding');
    expectReason(edit(v5, (b) => (b[0x318] = 1)), 'signature_s_padding');
  });
  it('caller misuse is a TypeError', () => {
    expect(() => parseSnpReport('x' as unknown as Uint8Array)).toThrow(TypeError);
  });
});

describe('TCB layouts and product', () => {
  it('Turin and Milan layouts decode the same bytes differently', () => {
    const raw = new Uint8Array([0x01, 0x01, 0x01, 0x04, 0, 0, 0, 0x51]);
    expect(decodeTcb(raw, 'Turin')).toMatchObject({ fmc: 1, bootloader: 1, tee: 1, snp: 4, microcode: 81 });
    expect(decodeTcb(raw, 'Milan')).toMatchObject({ bootloader: 1, tee: 1, snp: 0, microcode: 81 });
    const genoa = new Uint8Array([0x0a, 0, 0, 0, 0, 0, 0x17, 0x54]);
    expect(decodeTcb(genoa, 'Genoa')).toMatchObject({ bootloader: 10, tee: 0, snp: 23, microcode: 84 });
    expect(toHex(encodeTcb({ bootloader: 10, tee: 0, snp: 23, microcode: 84 }, 'Genoa'))).toBe(toHex(genoa));
    expect(toHex(encodeTcb({ fmc: 1, bootloader: 1, tee: 1, snp: 4, microcode: 81 }, 'Turin'))).toBe(toHex(raw));
  });
  it('CPUID family/model map to products', () => {
    expect(productFromCpuid(0x19, 0x01)).toBe('Milan');
    expect(productFromCpuid(0x19, 0x11)).toBe('Genoa');
    expect(productFromCpuid(0x19, 0xa0)).toBe('Genoa');
    expect(productFromCpuid(0x1a, 0x02)).toBe('Turin');
    expect(productFromCpuid(0x1a, 0x50)).toBeUndefined();
    expect(productFromCpuid(0x17, 0x01)).toBeUndefined();
  });
});
