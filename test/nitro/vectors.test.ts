import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { nodeCrypto } from '../../attestation/crypto/node.js';
import { nobleCrypto } from '../../attestation/crypto/noble.js';
import { verifyNitro } from '../../attestation/index.js';
import { verifyNitro as verifyNitroPure } from '../../attestation/pure.js';
import { awsNitroRootG1, AWS_NITRO_ROOT_G1_SHA256 } from '../../attestation/nitro/roots.js';
import { BoundedChainCache } from '../../attestation/nitro/verify.js';
import { toHex } from '../../attestation/bytes.js';
import { VEC, index, loadDoc, sidecar, attErr } from './helpers.js';

const real = index.attestation_documents.filter((e) => e.verifies);

describe('pinned AWS Nitro root G1', () => {
  it('the PEM file and the TS constant are the same certificate, with AWS\'s published fingerprint', () => {
    const pem = readFileSync(new URL('../../attestation/nitro/roots/aws-nitro-enclaves-root-g1.pem', import.meta.url), 'utf8');
    const der = new Uint8Array(Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, ''), 'base64'));
    expect(toHex(awsNitroRootG1())).toBe(toHex(der));
    const published = JSON.parse(readFileSync(VEC + 'aws-nitro-root-g1.json', 'utf8')).sha256_fingerprint_der;
    expect(createHash('sha256').update(der).digest('hex')).toBe(published);
    expect(AWS_NITRO_ROOT_G1_SHA256).toBe(published);
    expect(toHex(nodeCrypto.sha256(awsNitroRootG1()))).toBe('641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b');
  });

  it('every real document carries the pinned root as cabundle[0]', () => {
    expect(real.length).toBeGreaterThanOrEqual(10);
  });
});

describe.each([
  ['node', nodeCrypto, verifyNitro],
  ['noble', nobleCrypto, verifyNitroPure],
] as const)('real documents on the %s backend', (_name, crypto, verify) => {
  it.each(real.map((e) => [e.file, e] as const))('%s verifies at its own time with the sidecar facts', (file, e) => {
    const side = sidecar(file);
    const at = new Date(side.expected?.verify_at ?? e.timestamp!);
    const r = verify(loadDoc(file), { now: at, allowDebug: true, cache: false, crypto });
    expect(r.format).toBe('nitro');
    expect(r.platform).toBe('nitro');
    expect(r.moduleId).toBe(side.decoded.module_id);
    expect(r.timestamp.getTime()).toBe(side.decoded.timestamp_ms);
    expect(r.validUntil.toISOString().replace('.000', '')).toBe(e.valid_until);
    expect(r.pcrs.size).toBe(side.decoded.pcr_count);
    expect(toHex(r.pcrs.get(0)!)).toBe(side.decoded.pcr0);
    expect(r.chain).toHaveLength(5);
    expect(r.chain[0]!.subject).toBe('C=US, O=Amazon, OU=AWS, CN=aws.nitro-enclaves');
    expect(r.certificate).toBe(r.chain[4]);
    expect(r.certificate.isCA).toBe(false);
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.chain)).toBe(true);
    expect(() => (r.pcrs as Map<number, Uint8Array>).set(0, new Uint8Array(48))).toThrow(TypeError);
    // Debug documents are refused unless allowDebug.
    if (side.decoded.debug_mode_zero_pcrs_0_1_2) {
      const err = attErr(() => verify(loadDoc(file), { now: at, crypto, cache: false }));
      expect(err.code).toBe('ERR_ATTESTATION_POLICY');
    } else {
      expect(verify(loadDoc(file), { now: at, crypto, cache: false }).moduleId).toBe(r.moduleId);
    }
  });

  it.each(real.map((e) => [e.file, e] as const))('%s is rejected just after its validUntil and before its leaf starts', (file, e) => {
    const after = new Date(Date.parse(e.valid_until!) + 1000);
    const err = attErr(() => verify(loadDoc(file), { now: after, allowDebug: true, crypto, cache: false }));
    expect(err.code).toBe('ERR_NITRO_CHAIN_INVALID');
    expect(err.reason).toBe('expired');
    // Inclusive upper bound (RFC 5280): exactly at notAfter still verifies.
    expect(verify(loadDoc(file), { now: new Date(Date.parse(e.valid_until!)), allowDebug: true, crypto, cache: false }).moduleId).toBeTruthy();
  });

  it('eternis-invalid-1 (chain fine, COSE signature bad) is rejected with ERR_NITRO_SIGNATURE_INVALID', () => {
    const err = attErr(() => verify(loadDoc('eternis-invalid-1.cose'), { now: new Date('2024-07-23T21:29:40Z'), allowDebug: true, crypto, cache: false }));
    expect(err.code).toBe('ERR_NITRO_SIGNATURE_INVALID');
    expect(err.reason).toBe('cose_signature');
  });

  it('blocky-selfsigned-1 (unprotected=null, cabundle=null) is rejected with ERR_NITRO_DOC_INVALID', () => {
    const err = attErr(() => verify(loadDoc('blocky-selfsigned-1.cose'), { now: new Date('2024-09-07T15:00:00Z'), allowDebug: true, crypto }));
    expect(err.code).toBe('ERR_NITRO_DOC_INVALID');
  });

  it('a real document is untrusted when the caller pins another root, and never trusted via simulatorRoots defaults', () => {
    const doc = loadDoc('blocky-1.cose');
    const err = attErr(() => verify(doc, { now: new Date('2024-09-07T15:00:00Z'), roots: [new Uint8Array([1, 2, 3])], crypto }));
    expect(err.code).toBe('ERR_NITRO_CHAIN_INVALID');
    expect(err.reason).toBe('untrusted_root');
    // Passed as a simulator root, the AWS root makes the result say so.
    const r = verify(doc, { now: new Date('2024-09-07T15:00:00Z'), roots: [], simulatorRoots: [awsNitroRootG1()], crypto, cache: false });
    expect(r.platform).toBe('simulator');
  });

  it('the second document from the same enclave hits the cache and still checks time every call', () => {
    const cache = new BoundedChainCache(16);
    const doc = loadDoc('eternis-1.cose');
    const at = new Date('2024-09-09T19:49:12Z');
    verify(doc, { now: at, allowDebug: true, crypto, cache });
    expect(cache.size).toBe(5);
    let calls = 0;
    const counting = { ...crypto, name: crypto.name, verifyEcdsaP384: (k: Uint8Array, m: Uint8Array, s: Uint8Array) => (calls++, crypto.verifyEcdsaP384(k, m, s)) };
    verify(doc, { now: at, allowDebug: true, crypto: counting, cache });
    expect(calls).toBe(1);
    const err = attErr(() => verify(doc, { now: new Date('2024-09-10T01:00:00Z'), allowDebug: true, crypto: counting, cache }));
    expect(err.reason).toBe('expired');
    // eternis-2 shares the instance's regional/zonal CAs? It has its own, but the root entry is shared.
    verify(loadDoc('eternis-2.cose'), { now: new Date('2024-09-17T20:47:10Z'), allowDebug: true, crypto, cache });
    expect(cache.size).toBeLessThanOrEqual(10);
  });
});
