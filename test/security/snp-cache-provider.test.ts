// The SEV-SNP chain cache (and its verified-anchor set) was keyed by the crypto provider's `name`.
// A chain "verified" by another provider object with the same name, say a test double that accepts
// every signature, was then a cache hit for the real provider, which never checked it: a VCEK with a
// broken signature verified. Entries are now tied to the provider object.
import { beforeAll, describe, expect, it } from 'vitest';
import { createSnpSimChain, issueSnpReport, type SnpSimChain } from '../../attestation/sim/snp.js';
import { SnpChainCache, verifySevSnpWith } from '../../attestation/sevsnp/verify.js';
import { nodeCrypto } from '../../attestation/crypto/node.js';
import type { CryptoProvider } from '../../attestation/crypto/provider.js';
import { AttestationError } from '../../attestation/errors.js';

const NOW = new Date('2026-03-01T00:00:00Z');
let chain: SnpSimChain;
let report: Uint8Array;

beforeAll(async () => {
  chain = await createSnpSimChain({ now: NOW, tcb: { bootloader: 4, tee: 0, snp: 24, microcode: 219 } });
  report = await issueSnpReport(chain, { measurement: new Uint8Array(48).fill(7), reportData: new Uint8Array(64).fill(9) });
}, 60_000);

describe('SEV-SNP chain cache and providers', () => {
  it('a chain accepted by a same-named provider object is re-verified by the real one', () => {
    const badVcek = chain.vcek.der.slice();
    badVcek[badVcek.length - 1]! ^= 0x01; // inside the signature: the certificate still parses
    const certs = { vcek: badVcek, ask: chain.ask.der };
    const opts = { now: NOW, roots: [], simulatorRoots: [chain.ark.der], cache: new SnpChainCache() };
    const acceptsAll: CryptoProvider = { ...nodeCrypto, verifyRsaPssSha384: () => true };
    expect(acceptsAll.name).toBe(nodeCrypto.name);

    expect(verifySevSnpWith(report, certs, opts, acceptsAll).platform).toBe('simulator');
    let err: unknown;
    try {
      verifySevSnpWith(report, certs, opts, nodeCrypto);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AttestationError);
    expect((err as AttestationError).code).toBe('ERR_SNP_CHAIN_INVALID');
  });

  it('the same provider object still hits its own cache entries', () => {
    const cache = new SnpChainCache();
    const opts = { now: NOW, roots: [], simulatorRoots: [chain.ark.der], cache };
    verifySevSnpWith(report, { vcek: chain.vcek.der, ask: chain.ask.der }, opts, nodeCrypto);
    expect(cache.size).toBe(1);
    verifySevSnpWith(report, { vcek: chain.vcek.der, ask: chain.ask.der }, opts, nodeCrypto);
    expect(cache.size).toBe(1);
  });
});
