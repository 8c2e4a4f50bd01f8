/** One negative test per path-validation rule, each built with the simulator signer's overrides. */
import 'reflect-metadata';
import { describe, it, expect, beforeAll } from 'vitest';
import * as x509 from '@peculiar/x509';
import { verifyNitro } from '../../attestation/index.js';
import { createNitroSimCa, issueNitroDocument, exportNitroSimCa, importNitroSimCa, type NitroSimCa, type NitroSimCertOverride, type NitroSimLevel } from '../../attestation/sim/nitro.js';
import { BoundedChainCache } from '../../attestation/nitro/verify.js';
import { nobleCrypto } from '../../attestation/crypto/noble.js';
import { attErr, PROD_PCRS } from './helpers.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const KU = x509.KeyUsageFlags;
const doc = { moduleId: 'i-0123456789abcdef0-enc0123456789abcdef', timestamp: NOW, pcrs: PROD_PCRS() };

async function chainFailure(level: NitroSimLevel | 'leaf', o: NitroSimCertOverride, now = NOW) {
  const ca = await createNitroSimCa({ now: NOW, overrides: level === 'leaf' ? {} : { [level]: o } });
  const bytes = await issueNitroDocument(ca, doc, level === 'leaf' ? { leafOverride: o } : {});
  return attErr(() => verifyNitro(bytes, { now, simulatorRoots: [ca.rootDer], cache: false }));
}

describe('simulator chain: the happy path', () => {
  let ca: NitroSimCa;
  beforeAll(async () => {
    ca = await createNitroSimCa({ now: NOW });
  });

  it('verifies only when its root is passed as a simulator root, and says platform simulator', async () => {
    const bytes = await issueNitroDocument(ca, doc);
    expect(bytes[0]).toBe(0x84);
    const r = verifyNitro(bytes, { now: NOW, simulatorRoots: [ca.rootDer] });
    expect(r.platform).toBe('simulator');
    expect(r.chain.map((c) => c.pathLen)).toEqual([undefined, 2, 1, 0, undefined]);
    expect(attErr(() => verifyNitro(bytes, { now: NOW })).reason).toBe('untrusted_root');
  });

  it('tag 18 and indefinite-length payload maps verify too', async () => {
    for (const o of [{ tagged: true }, { indefiniteMap: true }, { tagged: true, indefiniteMap: true }]) {
      const bytes = await issueNitroDocument(ca, doc, o);
      expect(verifyNitro(bytes, { now: NOW, simulatorRoots: [ca.rootDer], crypto: nobleCrypto }).moduleId).toBe(doc.moduleId);
    }
  });

  it('reuses the leaf for documents within a couple of hours, then rolls it', async () => {
    const a = verifyNitro(await issueNitroDocument(ca, doc), { now: NOW, simulatorRoots: [ca.rootDer] });
    const later = new Date(NOW.getTime() + 3_600_000);
    const b = verifyNitro(await issueNitroDocument(ca, { ...doc, timestamp: later }), { now: later, simulatorRoots: [ca.rootDer] });
    expect(b.certificate.serial).toBe(a.certificate.serial);
    const much = new Date(NOW.getTime() + 2.5 * 3_600_000);
    const c = verifyNitro(await issueNitroDocument(ca, { ...doc, timestamp: much }), { now: much, simulatorRoots: [ca.rootDer] });
    expect(c.certificate.serial).not.toBe(a.certificate.serial);
    expect(c.certificate.notAfter.getTime() - c.certificate.notBefore.getTime()).toBe(3 * 3_600_000 + 3_000);
  });

  it('survives export/import as JSON', async () => {
    const json = JSON.parse(JSON.stringify(await exportNitroSimCa(ca)));
    const ca2 = await importNitroSimCa(json);
    const bytes = await issueNitroDocument(ca2, doc);
    expect(verifyNitro(bytes, { now: NOW, simulatorRoots: [ca.rootDer] }).platform).toBe('simulator');
  });

  it('a corrupt exported CA is ERR_SIMULATOR_STATE', async () => {
    const json = JSON.parse(JSON.stringify(await exportNitroSimCa(ca)));
    json.certs.zonal.pkcs8 = btoa('not a key');
    await expect(importNitroSimCa(json)).rejects.toMatchObject({ code: 'ERR_SIMULATOR_STATE' });
    await expect(importNitroSimCa({ format: 'x' })).rejects.toMatchObject({ code: 'ERR_SIMULATOR_STATE' });
    await expect(importNitroSimCa(null)).rejects.toMatchObject({ code: 'ERR_SIMULATOR_STATE' });
  });

  it('a Buffer input yields plain copies the caller cannot change afterwards', async () => {
    const buf = Buffer.from(await issueNitroDocument(ca, { ...doc, nonce: Uint8Array.of(7, 7) }));
    const r = verifyNitro(buf, { now: NOW, simulatorRoots: [ca.rootDer] });
    buf.fill(0);
    expect(r.nonce).toEqual(Uint8Array.of(7, 7));
    expect(Buffer.isBuffer(r.nonce)).toBe(false);
    expect(r.pcrs.get(0)![0]).toBe(1);
  });

  it('a warm second document costs one signature check', async () => {
    const cache = new BoundedChainCache();
    let n = 0;
    const crypto = { ...nobleCrypto, verifyEcdsaP384: (k: Uint8Array, m: Uint8Array, s: Uint8Array) => (n++, nobleCrypto.verifyEcdsaP384(k, m, s)) };
    verifyNitro(await issueNitroDocument(ca, doc), { now: NOW, simulatorRoots: [ca.rootDer], cache, crypto });
    expect(n).toBe(5);
    n = 0;
    verifyNitro(await issueNitroDocument(ca, { ...doc, nonce: new Uint8Array([9]) }), { now: NOW, simulatorRoots: [ca.rootDer], cache, crypto });
    expect(n).toBe(1);
  });

  it('a leaf not signed by the instance key is not rescued by a cache entry for another issuer', async () => {
    const cache = new BoundedChainCache();
    verifyNitro(await issueNitroDocument(ca, doc), { now: NOW, simulatorRoots: [ca.rootDer], cache });
    const other = await createNitroSimCa({ now: NOW });
    // Same leaf bytes under another CA's bundle: cache key includes issuer and anchor.
    const bytes = await issueNitroDocument(other, doc);
    const e = attErr(() => verifyNitro(bytes, { now: NOW, simulatorRoots: [ca.rootDer], cache }));
    expect(e.reason).toBe('untrusted_root');
  });
});

