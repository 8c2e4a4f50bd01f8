/**
 * `snp measure` / `snp id-digest` (issue #12) against sev-snp-measure's vectors
 * (test/vectors/snp-measure/SOURCE.md), negative cases for every check, and property tests for the
 * OVMF parser (untrusted bytes).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { isToolkitError } from '../../attestation/errors.js';
import { parseOvmf, sevHashesTable, snpIdKeyDigest, snpLaunchDigest, snpPolicyFromMeasureJson, cpuSig, VCPU_TYPES, type VmmType } from '../../attestation/sevsnp/measure.js';
import { parseSnpPolicy } from '../../attestation/sevsnp/policy.js';
import { cli, tmp } from '../eif/helpers.js';

const V = fileURLToPath(new URL('../vectors/snp-measure/', import.meta.url));
const cases = JSON.parse(readFileSync(V + 'cases.json', 'utf8')).cases as {
  id: string;
  params: { vcpus: number; vcpu_type: string; vmm_type: string; ovmf: string; kernel: string | null; initrd: string | null; append: string | null; guest_features: string };
  expected: { launch_digest: string };
  measured_inputs?: { sev_hashes_table_hex: string; kernel_sha256: string; initrd_sha256: string; cmdline_sha256: string };
}[];
const extra = JSON.parse(readFileSync(V + 'extra-cases.json', 'utf8'));
const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());
const ovmf = (name: string) => new Uint8Array(readFileSync(V + name));
let dir: string;
let empty: string;
beforeAll(() => {
  dir = tmp('enclavekit-snp-');
  empty = join(dir, 'empty');
  writeFileSync(empty, '');
});

function code(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (isToolkitError(e)) return `${e.code}:${e.reason}`;
    throw e;
  }
}

describe('snp measure reproduces sev-snp-measure', () => {
  it.each(cases.map((c) => [c.id, c] as const))('%s (pure function)', (_id, c) => {
    const p = c.params;
    const ld = snpLaunchDigest({
      ovmf: ovmf(p.ovmf),
      vcpus: p.vcpus,
      vcpuSig: VCPU_TYPES[p.vcpu_type]!,
      vmm: p.vmm_type as VmmType,
      guestFeatures: BigInt(p.guest_features),
      ...(p.kernel !== null ? { kernel: { kernelSha256: sha256(new Uint8Array(0)), initrdSha256: sha256(new Uint8Array(0)), cmdline: p.append! } } : {}),
    });
    expect(Buffer.from(ld).toString('hex')).toBe(c.expected.launch_digest);
  });

  it.each(cases.map((c) => [c.id, c] as const))('%s (CLI, --json)', async (_id, c) => {
    const p = c.params;
    const argv = ['snp', 'measure', '--ovmf', V + p.ovmf, '--vcpus', String(p.vcpus), '--vcpu-type', p.vcpu_type, '--vmm-type', p.vmm_type, '--guest-features', p.guest_features, '--json'];
    if (p.kernel !== null) argv.push('--kernel', empty, '--initrd', empty, '--append', p.append!);
    const r = await cli(argv);
    expect(r.code, r.err).toBe(0);
    expect(r.json()).toEqual({ ok: true, measurement: c.expected.launch_digest });
  });

  it('the SEV hashes table is byte for byte the one sev-snp-measure lays out', () => {
    const m = cases[0]!.measured_inputs!;
    const t = sevHashesTable(Buffer.from(m.kernel_sha256, 'hex'), Buffer.from(m.initrd_sha256, 'hex'), Buffer.from(m.cmdline_sha256, 'hex'));
    expect(Buffer.from(t).toString('hex')).toBe(m.sev_hashes_table_hex);
    expect(parseOvmf(ovmf('ovmf_AmdSev_suffix.bin')).hashesTableGpa).toBe(0x810c00);
  });

  it.each((extra.cases as any[]).map((c) => [c.id, c] as const))('extra: %s (EC2, GCE, several vCPUs, real files)', async (_id, c) => {
    const argv = ['snp', 'measure', '--ovmf', V + c.ovmf, '--vcpus', String(c.vcpus), '--vmm-type', c.vmm, '--guest-features', '0x' + c.gf.toString(16), '--json'];
    if (c.vcpu_type) argv.push('--vcpu-type', c.vcpu_type);
    if (c.kernel) argv.push('--kernel', V + c.kernel);
    if (c.initrd) argv.push('--initrd', V + c.initrd);
    if (c.append) argv.push('--append', c.append);
    const r = await cli(argv);
    expect(r.code, r.err).toBe(0);
    expect(r.json().measurement).toBe(c.expected);
  });

  it('a precomputed OVMF digest seeds the same result (--ovmf-hash)', async () => {
    const c = cases[2]!;
    const r = await cli(['snp', 'measure', '--ovmf', V + c.params.ovmf, '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--guest-features', '0x21', '--ovmf-hash', extra.ovmf_hash.expected, '--json']);
    expect(r.json().measurement).toBe(c.expected.launch_digest);
  });

  it('cpuSig and the CPU model table', () => {
    expect(cpuSig(23, 1, 2)).toBe(0x00800f12);
    expect(VCPU_TYPES['EPYC-Milan']).toBe(0x00a00f11);
    expect(VCPU_TYPES['EPYC-Genoa']).toBe(0x00a10f10);
  });
});

describe('snp measure refuses what it cannot measure', () => {
  const base = { ovmf: ovmf('ovmf_AmdSev_suffix.bin'), vcpus: 1, vcpuSig: 0x800f12, vmm: 'QEMU' as VmmType, guestFeatures: 1n };
  const k = { kernelSha256: new Uint8Array(32), initrdSha256: new Uint8Array(32) };
  it('each check has its reason', () => {
    expect(code(() => snpLaunchDigest({ ...base, ovmf: ovmf('ovmf_OvmfX64_suffix.bin'), kernel: k }))).toBe('ERR_SNP_MEASURE:no_kernel_hashes');
    expect(code(() => snpLaunchDigest({ ...base, ovmf: new Uint8Array(4095) }))).toBe('ERR_SNP_MEASURE:ovmf_size');
    expect(code(() => snpLaunchDigest({ ...base, ovmf: new Uint8Array(0) }))).toBe('ERR_SNP_MEASURE:ovmf_size');
    expect(code(() => snpLaunchDigest({ ...base, ovmf: new Uint8Array(4096) }))).toBe('ERR_SNP_MEASURE:no_reset_vector');
    expect(code(() => snpLaunchDigest({ ...base, vcpus: 0 }))).toBe('ERR_SNP_MEASURE:vcpus');
    expect(code(() => snpLaunchDigest({ ...base, vcpuSig: -1 }))).toBe('ERR_SNP_MEASURE:vcpu_sig');
    expect(code(() => snpLaunchDigest({ ...base, vmm: 'XEN' as VmmType }))).toBe('ERR_SNP_MEASURE:vmm_type');
    expect(code(() => snpLaunchDigest({ ...base, guestFeatures: 1n << 64n }))).toBe('ERR_SNP_MEASURE:guest_features');
    expect(code(() => snpLaunchDigest({ ...base, ovmfHash: new Uint8Array(47) }))).toBe('ERR_SNP_MEASURE:ovmf_hash');
  });

  it('crafted metadata: wrong signature, version, a section count that does not fit, an unknown section type', () => {
    const o = ovmf('ovmf_AmdSev_suffix.bin');
    const meta = parseOvmf(o).table.get('666588dc4a989847a75e5585a7bf67cc')!;
    const at = o.length - new DataView(meta.buffer, meta.byteOffset, 4).getUint32(0, true);
    const mutate = (f: (b: Uint8Array, v: DataView) => void) => {
      const b = new Uint8Array(o);
      f(b, new DataView(b.buffer));
      return code(() => snpLaunchDigest({ ...base, ovmf: b }));
    };
    expect(mutate((b) => (b[at] = 0x42))).toBe('ERR_SNP_MEASURE:ovmf_metadata');
    expect(mutate((_, v) => v.setUint32(at + 8, 2, true))).toBe('ERR_SNP_MEASURE:ovmf_metadata');
    expect(mutate((_, v) => v.setUint32(at + 12, 1000, true))).toBe('ERR_SNP_MEASURE:ovmf_metadata');
    expect(mutate((_, v) => v.setUint32(at + 16 + 8, 9, true))).toBe('ERR_SNP_MEASURE:ovmf_section');
    expect(mutate((_, v) => v.setUint32(at + 16 + 4, 4095, true))).toBe('ERR_SNP_MEASURE:ovmf_section');
  });

  it('CLI: usage errors exit 2 with a message; an unmeasurable OVMF exits 2 with its code', async () => {
    expect((await cli(['snp', 'measure', '--ovmf', V + 'ovmf_AmdSev_suffix.bin', '--vcpus', '1'])).code).toBe(2); // no --vcpu-type for QEMU
    expect((await cli(['snp', 'measure', '--ovmf', V + 'ovmf_AmdSev_suffix.bin', '--vcpus', '1', '--vcpu-type', 'Pentium'])).code).toBe(2);
    expect((await cli(['snp', 'measure', '--ovmf', V + 'ovmf_AmdSev_suffix.bin', '--vcpus', '0', '--vcpu-type', 'EPYC'])).code).toBe(2);
    expect((await cli(['snp', 'measure', '--ovmf', V + 'ovmf_AmdSev_suffix.bin', '--vcpus', '1', '--vcpu-type', 'EPYC', '--initrd', empty])).code).toBe(2);
    expect((await cli(['snp', 'measure', '--ovmf', V + 'missing.bin', '--vcpus', '1', '--vcpu-type', 'EPYC'])).code).toBe(2);
    const r = await cli(['snp', 'measure', '--ovmf', V + 'ovmf_OvmfX64_suffix.bin', '--vcpus', '1', '--vcpu-type', 'EPYC', '--kernel', empty, '--json']);
    expect(r.code).toBe(2);
    expect(r.json()).toMatchObject({ ok: false, code: 'ERR_SNP_MEASURE', reason: 'no_kernel_hashes' });
  });

  it('property: any OVMF bytes are measured or refused with ERR_SNP_MEASURE, never another throw', () => {
    const o = ovmf('ovmf_AmdSev_suffix.bin');
    fc.assert(
      fc.property(fc.nat(4095), fc.integer({ min: 1, max: 255 }), fc.boolean(), (at, x, withKernel) => {
        const b = new Uint8Array(o);
        b[at]! ^= x;
        const c = code(() => snpLaunchDigest({ ...base, vcpus: 2, ovmf: b, ...(withKernel ? { kernel: k } : {}) }));
        expect(c === 'ok' || c.startsWith('ERR_SNP_MEASURE:'), c).toBe(true);
      }),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4096, maxLength: 4096 }), (b) => {
        const c = code(() => parseOvmf(b));
        expect(c === 'ok' || c.startsWith('ERR_SNP_MEASURE:'), c).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe('snp id-digest', () => {
  const want = {
    'id_key_test.pem': '870b7e35c53f8a72d0d322f75ab2af8262792aaf6579622ce4131c3f21f289e77cb0560a5e3b90b3932e674ec709cb14',
    'author_key_test.pem': '63111c34bbfc0a4938f9a009bd074980d8172323e61599c9fd336da8673248e1dca98d0be8f76376a106b8afd4c0a057',
  };
  it.each(Object.entries(want))('%s', async (file, digest) => {
    const r = await cli(['snp', 'id-digest', '--key', V + file, '--json']);
    expect(r.code, r.err).toBe(0);
    expect(r.json()).toEqual({ ok: true, digest, curve: 'P-384' });
  });
  it('refuses a key that is not P-384, and bad coordinates are a caller error', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(join(dir, 'p256.pem'), k.privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const r = await cli(['snp', 'id-digest', '--key', join(dir, 'p256.pem')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/P-384/);
    expect(() => snpIdKeyDigest(new Uint8Array(47), new Uint8Array(48))).toThrow(RangeError);
  });
});

describe('an SEV-SNP policy file accepts `snp measure --json` output', () => {
  const m = cases[0]!.expected.launch_digest;
  it('one object or a list of them becomes {measurement}', () => {
    expect(parseSnpPolicy(snpPolicyFromMeasureJson({ ok: true, measurement: m }))).toEqual({ measurement: m });
    expect(snpPolicyFromMeasureJson([{ ok: true, measurement: m }, { ok: true, measurement: cases[1]!.expected.launch_digest }])).toEqual({ measurement: [m, cases[1]!.expected.launch_digest] });
    // Anything else is left for the strict policy parser.
    expect(() => parseSnpPolicy(snpPolicyFromMeasureJson({ ok: false, code: 'ERR_SNP_MEASURE' }))).toThrow();
    expect(snpPolicyFromMeasureJson({ measurement: m })).toEqual({ measurement: m });
  });
  it('verify --policy takes the measure output file as it is (a mismatch is a policy verdict, exit 1)', async () => {
    writeFileSync(join(dir, 'expected.json'), JSON.stringify({ ok: true, measurement: m }));
    const SNP = fileURLToPath(new URL('../vectors/sev-snp/', import.meta.url));
    const r = await cli(['verify', SNP + 'virtee-1.report.bin', '--cert', SNP + 'virtee-1.vcek.der', '--at', '2024-01-01T00:00:00Z', '--policy', join(dir, 'expected.json'), '--json']);
    expect(r.code, r.out + r.err).toBe(1);
    expect(JSON.stringify(r.json())).toContain('MEASUREMENT');
  });
});
