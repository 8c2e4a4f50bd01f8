import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../attestation/bytes.js';
import { ToolkitError } from '../../attestation/errors.js';
import { parseNitroDocument } from '../../attestation/nitro/parse.js';
import { verifyNitro } from '../../attestation/nitro/node.js';
import { createNitroSimCa, type NitroSimCa } from '../../attestation/sim/nitro.js';
import { PcrBank } from '../../enclave/platform/pcr-bank.js';
import { snpReportData } from '../../enclave/platform/sev-snp-binding.js';
import { imageIdFromDigests, imageIdFromFiles, simulatedBootPcrs } from '../../enclave/platform/sim-image.js';
import { SimNitroPlatform } from '../../enclave/platform/sim-nitro.js';

const NOW = new Date('2026-06-01T12:00:00Z');
const sha384 = (...p: (Uint8Array | string)[]) => {
  const h = createHash('sha384');
  for (const x of p) h.update(x);
  return new Uint8Array(h.digest());
};
const imageA = sha384('image A');
const imageB = sha384('image B');

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return e instanceof ToolkitError ? `${e.code}:${e.reason}` : `foreign:${(e as Error).name}`;
  }
  return undefined;
}

let ca: NitroSimCa;
beforeAll(async () => {
  ca = await createNitroSimCa({ now: NOW });
});

describe('PCR bank (NSM semantics)', () => {
  const boot = simulatedBootPcrs({ imageId: imageA });

  it('extends as SHA-384(old || data) and returns the new value', () => {
    const bank = new PcrBank(boot);
    const v1 = bank.extend(16, Uint8Array.of(1, 2, 3));
    expect(toHex(v1)).toBe(toHex(sha384(new Uint8Array(48), Uint8Array.of(1, 2, 3))));
    const v2 = bank.extend(16, new Uint8Array(0));
    expect(toHex(v2)).toBe(toHex(sha384(v1)));
    expect(toHex(bank.describe(16).value)).toBe(toHex(v2));
    expect(bank.describe(16).locked).toBe(false);
  });

  it('boot PCRs 0..15 are locked; a locked PCR refuses extend with ReadOnlyIndex', async () => {
    const bank = new PcrBank(boot);
    for (const i of [0, 4, 8, 15]) {
      expect(bank.describe(i).locked).toBe(true);
      expect(await codeOf(() => bank.extend(i, Uint8Array.of(1)))).toBe('ERR_NSM:ReadOnlyIndex');
    }
    bank.extend(17, Uint8Array.of(9));
    bank.lock(17);
    const before = bank.describe(17).value;
    expect(await codeOf(() => bank.extend(17, Uint8Array.of(1)))).toBe('ERR_NSM:ReadOnlyIndex');
    expect(toHex(bank.describe(17).value)).toBe(toHex(before));
  });

  it('LockPCRs(n) locks exactly [0, n) and refuses n > 32', async () => {
    const bank = new PcrBank(boot);
    bank.lockRange(20);
    for (let i = 0; i < 32; i++) expect(bank.describe(i).locked).toBe(i < 20);
    expect(await codeOf(() => bank.lockRange(33))).toBe('ERR_NSM:InvalidIndex');
    expect(() => bank.describe(32)).toThrow(RangeError);
    expect(() => bank.extend(-1, new Uint8Array(1))).toThrow(RangeError);
  });

  it('documents carry PCRs 0..15 plus locked application PCRs only', () => {
    const bank = new PcrBank(boot);
    bank.extend(16, Uint8Array.of(1));
    bank.extend(18, Uint8Array.of(1));
    expect([...bank.documentPcrs().keys()]).toEqual([...Array(16).keys()]);
    bank.lock(18);
    expect([...bank.documentPcrs().keys()]).toEqual([...Array(16).keys(), 18]);
  });

  it('refuses oversized extend data like the NSM (InputTooLarge)', async () => {
    const bank = new PcrBank(boot);
    expect(await codeOf(() => bank.extend(16, new Uint8Array(5000)))).toBe('ERR_NSM:InputTooLarge');
  });
});

