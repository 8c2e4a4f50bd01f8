/** The SEV-SNP simulator signer: AMD-shaped certificates, report layout, JSON state round trip. */
import { describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { createSnpSimChain, exportSnpSimChain, importSnpSimChain, issueSnpReport } from '../../attestation/sim/snp.js';
import { parseAmdCert } from '../../attestation/sevsnp/cert.js';
import { parseSnpReport } from '../../attestation/sevsnp/abi.js';
import { verifySevSnp } from '../../attestation/sevsnp/node.js';
import { toHex } from '../../attestation/bytes.js';

const NOW = new Date('2026-03-01T00:00:00Z');

describe('SEV-SNP simulator signer', () => {
  it('issues AMD-profile certificates and firmware-layout reports; exports and re-imports as JSON', async () => {
    const chain = await createSnpSimChain({ now: NOW, product: 'Turin' });
    const vcek = parseAmdCert(chain.vcek.der);
    expect(vcek.serialHex).toBe('00');
    expect(vcek.pssSha384).toBe(true);
    expect(vcek.amd).toMatchObject({ structVersion: 1, productName: 'Turin', fmcSPL: 0, blSPL: 1, snpSPL: 2, ucodeSPL: 71 });
    expect(vcek.amd.hwID!.length).toBe(8);
    expect(parseAmdCert(chain.vlek.der).amd.cspID).toBe(chain.cspId);
    // node:crypto agrees with our own chain checks.
    const ark = new X509Certificate(chain.ark.der);
    expect(new X509Certificate(chain.ask.der).verify(ark.publicKey)).toBe(true);

    const report = await issueSnpReport(chain, { measurement: new Uint8Array(48).fill(1), reportData: new Uint8Array(64).fill(2), vmpl: 1 });
    const p = parseSnpReport(report);
    expect(p.version).toBe(5);
    expect(p.cpuid).toEqual({ family: 0x1a, model: 0x02, stepping: 1 });
    expect(toHex(p.chipId.subarray(8))).toBe('00'.repeat(56));

    const json = JSON.parse(JSON.stringify(await exportSnpSimChain(chain)));
    const again = await importSnpSimChain(json);
    const r2 = await issueSnpReport(again, { measurement: new Uint8Array(48), reportData: new Uint8Array(64) });
    const v = verifySevSnp(r2, { vcek: again.vcek.der, ask: again.ask.der }, { now: NOW, roots: [], simulatorRoots: [chain.ark.der], cache: false });
    expect(v.platform).toBe('simulator');
    expect(v.product).toBe('Turin');
  });

  it('rejects malformed state with ERR_SIMULATOR_STATE', async () => {
    for (const bad of [null, 5, {}, { format: 'enclavekit-snp-sim-chain', version: 2 }, { format: 'enclavekit-snp-sim-chain', version: 1, product: 'Zen' }])
      await expect(importSnpSimChain(bad)).rejects.toMatchObject({ code: 'ERR_SIMULATOR_STATE' });
    const chain = await createSnpSimChain({ now: NOW });
    const json = await exportSnpSimChain(chain);
    await expect(importSnpSimChain({ ...json, keys: { ...json.keys, vcek: 'not base64!' } })).rejects.toMatchObject({ code: 'ERR_SIMULATOR_STATE' });
    await expect(importSnpSimChain({ ...json, certs: { ...json.certs, ark: btoa('garbage') } })).rejects.toMatchObject({ code: 'ERR_SIMULATOR_STATE' });
  });
});
