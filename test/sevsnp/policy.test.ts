/** Policy (validate step) and CRL: fail closed, every violation at once, spec field names. */
import { beforeAll, describe, expect, it } from 'vitest';
import { createSnpSimChain, issueSnpReport, issueSnpSimCrl, snpSimChainKeys, type SnpSimChain } from '../../attestation/sim/snp.js';
import { verifySevSnpWith, type SnpVerifyOptions } from '../../attestation/sevsnp/verify.js';
import { parseSnpPolicy, type SnpPolicy } from '../../attestation/sevsnp/policy.js';
import { nodeCrypto } from '../../attestation/crypto/node.js';
import { AttestationPolicyError } from '../../attestation/errors.js';
import { toHex } from '../../attestation/bytes.js';

const NOW = new Date('2026-03-01T00:00:00Z');
const M = new Uint8Array(48).fill(7);
const RD = new Uint8Array(64).fill(9);
let chain: SnpSimChain;
let good: Uint8Array;

beforeAll(async () => {
  chain = await createSnpSimChain({ now: NOW, tcb: { bootloader: 4, tee: 0, snp: 24, microcode: 219 } });
  good = await issueSnpReport(chain, { measurement: M, reportData: RD });
}, 60_000);

const run = (report: Uint8Array, policy?: SnpPolicy, extra: SnpVerifyOptions = {}) =>
  verifySevSnpWith(
    report,
    { vcek: chain.vcek.der, ask: chain.ask.der },
    { now: NOW, roots: [], simulatorRoots: [chain.ark.der], cache: false, ...(policy ? { policy } : {}), ...extra },
    nodeCrypto,
  );
function violations(fn: () => unknown): { field: string; expected: string; actual: string }[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationPolicyError);
    return [...(e as AttestationPolicyError).violations];
  }
  throw new Error('expected a policy violation');
}
const fields = (fn: () => unknown) => violations(fn).map((v) => v.field).sort();

