/** The extended-report certificate table (GHCB MSG_REPORT_REQ / configfs-tsm auxblob). */
import { describe, expect, it } from 'vitest';
import { buildSnpCertTable, CERT_TABLE_GUID, parseSnpCertTable } from '../../attestation/sevsnp/certtable.js';
import { verifySevSnp } from '../../attestation/sevsnp/node.js';
import { amdRoots } from '../../attestation/sevsnp/roots.js';
import { toHex } from '../../attestation/bytes.js';
import { vecFile } from './_vectors.js';

const vcek = vecFile('oak-1.vcek.der');
const report = vecFile('oak-1.report.bin');
const reason = (b: Uint8Array, r: string) =>
  expect(() => parseSnpCertTable(b)).toThrow(expect.objectContaining({ code: 'ERR_SNP_CERT_TABLE_INVALID', reason: r }));

describe('certificate table', () => {
  it('round-trips and uses RFC 4122 GUID byte order', () => {
    const t = buildSnpCertTable({ vcek, ask: amdRoots().Turin.ask, ark: amdRoots().Turin.ark });
    expect(toHex(t.subarray(0, 16))).toBe(CERT_TABLE_GUID.VCEK.replace(/-/g, ''));
    const p = parseSnpCertTable(t);
    expect(toHex(p.vcek!)).toBe(toHex(vcek));
    expect(toHex(p.ark!)).toBe(toHex(amdRoots().Turin.ark));
    expect(p.other.size).toBe(0);
  });

  it('a real Turin report plus its table verifies with nothing else', () => {
    const t = buildSnpCertTable({ vcek, ask: amdRoots().Turin.ask, ark: amdRoots().Turin.ark });
    const r = verifySevSnp(report, { certTable: t }, { now: new Date('2025-08-01T00:00:00Z'), cache: false });
    expect(r.product).toBe('Turin');
  });

  it('a v2 report takes its product from the extra-platform-info entry, which must agree', () => {
    const v2 = vecFile('virtee-1.report.bin');
    const leaf = vecFile('virtee-1.vcek.der');
    const now = new Date('2023-05-01T00:00:00Z');
    const milan = buildSnpCertTable({ vcek: leaf, cpuidEax: 0x00a00f11 });
    expect(parseSnpCertTable(milan).cpuidEax).toBe(0x00a00f11);
    expect(verifySevSnp(v2, { certTable: milan }, { now, cache: false }).product).toBe('Milan');
    const genoa = buildSnpCertTable({ vcek: leaf, cpuidEax: 0x00a10f11 });
    expect(() => verifySevSnp(v2, { certTable: genoa }, { now, cache: false })).toThrow(
      expect.objectContaining({ code: 'ERR_SNP_CHAIN_INVALID', reason: 'product_mismatch' }),
    );
  });

  it('trailing page padding after the certificates is fine (auxblob is trimmed, the ioctl buffer is not)', () => {
    const t = buildSnpCertTable({ vcek });
    const padded = new Uint8Array(4096);
    padded.set(t);
    expect(parseSnpCertTable(padded).vcek!.length).toBe(vcek.length);
  });

  it('rejects: no terminator, out of bounds, empty entry, duplicate GUID, oversize', () => {
    const t = buildSnpCertTable({ vcek });
    reason(t.subarray(0, 30), 'out_of_bounds');
    const un = t.slice(0, 24);
    new DataView(un.buffer).setUint32(16, 0, true);
    new DataView(un.buffer).setUint32(20, 24, true);
    reason(un, 'unterminated');
    reason(new Uint8Array(0), 'unterminated');
    const oob = t.slice();
    new DataView(oob.buffer).setUint32(20, 0xffffffff, true);
    reason(oob, 'out_of_bounds');
    const oob2 = t.slice();
    new DataView(oob2.buffer).setUint32(16, 0xfffffff0, true);
    reason(oob2, 'out_of_bounds');
    const empty = t.slice();
    new DataView(empty.buffer).setUint32(20, 0, true);
    reason(empty, 'empty_entry');
    const dup = new Uint8Array(24 * 3 + 4);
    const g = t.subarray(0, 24);
    dup.set(g, 0);
    dup.set(g, 24);
    new DataView(dup.buffer).setUint32(16, 72, true);
    new DataView(dup.buffer).setUint32(20, 4, true);
    new DataView(dup.buffer).setUint32(24 + 16, 72, true);
    new DataView(dup.buffer).setUint32(24 + 20, 4, true);
    reason(dup, 'duplicate_guid');
    reason(new Uint8Array(1024 * 1024 + 1), 'size');
  });

  it('a garbage VCEK in the table is a certificate error, not a crash', () => {
    const t = buildSnpCertTable({ vcek: new Uint8Array([0x30, 0x03, 1, 2, 3]) });
    expect(() => verifySevSnp(report, { certTable: t }, { now: new Date('2025-08-01T00:00:00Z'), cache: false })).toThrow(
      expect.objectContaining({ code: 'ERR_CERT_INVALID' }),
    );
  });
});