describe('image identity -> PCRs', () => {
  it('PCR4 uses the real formula: matches a real AWS document (base-1)', async () => {
    const real = parseNitroDocument(new Uint8Array(await readFile('test/vectors/nitro/base-1.cose')));
    const instanceId = real.moduleId.split('-enc')[0]!;
    const pcrs = simulatedBootPcrs({ imageId: imageA, instanceId });
    expect(toHex(pcrs.get(4)!)).toBe(toHex(real.pcrs.get(4)!));
  });

  it('PCR0/1/2 are non-zero and distinct, PCR8 is zero, a different image changes PCR0/1/2', () => {
    const a = simulatedBootPcrs({ imageId: imageA });
    const b = simulatedBootPcrs({ imageId: imageB });
    const zero = toHex(new Uint8Array(48));
    expect(new Set([0, 1, 2].map((i) => toHex(a.get(i)!))).size).toBe(3);
    for (const i of [0, 1, 2]) {
      expect(toHex(a.get(i)!)).not.toBe(zero);
      expect(toHex(a.get(i)!)).not.toBe(toHex(b.get(i)!));
    }
    expect(toHex(a.get(8)!)).toBe(zero);
    expect(toHex(a.get(3)!)).toBe(zero);
    expect(toHex(simulatedBootPcrs({ imageId: imageA, iamRoleArn: 'arn:aws:iam::1:role/r' }).get(3)!)).not.toBe(zero);
    expect(toHex(a.get(4)!)).toBe(toHex(b.get(4)!));
  });

  it('imageIdFromFiles hashes content in order; one changed byte changes the id', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ek-img-'));
    try {
      await writeFile(join(dir, 'a.js'), 'console.log(1)');
      await writeFile(join(dir, 'b.js'), 'console.log(2)');
      const id1 = await imageIdFromFiles([join(dir, 'a.js'), join(dir, 'b.js')]);
      expect(toHex(id1)).toBe(toHex(imageIdFromDigests([sha384('console.log(1)'), sha384('console.log(2)')])));
      expect(toHex(await imageIdFromFiles([join(dir, 'b.js'), join(dir, 'a.js')]))).not.toBe(toHex(id1));
      await writeFile(join(dir, 'b.js'), 'console.log(3)');
      expect(toHex(await imageIdFromFiles([join(dir, 'a.js'), join(dir, 'b.js')]))).not.toBe(toHex(id1));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('simulated Nitro platform', () => {
  it('attests: verifies with the simulator root as platform "simulator", binding public key, user data, nonce', async () => {
    const p = new SimNitroPlatform({ ca, identity: { imageId: imageA }, now: () => NOW });
    expect(p.kind).toBe('simulator');
    expect(p.evidenceFormat).toBe('nitro');
    const publicKey = new Uint8Array(294).fill(7);
    const doc = await p.attest({ publicKey, userData: Uint8Array.of(1, 2), nonce: Uint8Array.of(3, 4) });
    // Untagged COSE_Sign1 with the NSM's exact envelope prefix.
    expect(toHex(doc.subarray(0, 8))).toBe('8444a1013822a059');
    const v = verifyNitro(doc, { now: NOW, simulatorRoots: [ca.rootDer] });
    expect(v.platform).toBe('simulator');
    expect(toHex(v.publicKey!)).toBe(toHex(publicKey));
    expect(toHex(v.userData!)).toBe('0102');
    expect(toHex(v.nonce!)).toBe('0304');
    expect(toHex(v.pcrs.get(0)!)).toBe(toHex(simulatedBootPcrs({ imageId: imageA }).get(0)!));
    expect(v.moduleId).toBe(p.moduleId);
    expect(v.moduleId).toMatch(/^i-[0-9a-z]+-enc[0-9a-f]{16}$/);
    expect(v.timestamp.getTime()).toBe(NOW.getTime());
  });

  it('is NOT verifiable without the simulator root (default roots, or another simulator root)', async () => {
    const p = new SimNitroPlatform({ ca, identity: { imageId: imageA }, now: () => NOW });
    const doc = await p.attest({});
    expect(await codeOf(() => verifyNitro(doc, { now: NOW }))).toMatch(/^ERR_NITRO_CHAIN_INVALID/);
    const other = await createNitroSimCa({ now: NOW });
    expect(await codeOf(() => verifyNitro(doc, { now: NOW, simulatorRoots: [other.rootDer] }))).toMatch(/^ERR_NITRO_CHAIN_INVALID/);
  });

  it('locked application PCRs appear in the document; policies on PCR0 tell images apart', async () => {
    const pa = new SimNitroPlatform({ ca, identity: { imageId: imageA }, now: () => NOW });
    const pb = new SimNitroPlatform({ ca, identity: { imageId: imageB }, now: () => NOW });
    const v16 = await pa.extendPcr(16, new TextEncoder().encode('job config'));
    await pa.lockPcr(16);
    expect(await codeOf(pa.extendPcr(16, Uint8Array.of(1)))).toBe('ERR_NSM:ReadOnlyIndex');
    const va = verifyNitro(await pa.attest(), { now: NOW, simulatorRoots: [ca.rootDer] });
    expect(toHex(va.pcrs.get(16)!)).toBe(toHex(v16));
    const vb = verifyNitro(await pb.attest(), { now: NOW, simulatorRoots: [ca.rootDer] });
    expect(vb.pcrs.has(16)).toBe(false);
    expect(toHex(va.pcrs.get(0)!)).not.toBe(toHex(vb.pcrs.get(0)!));
    const policy = { pcrs: { 0: toHex(va.pcrs.get(0)!) } };
    const docB = await pb.attest();
    expect(await codeOf(() => verifyNitro(docB, { now: NOW, simulatorRoots: [ca.rootDer], policy }))).toMatch(/^ERR_ATTESTATION_POLICY/);
    const docA = await pa.attest();
    expect(verifyNitro(docA, { now: NOW, simulatorRoots: [ca.rootDer], policy }).platform).toBe('simulator');
  });

  it('rotates the leaf after a few hours, reuses it within', async () => {
    let t = NOW.getTime();
    const p = new SimNitroPlatform({ ca: await createNitroSimCa({ now: NOW }), identity: { imageId: imageA }, now: () => new Date(t) });
    const leaf = (d: Uint8Array) => toHex(parseNitroDocument(d).certificate);
    const l1 = leaf(await p.attest());
    t += 30 * 60_000;
    expect(leaf(await p.attest())).toBe(l1);
    t += 3 * 3_600_000;
    expect(leaf(await p.attest())).not.toBe(l1);
  });

  it('checks caller arguments and random sizes', async () => {
    const p = new SimNitroPlatform({ ca, identity: { imageId: imageA }, now: () => NOW });
    await expect(p.attest({ nonce: new Uint8Array(513) })).rejects.toThrow(RangeError);
    await expect(p.attest({ userData: 'x' as never })).rejects.toThrow(TypeError);
    expect((await p.random(256)).length).toBe(256);
    await expect(p.random(0)).rejects.toThrow(RangeError);
    await p.close();
    expect(await codeOf(p.attest())).toBe('ERR_PLATFORM_UNAVAILABLE:closed');
  });
});

describe('SNP REPORT_DATA binding', () => {
  it('is SHA-512 over length-prefixed fields with a domain string; absent equals empty; no sliding', () => {
    const d = snpReportData({ publicKey: Uint8Array.of(1), userData: Uint8Array.of(2, 3), nonce: null });
    const manual = createHash('sha512')
      .update('enclavekit-snp-report-data-v1\0')
      .update(Uint8Array.of(0, 0, 0, 1, 1, 0, 0, 0, 2, 2, 3, 0, 0, 0, 0))
      .digest('hex');
    expect(toHex(d)).toBe(manual);
    expect(d.length).toBe(64);
    expect(toHex(snpReportData({}))).toBe(toHex(snpReportData({ publicKey: new Uint8Array(0), userData: null })));
    expect(toHex(snpReportData({ publicKey: Uint8Array.of(1, 2), userData: Uint8Array.of(3) }))).not.toBe(
      toHex(snpReportData({ publicKey: Uint8Array.of(1), userData: Uint8Array.of(2, 3) })),
    );
  });
});

afterAll(() => undefined);