describe('SEV-SNP policy', () => {
  it('accepts matching expectations (hex or bytes, one or a list)', () => {
    expect(() =>
      run(good, {
        measurement: [toHex(new Uint8Array(48)), toHex(M)],
        reportData: RD,
        hostData: new Uint8Array(32),
        vmpl: [0, 1],
        minTcb: { bootloader: 4, snp: 24, microcode: 219 },
        minLaunchTcb: { microcode: 200 },
        minFirmware: { major: 1, minor: 55, build: 40 },
        minBuild: 21,
        guestPolicy: { minAbi: { major: 0, minor: 0 } },
        platformInfo: { requireEcc: true },
        requireCommittedEqualsCurrent: true,
        launchMitVector: '0x0',
      }),
    ).not.toThrow();
  });

  it('a shorter REPORT_DATA expectation is zero-padded to 64 bytes', async () => {
    const r = await issueSnpReport(chain, { measurement: M, reportData: new Uint8Array([...new Uint8Array(32).fill(5), ...new Uint8Array(32)]) });
    expect(() => run(r, { reportData: toHex(new Uint8Array(32).fill(5)) })).not.toThrow();
    expect(fields(() => run(r, { reportData: toHex(new Uint8Array(31).fill(5)) }))).toEqual(['REPORT_DATA']);
  });

  it('reports every violation at once, with spec field names and hex values', async () => {
    const r = await issueSnpReport(chain, {
      measurement: M,
      reportData: RD,
      policy: 0x30000n | (1n << 19n) | (1n << 18n),
      vmpl: 2,
      guestSvn: 1,
      platformInfo: 0x03n,
      currentVersion: { major: 1, minor: 55, build: 20 },
      committedTcb: { bootloader: 4, tee: 0, snp: 24, microcode: 200 },
    });
    const v = violations(() =>
      run(r, {
        measurement: new Uint8Array(48),
        reportData: new Uint8Array(64),
        hostData: 'ff'.repeat(32),
        familyId: '01'.repeat(16),
        imageId: '02'.repeat(16),
        chipId: '03'.repeat(64),
        idKeyDigests: ['04'.repeat(48)],
        authorKeyDigests: ['05'.repeat(48)],
        minTcb: { microcode: 220, snp: 25 },
        minLaunchTcb: { bootloader: 5 },
        minFirmware: { major: 1, minor: 56 },
        minBuild: 21,
        minGuestSvn: 2,
        vmpl: 0,
        guestPolicy: { allowSmt: false, requireSingleSocket: true, requireMemAes256Xts: true, requireRaplDisable: true, requireCiphertextHiding: true, requirePageSwapDisable: true, minAbi: { major: 1, minor: 0 } },
        platformInfo: { allowSmt: false, allowTsme: false, requireEcc: true, requireRaplDisable: true, requireCiphertextHiding: true, requireAliasCheckComplete: true },
        requireCommittedEqualsCurrent: true,
        launchMitVector: '0x1',
        currentMitVector: '0x2',
      }),
    );
    expect(v.map((x) => x.field).sort()).toEqual(
      [
        'MEASUREMENT', 'REPORT_DATA', 'HOST_DATA', 'FAMILY_ID', 'IMAGE_ID', 'CHIP_ID', 'ID_KEY_DIGEST', 'AUTHOR_KEY_EN',
        'REPORTED_TCB.microcode', 'REPORTED_TCB.snp', 'LAUNCH_TCB.bootloader', 'CURRENT_VERSION', 'CURRENT_BUILD',
        'GUEST_SVN', 'VMPL', 'POLICY.DEBUG', 'POLICY.MIGRATE_MA', 'POLICY.SMT', 'POLICY.SINGLE_SOCKET',
        'POLICY.MEM_AES_256_XTS', 'POLICY.RAPL_DIS', 'POLICY.CIPHERTEXT_HIDING_DRAM', 'POLICY.PAGE_SWAP_DISABLE',
        'POLICY.ABI', 'PLATFORM_INFO.SMT_EN', 'PLATFORM_INFO.TSME_EN', 'PLATFORM_INFO.ECC_EN', 'PLATFORM_INFO.RAPL_DIS',
        'PLATFORM_INFO.CIPHERTEXT_HIDING_DRAM_EN', 'PLATFORM_INFO.ALIAS_CHECK_COMPLETE', 'COMMITTED_TCB',
        'LAUNCH_MIT_VECTOR', 'CURRENT_MIT_VECTOR',
      ].sort(),
    );
    expect(v.find((x) => x.field === 'MEASUREMENT')).toEqual({ field: 'MEASUREMENT', expected: '00'.repeat(48), actual: toHex(M) });
  });

  it('DEBUG and MIGRATE_MA fail by default, pass when allowed', async () => {
    const r = await issueSnpReport(chain, { measurement: M, reportData: RD, policy: 0x30000n | (1n << 19n) | (1n << 18n) });
    expect(fields(() => run(r))).toEqual(['POLICY.DEBUG', 'POLICY.MIGRATE_MA']);
    expect(() => run(r, { guestPolicy: { allowDebug: true, allowMigrationAgent: true } })).not.toThrow();
  });

  it('author key digests need AUTHOR_KEY_EN and a listed digest', async () => {
    const d = new Uint8Array(48).fill(0xaa);
    const r = await issueSnpReport(chain, { measurement: M, reportData: RD, authorKeyEn: true, authorKeyDigest: d, idKeyDigest: d });
    expect(() => run(r, { authorKeyDigests: [toHex(d)], idKeyDigests: [toHex(d)] })).not.toThrow();
    expect(fields(() => run(r, { authorKeyDigests: ['bb'.repeat(48)] }))).toEqual(['AUTHOR_KEY_DIGEST']);
  });

  it('mitigation vectors on a v3 report are absent, so a requirement fails', async () => {
    const r = await issueSnpReport(chain, { version: 3, measurement: M, reportData: RD });
    expect(fields(() => run(r, { currentMitVector: '0x1' }))).toEqual(['CURRENT_MIT_VECTOR']);
  });

  it('malformed policies are ERR_POLICY_INVALID, never skipped', () => {
    const bad: unknown[] = [
      { measurement: 'abcd' },
      { measurement: [] },
      { reportData: 'zz' },
      { reportData: '00'.repeat(65) },
      { hostData: 5 },
      { vmpl: 4 },
      { minTcb: { microcode: 256 } },
      { minTcb: { bogus: 1 } },
      { guestPolicy: { allowDebug: 'yes' } },
      { platformInfo: { nope: true } },
      { unknownKey: 1 },
      { launchMitVector: 'x' },
      { idKeyDigests: [] },
      'string',
      [],
    ];
    for (const p of bad) expect(() => parseSnpPolicy(p), JSON.stringify(p)).toThrow(expect.objectContaining({ code: 'ERR_POLICY_INVALID' }));
    expect(() => run(good, { measurement: 'abcd' })).toThrow(expect.objectContaining({ code: 'ERR_POLICY_INVALID' }));
  });
});

