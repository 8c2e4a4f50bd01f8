/**
 * `enclavekit eif build` + `eif describe` (issue #12): images built by the CLI are laid out as AWS's
 * builder lays them out, and every PCR, the CRC and the signature are checked here against
 * computations written independently (node:crypto, zlib, cbor-x), not with attestation/eif.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes, verify as nodeVerify } from 'node:crypto';
import { decode as cborDecode, encode as cborEncode } from 'cbor-x';
import { cli, expectedCrc, expectedPcr, read, readHeader, selfSigned, tmp } from './helpers.js';

let dir: string;
let kernel: Buffer;
let boot: Buffer;
let app: Buffer;
let app2: Buffer;
const CMDLINE = 'reboot=k panic=30 pci=off nomodules console=ttyS0 random.trust_cpu=on';
const paths = { kernel: '', boot: '', app: '', app2: '' };

beforeAll(() => {
  dir = tmp();
  kernel = randomBytes(70_001);
  boot = randomBytes(5_003);
  app = randomBytes(300_017);
  app2 = randomBytes(17);
  for (const [k, v] of Object.entries({ kernel, boot, app, app2 })) {
    paths[k as keyof typeof paths] = join(dir, k);
    writeFileSync(join(dir, k), v);
  }
});

const buildArgs = (out: string, extra: string[] = []) => [
  'eif', 'build', '--kernel', paths.kernel, '--cmdline', CMDLINE, '--ramdisk', paths.boot, '--ramdisk', paths.app, '--ramdisk', paths.app2, '--out', out, '--json', ...extra,
];

describe('eif build', () => {
  it('writes a version 4 EIF laid out as AWS builds it, with the PCRs computed independently', async () => {
    const out = join(dir, 'a.eif');
    const r = await cli(buildArgs(out));
    expect(r.code, r.err).toBe(0);
    const j = r.json();
    const want = {
      '0': expectedPcr(kernel, Buffer.from(CMDLINE), boot, app, app2),
      '1': expectedPcr(kernel, Buffer.from(CMDLINE), boot),
      '2': expectedPcr(app, app2),
    };
    expect(j.pcrs).toEqual(want);
    expect(j.signature).toEqual({ present: false });

    const f = read(out);
    const h = readHeader(f);
    expect(h).toMatchObject({ magic: '.eif', version: 4, flags: 0, mem: 1024 ** 3, cpus: 2, n: 6 });
    // kernel, cmdline, metadata, ramdisk x3, back to back; offsets point at section headers.
    const types = h.offsets.map((o) => f.readUInt16BE(o));
    expect(types).toEqual([1, 2, 5, 3, 3, 3]);
    expect(h.sizes.slice(0, 2)).toEqual([kernel.length, CMDLINE.length]);
    expect(h.sizes.slice(3)).toEqual([boot.length, app.length, app2.length]);
    let at = 548;
    h.offsets.forEach((o, i) => {
      expect(o).toBe(at);
      expect(f.readUInt16BE(o + 2)).toBe(0);
      expect(Number(f.readBigUInt64BE(o + 4))).toBe(h.sizes[i]);
      at += 12 + h.sizes[i]!;
    });
    expect(at).toBe(f.length);
    expect(f.subarray(h.offsets[1]! + 12, h.offsets[1]! + 12 + h.sizes[1]!).toString()).toBe(CMDLINE); // no trailing NUL
    expect(h.crc).toBe(expectedCrc(f));
    const meta = JSON.parse(f.subarray(h.offsets[2]! + 12, h.offsets[2]! + 12 + h.sizes[2]!).toString());
    expect(Object.keys(meta)).toEqual(['ImageName', 'ImageVersion', 'BuildMetadata', 'DockerInfo', 'CustomMetadata']);
    expect(meta).toMatchObject({ ImageName: 'kernel', ImageVersion: '1.0', DockerInfo: null, CustomMetadata: null });
    expect(meta.BuildMetadata).toMatchObject({ BuildTime: '1970-01-01T00:00:00+00:00', BuildTool: 'enclavekit', OperatingSystem: 'OS', KernelVersion: 'kernel' });

    const d = await cli(['eif', 'describe', out, '--json']);
    expect(d.code, d.out + d.err).toBe(0);
    expect(d.json()).toMatchObject({ ok: true, version: 4, arch: 'x86_64', crcValid: true, pcrs: want, signature: { present: false }, cmdline: CMDLINE, defaultMemory: 1024 ** 3, defaultCpus: 2 });
    expect(d.json().sections.map((s: { type: string; size: number }) => [s.type, s.size])).toEqual([
      ['kernel', kernel.length], ['cmdline', CMDLINE.length], ['metadata', h.sizes[2]], ['ramdisk', boot.length], ['ramdisk', app.length], ['ramdisk', app2.length],
    ]);
    expect(d.json().metadata).toEqual(meta);
  });

  it('two builds of the same inputs are byte-identical, signed or not', async () => {
    const { certPem, keyPem } = await selfSigned('P-384');
    writeFileSync(join(dir, 'det.crt'), certPem);
    writeFileSync(join(dir, 'det.key'), keyPem);
    for (const extra of [[], ['--sign-cert', join(dir, 'det.crt'), '--sign-key', join(dir, 'det.key')]]) {
      await cli(buildArgs(join(dir, 'x1.eif'), extra));
      await cli(buildArgs(join(dir, 'x2.eif'), extra));
      expect(read(join(dir, 'x1.eif')).equals(read(join(dir, 'x2.eif')))).toBe(true);
    }
  });

  it('aarch64 sets header flag bit 0; custom metadata is written as serde_json writes a Value', async () => {
    const out = join(dir, 'arm.eif');
    writeFileSync(join(dir, 'meta.json'), '{"z": 1, "a": [1.5, 1e3, -0, 10], "m": {"b": true, "a": null}, "é": "x"}');
    const r = await cli(buildArgs(out, ['--arch', 'aarch64', '--metadata', join(dir, 'meta.json'), '--name', 'img', '--image-version', '7']));
    expect(r.code, r.err).toBe(0);
    const f = read(out);
    expect(readHeader(f).flags).toBe(1);
    const d = (await cli(['eif', 'describe', out, '--json'])).json();
    expect(d.arch).toBe('aarch64');
    const h = readHeader(f);
    const text = f.subarray(h.offsets[2]! + 12, h.offsets[2]! + 12 + h.sizes[2]!).toString();
    expect(text).toContain('"CustomMetadata":{"a":[1.5,1000.0,-0.0,10],"m":{"a":null,"b":true},"z":1,"é":"x"}');
    expect(text.startsWith('{"ImageName":"img","ImageVersion":"7","BuildMetadata":{"BuildTime":')).toBe(true);
  });

  for (const curve of ['P-384', 'P-256', 'P-521'] as const) {
    it(`signs PCR0 with a ${curve} key: PCR8, the signature section and the COSE_Sign1 check independently`, async () => {
      const { certPem, keyPem, der } = await selfSigned(curve);
      writeFileSync(join(dir, `${curve}.crt`), certPem);
      writeFileSync(join(dir, `${curve}.key`), keyPem);
      const out = join(dir, `signed-${curve}.eif`);
      const r = await cli(buildArgs(out, ['--sign-cert', join(dir, `${curve}.crt`), '--sign-key', join(dir, `${curve}.key`)]));
      expect(r.code, r.err).toBe(0);
      const j = r.json();
      expect(j.pcrs['8']).toBe(expectedPcr(der));
      expect(j.pcrs['0']).toBe(expectedPcr(kernel, Buffer.from(CMDLINE), boot, app, app2));

      const f = read(out);
      const h = readHeader(f);
      expect(h.n).toBe(7);
      expect(f.readUInt16BE(h.offsets[6]!)).toBe(4);
      expect(h.crc).toBe(expectedCrc(f));
      // serde_cbor: [ {"signing_certificate": [u8...], "signature": [u8...]} ]
      const section = cborDecode(f.subarray(h.offsets[6]! + 12, h.offsets[6]! + 12 + h.sizes[6]!));
      expect(Array.isArray(section) && section.length === 1).toBe(true);
      expect(Object.keys(section[0])).toEqual(['signing_certificate', 'signature']);
      expect(Buffer.from(section[0].signing_certificate).toString()).toBe(certPem);
      const cose = cborDecode(Buffer.from(section[0].signature));
      const [prot, unprot, payload, sig] = cose as [Uint8Array, unknown, Uint8Array, Uint8Array];
      const alg = { 'P-256': -7, 'P-384': -35, 'P-521': -36 }[curve];
      expect(cborDecode(prot)).toEqual({ 1: alg });
      expect(unprot instanceof Map ? unprot.size : Object.keys(unprot as object).length).toBe(0);
      expect(cborDecode(payload)).toEqual({ register_index: 0, register_value: [...Buffer.from(j.pcrs['0'], 'hex')] });
      const tbs = cborEncode(['Signature1', Buffer.from(prot), Buffer.alloc(0), Buffer.from(payload)]);
      const hash = { 'P-256': 'sha256', 'P-384': 'sha384', 'P-521': 'sha512' }[curve];
      expect(nodeVerify(hash, tbs, { key: certPem, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);

      const d = await cli(['eif', 'describe', out, '--json']);
      expect(d.code, d.out).toBe(0);
      expect(d.json()).toMatchObject({ ok: true, pcrs: j.pcrs, signature: { present: true, valid: true, pcrIndex: 0, curve } });
      expect(d.json().signature.certificate.sha256).toBe(createHash('sha256').update(der).digest('hex'));
    });
  }

  it('refuses a key that does not belong to the certificate, a NUL in the cmdline, no ramdisk', async () => {
    const a = await selfSigned('P-384');
    const b = await selfSigned('P-384');
    writeFileSync(join(dir, 'a.crt'), a.certPem);
    writeFileSync(join(dir, 'b.key'), b.keyPem);
    const r = await cli(buildArgs(join(dir, 'bad.eif'), ['--sign-cert', join(dir, 'a.crt'), '--sign-key', join(dir, 'b.key')]));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/does not belong/);
    expect((await cli(['eif', 'build', '--kernel', paths.kernel, '--cmdline', 'a\0b', '--ramdisk', paths.boot, '--out', join(dir, 'n.eif')])).code).toBe(2);
    expect((await cli(['eif', 'build', '--kernel', paths.kernel, '--cmdline', 'x', '--out', join(dir, 'n.eif')])).code).toBe(2);
    expect((await cli(['eif', 'build', '--kernel', join(dir, 'nope'), '--cmdline', 'x', '--ramdisk', paths.boot, '--out', join(dir, 'n.eif')])).code).toBe(2);
  });
});

describe('eif describe: verdicts', () => {
  let signed: Buffer;
  let plain: Buffer;
  beforeAll(async () => {
    const { certPem, keyPem } = await selfSigned('P-384');
    writeFileSync(join(dir, 'v.crt'), certPem);
    writeFileSync(join(dir, 'v.key'), keyPem);
    await cli(buildArgs(join(dir, 'v-signed.eif'), ['--sign-cert', join(dir, 'v.crt'), '--sign-key', join(dir, 'v.key')]));
    await cli(buildArgs(join(dir, 'v-plain.eif')));
    signed = read(join(dir, 'v-signed.eif'));
    plain = read(join(dir, 'v-plain.eif'));
  });

  const describeBytes = async (b: Buffer, name: string) => {
    writeFileSync(join(dir, name), b);
    return cli(['eif', 'describe', join(dir, name), '--json']);
  };

  it('a flipped ramdisk byte: CRC fails (exit 1, ERR_EIF_CRC) and the PCRs are those of the bytes given', async () => {
    const b = Buffer.from(plain);
    b[b.length - 100]! ^= 1;
    const r = await describeBytes(b, 'crc.eif');
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ ok: false, code: 'ERR_EIF_CRC', crcValid: false });
    const h = readHeader(b);
    const ramdisk = (i: number) => b.subarray(h.offsets[i]! + 12, h.offsets[i]! + 12 + h.sizes[i]!);
    expect(ramdisk(4).equals(app)).toBe(false);
    expect(r.json().pcrs['2']).toBe(expectedPcr(ramdisk(4), ramdisk(5)));
  });

  it('a signature over another PCR0 (ramdisk changed, CRC recomputed): ERR_EIF_SIGNATURE_INVALID pcr_mismatch, exit 1', async () => {
    const b = Buffer.from(signed);
    const h = readHeader(b);
    b[h.offsets[5]! + 12]! ^= 0xff; // first byte of the last ramdisk
    b.writeUInt32BE(expectedCrc(b), 544);
    const r = await describeBytes(b, 'sig.eif');
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ ok: false, code: 'ERR_EIF_SIGNATURE_INVALID', reason: 'pcr_mismatch', crcValid: true, signature: { present: true, valid: false } });
    expect(r.json().pcrs['8']).toBeDefined();
  });

  it('a flipped signature byte (CRC recomputed): reason signature, exit 1', async () => {
    const b = Buffer.from(signed);
    b[b.length - 5]! ^= 1; // inside r||s, the last array of the section (small values encode as one byte)
    b.writeUInt32BE(expectedCrc(b), 544);
    const r = await describeBytes(b, 'sig2.eif');
    expect(r.code).toBe(1);
    expect(r.json().code).toBe('ERR_EIF_SIGNATURE_INVALID');
  });

  it('not an EIF, truncated, crafted headers: ERR_EIF_INVALID with a reason, exit 2, never a crash', async () => {
    const cases: [string, (b: Buffer) => Buffer][] = [
      ['magic', (b) => Buffer.concat([Buffer.from('.elf'), b.subarray(4)])],
      ['truncated', (b) => b.subarray(0, 300)],
      ['truncated', (b) => b.subarray(0, b.length - 1)],
      ['version', (b) => (b.writeUInt16BE(9, 4), b)],
      ['flags', (b) => (b.writeUInt16BE(2, 6), b)],
      ['reserved', (b) => (b.writeUInt16BE(1, 24), b)],
      ['num_sections', (b) => (b.writeUInt16BE(33, 26), b)],
      ['section_table', (b) => (b.writeUInt16BE(5, 26), b)],
      ['section_table', (b) => (b.writeBigUInt64BE(1n, 28 + 8 * 31), b)],
      ['section_table', (b) => (b.writeBigUInt64BE(549n, 28 + 8), b)],
      ['section_type', (b) => (b.writeUInt16BE(7, 548), b)],
      ['section_flags', (b) => (b.writeUInt16BE(1, 550), b)],
      ['truncated', (b) => (b.writeBigUInt64BE(2n ** 40n, 552), b)],
      ['u64_range', (b) => (b.writeBigUInt64BE(2n ** 60n, 8), b)],
      ['section_order', (b) => (b.writeUInt16BE(3, 548), b)],
      ['truncated', (b) => Buffer.concat([b, Buffer.alloc(5)])],
      ['metadata', (b) => {
        const h = readHeader(b);
        b[h.offsets[2]! + 12] = 0x5b; // '[' instead of '{'
        return b;
      }],
    ];
    for (const [reason, mutate] of cases) {
      const r = await describeBytes(mutate(Buffer.from(plain)), `bad-${reason}.eif`);
      expect(r.code, reason).toBe(2);
      expect(r.json(), reason).toMatchObject({ ok: false, code: 'ERR_EIF_INVALID', reason });
    }
    const empty = await describeBytes(Buffer.alloc(0), 'empty.eif');
    expect(empty.json()).toMatchObject({ code: 'ERR_EIF_INVALID', reason: 'truncated' });
    expect((await cli(['eif', 'describe', join(dir, 'missing.eif')])).code).toBe(2);
    expect((await cli(['eif', 'describe', dir])).code).toBe(2);
  });

  it('human output names the verdict and the PCRs', async () => {
    const r = await cli(['eif', 'describe', join(dir, 'v-signed.eif')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^VALID/);
    expect(r.out).toMatch(/PCR8 +[0-9a-f]{96}/);
    expect(r.out).toMatch(/signature valid ES384/);
  });
});

describe('policy --eif', () => {
  it('pins PCR0, PCR1, PCR2 and PCR8 of a signed image; refuses an image that does not check', async () => {
    const { certPem, keyPem, der } = await selfSigned('P-384');
    writeFileSync(join(dir, 'p.crt'), certPem);
    writeFileSync(join(dir, 'p.key'), keyPem);
    const out = join(dir, 'p.eif');
    await cli(buildArgs(out, ['--sign-cert', join(dir, 'p.crt'), '--sign-key', join(dir, 'p.key')]));
    const arns = ['--key-admin', 'arn:aws:iam::111122223333:role/admin', '--data-owner', 'arn:aws:iam::111122223333:role/owner', '--role', 'arn:aws:iam::111122223333:role/enclave'];
    const r = await cli(['policy', '--eif', out, ...arns]);
    expect(r.code, r.err).toBe(0);
    for (const v of [expectedPcr(kernel, Buffer.from(CMDLINE), boot, app, app2), expectedPcr(kernel, Buffer.from(CMDLINE), boot), expectedPcr(app, app2), expectedPcr(der)])
      expect(r.out).toContain(v);
    for (const n of [0, 1, 2, 8]) expect(r.out).toContain(`kms:RecipientAttestation:PCR${n}`);

    const b = read(out);
    b[b.length - 300]! ^= 1;
    writeFileSync(join(dir, 'p-bad.eif'), b);
    const bad = await cli(['policy', '--eif', join(dir, 'p-bad.eif'), ...arns]);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/ERR_EIF_CRC/);
  });
});
