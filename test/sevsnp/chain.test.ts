/**
 * One negative test per chain and binding rule, with throwaway AMD-shaped chains from the simulator
 * signer (attestation/sim/snp.ts). Each override breaks exactly one rule.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createSnpSimChain, issueSnpReport, snpSimChainKeys, type SnpSimChain, type CreateSnpSimChainOptions } from '../../attestation/sim/snp.js';
import { verifySevSnpWith, SnpChainCache, type SnpVerifyOptions, type SnpCerts } from '../../attestation/sevsnp/verify.js';
import { nodeCrypto } from '../../attestation/crypto/node.js';
import { buildSnpCertTable } from '../../attestation/sevsnp/certtable.js';
import { amdRoots } from '../../attestation/sevsnp/roots.js';

const NOW = new Date('2026-03-01T00:00:00Z');
const M = new Uint8Array(48).fill(7);
const RD = new Uint8Array(64).fill(9);

function verify(report: Uint8Array, certs: SnpCerts, chain: SnpSimChain, extra: SnpVerifyOptions = {}) {
  return verifySevSnpWith(report, certs, { now: NOW, roots: [], simulatorRoots: [chain.ark.der], cache: false, ...extra }, nodeCrypto);
}
const vcekCerts = (c: SnpSimChain): SnpCerts => ({ vcek: c.vcek.der, ask: c.ask.der });
const vlekCerts = (c: SnpSimChain): SnpCerts => ({ vlek: c.vlek.der, asvk: c.asvk.der });
const issue = (c: SnpSimChain, o: Partial<Parameters<typeof issueSnpReport>[1]> = {}) =>
  issueSnpReport(c, { measurement: M, reportData: RD, ...o });

const variants: Record<string, Omit<CreateSnpSimChainOptions, 'now'>> = {
  base: {},
  turin: { product: 'Turin' },
  genoa: { product: 'Genoa' },
  leafExpired: { overrides: { vcek: { notAfter: new Date('2026-02-01T00:00:00Z') } } },
  leafNotYet: { overrides: { vcek: { notBefore: new Date('2026-04-01T00:00:00Z') } } },
  askExpired: { overrides: { ask: { notAfter: new Date('2026-02-01T00:00:00Z') } } },
  arkExpired: { overrides: { ark: { notAfter: new Date('2026-02-01T00:00:00Z') } } },
  leafBadSig: { overrides: { vcek: { corruptSignature: true } } },
  askBadSig: { overrides: { ask: { corruptSignature: true } } },
  arkBadSig: { overrides: { ark: { corruptSignature: true } } },
  leafPkcs1: { overrides: { vcek: { signature: { scheme: 'pkcs1' } } } },
  leafSalt32: { overrides: { vcek: { signature: { scheme: 'pss', saltLength: 32 } } } },
  leafP256: { overrides: { vcek: { curve: 'P-256' } } },
  leafCN: { overrides: { vcek: { subject: 'OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices, CN=SEV-VLEK' } } },
  leafIssuerName: { overrides: { vcek: { issuer: 'OU=Engineering, C=US, CN=SEV-Other' } } },
  askNotCa: { overrides: { ask: { ca: false } } },
  askCN: { overrides: { ask: { subject: 'OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices, CN=SEV-Genoa' } } },
  leafSignedByAsvk: { overrides: { vcek: { signedBy: 'asvk' } } },
  tcbMismatch: { overrides: { vcek: { tcb: { ucodeSPL: 200 } } } },
  tcbMissing: { overrides: { vcek: { tcb: { snpSPL: null } } } },
  fmcOnMilan: { overrides: { vcek: { tcb: { fmcSPL: 0 } } } },
  turinFmcMismatch: { product: 'Turin', overrides: { vcek: { tcb: { fmcSPL: 3 } } } },
  hwIdMismatch: { overrides: { vcek: { hwId: new Uint8Array(64).fill(1) } } },
  hwIdMissing: { overrides: { vcek: { hwId: null } } },
  hwIdOctet: { overrides: { vcek: { hwIdAsOctetString: true } } },
  productNameGenoa: { overrides: { vcek: { productName: 'Genoa' } } },
  productNameBogus: { overrides: { vcek: { productName: 'Zen9' } } },
  structVersion: { overrides: { vcek: { structVersion: 1 } } },
  cspMissing: { overrides: { vlek: { cspId: null } } },
};

const chains: Record<string, SnpSimChain> = {};
beforeAll(async () => {
  const names = Object.keys(variants);
  const base = await createSnpSimChain({ now: NOW });
  const keys = snpSimChainKeys(base);
  const built = await Promise.all(names.map((n) => createSnpSimChain({ now: NOW, keys, ...variants[n] })));
  names.forEach((n, i) => (chains[n] = built[i]!));
}, 120_000);

const expectCode = (fn: () => unknown, code: string, reason?: string) =>
  expect(fn).toThrow(expect.objectContaining(reason ? { code, reason } : { code }));

describe('simulator chain: positive', () => {
  it('VCEK, VLEK, Turin and Genoa reports verify, as platform "simulator"', async () => {
    const c = chains.base!;
    const r = verify(await issue(c), vcekCerts(c), c);
    expect(r.platform).toBe('simulator');
    expect(r.product).toBe('Milan');
    const rl = verify(await issue(c, { signingKey: 'VLEK' }), vlekCerts(c), c, { allowedCspIds: [c.cspId] });
    expect(rl.cspId).toBe(c.cspId);
    const t = chains.turin!;
    const rt = verify(await issue(t), vcekCerts(t), t);
    expect(rt.tcb.reported.fmc).toBe(0);
    expect(rt.tcb.reported.bootloader).toBe(1);
    const g = chains.genoa!;
    expect(verify(await issue(g, { version: 3 }), vcekCerts(g), g).product).toBe('Genoa');
  });

  it('report + certificate table verifies with nothing else', async () => {
    const c = chains.base!;
    const table = buildSnpCertTable({ vcek: c.vcek.der, ask: c.ask.der, ark: c.ark.der });
    expect(verify(await issue(c), { certTable: table }, c).signingKey).toBe('VCEK');
    const vt = buildSnpCertTable({ vlek: c.vlek.der, ask: c.asvk.der, ark: c.ark.der });
    expect(verify(await issue(c, { signingKey: 'VLEK' }), { certTable: vt }, c).signingKey).toBe('VLEK');
  });

  it('hwID wrapped in an OCTET STRING is accepted too', async () => {
    const c = chains.hwIdOctet!;
    expect(verify(await issue(c), vcekCerts(c), c).signingKey).toBe('VCEK');
  });

  it('a 4096-bit chain works (AMD uses RSA-4096)', async () => {
    // One 4096-bit key for all three CA certificates: key generation is the slow part.
    const rsa = (await globalThis.crypto.subtle.generateKey(
      { name: 'RSA-PSS', hash: 'SHA-384', modulusLength: 4096, publicExponent: new Uint8Array([1, 0, 1]) },
      true,
      ['sign', 'verify'],
    )) as NonNullable<NonNullable<CreateSnpSimChainOptions['keys']>['ark']>;
    const c = await createSnpSimChain({ now: NOW, keys: { ark: rsa, ask: rsa, asvk: rsa } });
    expect(verify(await issue(c), vcekCerts(c), c).platform).toBe('simulator');
  }, 60_000);
});

describe('simulator chain: trust', () => {
  it('the simulator ARK is not trusted by default', async () => {
    const c = chains.base!;
    const report = await issue(c);
    expectCode(() => verifySevSnpWith(report, vcekCerts(c), { now: NOW, cache: false }, nodeCrypto), 'ERR_SNP_CHAIN_INVALID');
  });

  it('an ARK passed with the evidence adds no trust', async () => {
    const c = chains.base!;
    const report = await issue(c);
    expectCode(
      () => verifySevSnpWith(report, { ...vcekCerts(c), ark: c.ark.der }, { now: NOW, cache: false }, nodeCrypto),
      'ERR_SNP_CHAIN_INVALID',
      'ark_not_trusted',
    );
  });

  it('a simulator intermediate does not chain to AMD\'s ARK even when given with AMD roots', async () => {
    const c = chains.base!;
    expectCode(
      () => verifySevSnpWith(issueSync, { vcek: c.vcek.der, ask: amdRoots().Milan.ask }, { now: NOW, cache: false, simulatorRoots: [c.ark.der] }, nodeCrypto),
      'ERR_SNP_CHAIN_INVALID',
    );
  });

  it('missing leaf', async () => {
    const c = chains.base!;
    expectCode(() => verify(issueSync, { ask: c.ask.der }, c), 'ERR_SNP_CHAIN_INVALID', 'leaf_missing');
  });
});

let issueSync: Uint8Array;
beforeAll(async () => {
  issueSync = await issue(chains.base!);
});

describe('simulator chain: one rule each', () => {
  const cases: [string, string, string, ('vcek' | 'vlek')?][] = [
    ['leafExpired', 'ERR_SNP_CHAIN_INVALID', 'expired'],
    ['leafNotYet', 'ERR_SNP_CHAIN_INVALID', 'not_yet_valid'],
    ['askExpired', 'ERR_SNP_CHAIN_INVALID', 'expired'],
    ['arkExpired', 'ERR_SNP_CHAIN_INVALID', 'expired'],
    ['leafBadSig', 'ERR_SNP_CHAIN_INVALID', 'signature'],
    ['askBadSig', 'ERR_SNP_CHAIN_INVALID', 'signature'],
    ['arkBadSig', 'ERR_SNP_CHAIN_INVALID', 'signature'],
    ['leafPkcs1', 'ERR_SNP_CHAIN_INVALID', 'signature_algorithm'],
    ['leafSalt32', 'ERR_SNP_CHAIN_INVALID', 'signature_algorithm'],
    ['leafP256', 'ERR_SNP_CHAIN_INVALID', 'leaf_key'],
    ['leafCN', 'ERR_SNP_CHAIN_INVALID', 'leaf_name'],
    ['leafIssuerName', 'ERR_SNP_CHAIN_INVALID', 'issuer_name'],
    ['askNotCa', 'ERR_SNP_CHAIN_INVALID', 'not_ca'],
    ['askCN', 'ERR_SNP_CHAIN_INVALID', 'intermediate_name'],
    ['leafSignedByAsvk', 'ERR_SNP_CHAIN_INVALID', 'signature'],
    ['tcbMismatch', 'ERR_SNP_BINDING_INVALID', 'tcb_mismatch'],
    ['tcbMissing', 'ERR_SNP_BINDING_INVALID', 'tcb_missing'],
    ['fmcOnMilan', 'ERR_SNP_BINDING_INVALID', 'tcb_mismatch'],
    ['turinFmcMismatch', 'ERR_SNP_BINDING_INVALID', 'tcb_mismatch'],
    ['hwIdMismatch', 'ERR_SNP_BINDING_INVALID', 'chip_id_mismatch'],
    ['hwIdMissing', 'ERR_SNP_BINDING_INVALID', 'hwid_missing'],
    ['productNameGenoa', 'ERR_SNP_CHAIN_INVALID', 'product_mismatch'],
    ['productNameBogus', 'ERR_SNP_CHAIN_INVALID', 'product_name'],
    ['structVersion', 'ERR_SNP_BINDING_INVALID', 'struct_version'],
    ['cspMissing', 'ERR_SNP_BINDING_INVALID', 'csp_id_missing', 'vlek'],
  ];
  for (const [name, code, reason, kind] of cases) {
    it(`${name} -> ${code}/${reason}`, async () => {
      const c = chains[name]!;
      const report = await issue(c, kind === 'vlek' ? { signingKey: 'VLEK' } : {});
      expectCode(() => verify(report, kind === 'vlek' ? vlekCerts(c) : vcekCerts(c), c), code, reason);
      // The same report shape under the untouched chain verifies, so the override is what broke it.
      const b = chains.base!;
      expect(() => verify(issueSync, vcekCerts(b), b)).not.toThrow();
    });
  }

  it('a VCEK report with an all-zero CHIP_ID is rejected', async () => {
    const c = chains.base!;
    expectCode(() => verify(reportZeroChip, vcekCerts(c), c), 'ERR_SNP_BINDING_INVALID', 'chip_id_masked');
  });

  it('Turin CHIP_ID must be zero after the first 8 bytes', async () => {
    const t = chains.turin!;
    const chip = t.chipId.slice();
    chip[20] = 1;
    const r = await issue(t, { chipId: chip });
    expectCode(() => verify(r, vcekCerts(t), t), 'ERR_SNP_BINDING_INVALID', 'chip_id_mismatch');
  });

  it('the CPUID product must agree with the chain (a Genoa CPUID under a Milan chain)', async () => {
    const c = chains.base!;
    const r = await issue(c, { mutate: (b) => b.set([0x19, 0x11, 1], 0x188) });
    expectCode(() => verify(r, vcekCerts(c), c), 'ERR_SNP_CHAIN_INVALID', 'product_mismatch');
  });

  it('an unknown CPUID with no product option is refused', async () => {
    const c = chains.base!;
    const r = await issue(c, { mutate: (b) => b.set([0x1a, 0x55, 1], 0x188) });
    expectCode(() => verify(r, vcekCerts(c), c), 'ERR_SNP_CHAIN_INVALID', 'product_unknown');
    // Also when the chain is already cached from a good report.
    const cache = new SnpChainCache();
    verify(issueSync, vcekCerts(c), c, { cache });
    expectCode(() => verify(r, vcekCerts(c), c, { cache }), 'ERR_SNP_CHAIN_INVALID', 'product_unknown');
    const genoaCpuid = await issue(c, { mutate: (b) => b.set([0x19, 0x11, 1], 0x188) });
    expectCode(() => verify(genoaCpuid, vcekCerts(c), c, { cache }), 'ERR_SNP_CHAIN_INVALID', 'product_mismatch');
  });

  it('REPORTED_TCB above CURRENT_TCB is refused', async () => {
    const c = chains.base!;
    const r = await issue(c, { currentTcb: { bootloader: 4, tee: 0, snp: 24, microcode: 200 } });
    expectCode(() => verify(r, vcekCerts(c), c), 'ERR_SNP_BINDING_INVALID', 'reported_tcb_above_current');
    const ok = await issue(c, { currentTcb: { bootloader: 5, tee: 0, snp: 24, microcode: 230 } });
    expect(verify(ok, vcekCerts(c), c).tcb.current.microcode).toBe(230);
  });

  it('a VLEK report with only a VCEK is refused', async () => {
    const c = chains.base!;
    const r = await issue(c, { signingKey: 'VLEK' });
    expectCode(() => verify(r, vcekCerts(c), c), 'ERR_SNP_CHAIN_INVALID', 'leaf_missing');
  });
});

let reportZeroChip: Uint8Array;
beforeAll(async () => {
  reportZeroChip = await issue(chains.base!, { chipId: new Uint8Array(64) });
});