describe('CRL', () => {
  it('an ARK-signed CRL that revokes nothing passes; one revoking the ASK fails', async () => {
    const ok = await issueSnpSimCrl(chain, { thisUpdate: new Date('2026-02-01T00:00:00Z'), nextUpdate: new Date('2026-04-01T00:00:00Z') });
    expect(() => run(good, undefined, { crl: ok })).not.toThrow();
    const revoked = await issueSnpSimCrl(chain, { thisUpdate: new Date('2026-02-01T00:00:00Z'), revoke: ['ask'] });
    expect(() => run(good, undefined, { crl: revoked })).toThrow(expect.objectContaining({ code: 'ERR_SNP_CHAIN_INVALID', reason: 'revoked' }));
    // Revoking the ASVK does not touch the VCEK path.
    const asvk = await issueSnpSimCrl(chain, { thisUpdate: new Date('2026-02-01T00:00:00Z'), revoke: ['asvk'] });
    expect(() => run(good, undefined, { crl: asvk })).not.toThrow();
  });

  it('a CRL not signed by the ARK, stale, future, or with the wrong PSS salt is refused', async () => {
    const t = new Date('2026-02-01T00:00:00Z');
    const cases: [Promise<Uint8Array>, string][] = [
      [issueSnpSimCrl(chain, { thisUpdate: t, signedBy: 'ask' }), 'crl_signature'],
      [issueSnpSimCrl(chain, { thisUpdate: t, nextUpdate: new Date('2026-02-15T00:00:00Z') }), 'crl_expired'],
      [issueSnpSimCrl(chain, { thisUpdate: new Date('2026-05-01T00:00:00Z') }), 'crl_not_yet_valid'],
      [issueSnpSimCrl(chain, { thisUpdate: t, saltLength: 32 }), 'crl_signature_algorithm'],
    ];
    for (const [p, reason] of cases) {
      const crl = await p;
      expect(() => run(good, undefined, { crl }), reason).toThrow(expect.objectContaining({ code: 'ERR_SNP_CHAIN_INVALID', reason }));
    }
    const other = await createSnpSimChain({ now: NOW, product: 'Genoa', keys: snpSimChainKeys(chain) });
    const foreign = await issueSnpSimCrl(other, { thisUpdate: t });
    expect(() => run(good, undefined, { crl: foreign })).toThrow(expect.objectContaining({ reason: 'crl_issuer' }));
    const mine = await issueSnpSimCrl(chain, { thisUpdate: t });
    expect(() => run(good, undefined, { crl: [foreign, mine] })).not.toThrow();
    expect(() => run(good, undefined, { crl: new Uint8Array([0x30, 0x01, 0x00]) })).toThrow(
      expect.objectContaining({ code: 'ERR_SNP_CHAIN_INVALID', reason: 'crl_invalid' }),
    );
  });
});