describe('simulator chain: one negative test per rule', () => {
  const cases: [string, NitroSimLevel | 'leaf', NitroSimCertOverride, string][] = [
    ['regional not yet valid', 'regional', { notBefore: new Date(NOW.getTime() + 1000) }, 'not_yet_valid'],
    ['zonal expired', 'zonal', { notAfter: new Date(NOW.getTime() - 1000) }, 'expired'],
    ['root expired', 'root', { notAfter: new Date(NOW.getTime() - 1000) }, 'expired'],
    ['leaf expired', 'leaf', { notBefore: new Date(NOW.getTime() - 7200_000), notAfter: new Date(NOW.getTime() - 1000) }, 'expired'],
    ['intermediate without basicConstraints', 'zonal', { ca: null }, 'basic_constraints'],
    ['intermediate with cA false', 'instance', { ca: false }, 'basic_constraints'],
    ['root with cA false', 'root', { ca: false }, 'basic_constraints'],
    ['regional pathLen 1 with 2 intermediates below', 'regional', { pathLen: 1 }, 'path_len'],
    ['zonal pathLen 0 with 1 intermediate below', 'zonal', { pathLen: 0 }, 'path_len'],
    ['root pathLen 2 with 3 intermediates below', 'root', { pathLen: 2 }, 'path_len'],
    ['CA without keyCertSign', 'instance', { keyUsage: KU.digitalSignature }, 'key_usage'],
    ['CA without keyUsage', 'regional', { keyUsage: null }, 'key_usage'],
    ['leaf without digitalSignature', 'leaf', { keyUsage: KU.nonRepudiation }, 'key_usage'],
    ['leaf without keyUsage', 'leaf', { keyUsage: null }, 'key_usage'],
    ['leaf is a CA', 'leaf', { ca: true, pathLen: 0 }, 'leaf_is_ca'],
    ['zonal signed with SHA-256', 'zonal', { signatureHash: 'SHA-256' }, 'signature_algorithm'],
    ['leaf signed with SHA-512', 'leaf', { signatureHash: 'SHA-512' }, 'signature_algorithm'],
    ['instance with a P-256 key', 'instance', { keyAlgorithm: { name: 'ECDSA', namedCurve: 'P-256' } }, 'public_key'],
    ['root with a P-256 key', 'root', { keyAlgorithm: { name: 'ECDSA', namedCurve: 'P-256' } }, 'public_key'],
    ['issuer name does not chain', 'zonal', { issuer: 'C=US, O=Someone Else, CN=not-the-regional' }, 'name_chaining'],
    ['corrupted certificate signature', 'instance', { corruptSignature: true }, 'cert_signature'],
    ['corrupted leaf signature', 'leaf', { corruptSignature: true }, 'cert_signature'],
  ];
  it.each(cases)('%s', async (_t, level, o, reason) => {
    const e = await chainFailure(level, o);
    expect(e.code).toBe('ERR_NITRO_CHAIN_INVALID');
    expect(e.reason).toBe(reason);
  });

  it('a leaf with a P-256 key cannot produce a 96-byte ES384 signature: rejected at parse', async () => {
    const e = await chainFailure('leaf', { keyAlgorithm: { name: 'ECDSA', namedCurve: 'P-256' } });
    expect(e.code).toBe('ERR_NITRO_DOC_INVALID');
    expect(e.reason).toBe('signature_length');
  });

  it('validity bounds are inclusive: valid exactly at notBefore and at notAfter', async () => {
    const ca = await createNitroSimCa({ now: NOW, overrides: { instance: { notBefore: NOW, notAfter: new Date(NOW.getTime() + 10_000) } } });
    const bytes = await issueNitroDocument(ca, doc);
    expect(verifyNitro(bytes, { now: NOW, simulatorRoots: [ca.rootDer], cache: false }).moduleId).toBe(doc.moduleId);
    expect(verifyNitro(bytes, { now: new Date(NOW.getTime() + 10_000), simulatorRoots: [ca.rootDer], cache: false }).moduleId).toBe(doc.moduleId);
    expect(attErr(() => verifyNitro(bytes, { now: new Date(NOW.getTime() - 1), simulatorRoots: [ca.rootDer], cache: false })).reason).toBe('not_yet_valid');
    expect(attErr(() => verifyNitro(bytes, { now: new Date(NOW.getTime() + 10_001), simulatorRoots: [ca.rootDer], cache: false })).reason).toBe('expired');
  });

  it('a cabundle root that only arrives in the document is never trusted', async () => {
    const ca = await createNitroSimCa({ now: NOW });
    const bytes = await issueNitroDocument(ca, doc);
    const e = attErr(() => verifyNitro(bytes, { now: NOW, cache: false }));
    expect(e.reason).toBe('untrusted_root');
  });
});

describe('BoundedChainCache', () => {
  const entry = (expires: number) => ({ facts: {} as never, expires });
  it('is bounded (least recently used goes first) and forgets entries past their path expiry', () => {
    const c = new BoundedChainCache(3);
    c.set('a', entry(100));
    c.set('b', entry(100));
    c.set('c', entry(100));
    expect(c.get('a', 0)).toBeDefined(); // a is now the most recent
    c.set('d', entry(100));
    expect(c.size).toBe(3);
    expect(c.get('b', 0)).toBeUndefined();
    expect(c.get('a', 100)).toBeDefined(); // inclusive, like notAfter
    expect(c.get('a', 101)).toBeUndefined();
    expect(c.size).toBe(2);
    c.clear();
    expect(c.size).toBe(0);
    expect(() => new BoundedChainCache(0)).toThrow(RangeError);
  });
});
