// The owner's seal over the manifest (privacy.md 1) and the enclave's seal over a dataset's privacy
// ledger (privacy.md 3), on real sealed manifests from encryptDataset.
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  deriveSealKey, encodeCanonical, keyEncryptionContext, manifestBody, manifestBodyBytes, openLedger, parseManifest, sealDigest, sealLedger, sealManifest,
  validateManifest, verifyManifestSeal, type KeyManifest, type ManifestBody,
} from '../../enclave/protocol/index.js';
import { TEST_KEY_ARN, encryptedCustomers, hex, openPolicy, type EncryptedDataset } from './fixtures.js';
import { expectCode } from './helpers.js';

const key = (fill: number) => new Uint8Array(32).fill(fill);
const sealKeysOf = (keys: ReadonlyMap<string, Uint8Array>) => new Map([...keys].map(([r, k]) => [r, deriveSealKey(k)]));
const edit = (m: KeyManifest, f: (m: any) => void): KeyManifest => {
  const c = structuredClone(m);
  f(c);
  return c;
};
const expectSealRefused = (m: KeyManifest, keys: ReadonlyMap<string, Uint8Array>, what: string) => {
  const e = expectCode(() => verifyManifestSeal(m, keys), 'ERR_SEAL_INVALID', 'seal');
  expect(e.message, what).not.toContain('k0');
};

let one: EncryptedDataset;
let multi: EncryptedDataset;
beforeAll(async () => {
  one = await encryptedCustomers(30, { policy: openPolicy() });
  multi = await encryptedCustomers(40, { rotateAfter: 70 });
});

describe('manifest seal', () => {
  it('encryptDataset seals under every data key; verification returns the seal digest', () => {
    for (const d of [one, multi]) {
      const refs = Object.keys(d.manifest.keys);
      expect(Object.keys(d.manifest.seal)).toEqual(refs);
      for (const r of refs) {
        expect(d.manifest.seal[r]).toMatch(/^[0-9a-f]{96}$/);
        expect(d.manifest.keys[r]!.keyId).toBe(TEST_KEY_ARN);
        expect(d.manifest.keys[r]!.encryptionContext).toEqual(keyEncryptionContext(d.manifest.datasetId, r));
      }
      const digest = verifyManifestSeal(d.manifest, d.keys());
      expect(digest).toHaveLength(48);
      expect(hex(digest)).toBe(hex(sealDigest(manifestBody(d.manifest))));
      expect(hex(digest)).toBe(createHash('sha384').update(manifestBodyBytes(manifestBody(d.manifest))).digest('hex'));
      expect(hex(manifestBodyBytes(manifestBody(d.manifest)))).toBe(hex(encodeCanonical(manifestBody(d.manifest))));
    }
    expect(Object.keys(multi.manifest.keys).length).toBeGreaterThanOrEqual(3);
    expect(one.manifest.policy).toEqual(openPolicy());
    expect(multi.manifest.policy).toBeNull();
    // Each key's entry is its own MAC: the entries differ.
    expect(new Set(Object.values(multi.manifest.seal)).size).toBe(Object.keys(multi.manifest.keys).length);
  });

  it('survives the JSON file: any key order and whitespace, same seal digest', () => {
    const reorder = (v: unknown): unknown =>
      v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reorder(x)])) : v;
    const text = JSON.stringify(reorder(one.manifest), null, 3);
    const parsed = parseManifest(text);
    expect(hex(verifyManifestSeal(parsed, one.keys()))).toBe(hex(one.sealDigest));
    expect(hex(verifyManifestSeal(parseManifest(new TextEncoder().encode(JSON.stringify(one.manifest))), one.keys()))).toBe(hex(one.sealDigest));
  });

  it('refuses an edited body: every field the seal covers', () => {
    const m = one.manifest;
    const otherPolicy = openPolicy({ minGroupSize: 2 });
    const edits: [string, (m: any) => void][] = [
      ['records + 1', (x) => { x.records += 1; }],
      ['records - 1', (x) => { x.records -= 1; }],
      ['digest', (x) => { x.digest = x.digest.slice(0, -1) + (x.digest.endsWith('0') ? '1' : '0'); }],
      ['policy dropped', (x) => { x.policy = null; }],
      ['policy loosened', (x) => { x.policy = otherPolicy; }],
      ['policy extrema', (x) => { x.policy.exactExtrema = false; }],
      ['policy dp', (x) => { x.policy.dp.budget = 99; }],
      ['schema type', (x) => { x.schema.region = 'mixed'; }],
      ['schema field added', (x) => { x.schema.extra = 'string'; }],
      ['schema field removed', (x) => { delete x.schema.region; }],
      ['a field no longer encrypted', (x) => { x.fields = x.fields.slice(1); }],
      ['fields reordered', (x) => { x.fields = [...x.fields].reverse(); }],
      ['id field', (x) => { x.idField = 'email2'; }],
      ['key ARN', (x) => { x.keys.k0.keyId = 'arn:aws:kms:us-east-1:444455556666:key/host-key'; }],
      ['key blob', (x) => { x.keys.k0.ciphertextBlob = Buffer.from('blob:k1').toString('base64'); }],
      ['dataset id', (x) => { x.datasetId = 'demo-2'; x.keys.k0.encryptionContext = keyEncryptionContext('demo-2', 'k0'); }],
      ['version', (x) => { x.version = 3; }],
    ];
    for (const [what, f] of edits) expectSealRefused(edit(m, f), one.keys(), what);
  });

  it('refuses a missing seal entry, a seal entry moved to another key and a malformed entry', () => {
    const m = multi.manifest;
    expectSealRefused(edit(m, (x) => { delete x.seal.k1; }), multi.keys(), 'missing');
    expectSealRefused(edit(m, (x) => { x.seal.k1 = x.seal.k0; }), multi.keys(), 'moved');
    expectSealRefused(edit(m, (x) => { x.seal.k0 = x.seal.k0.slice(0, 94); }), multi.keys(), 'short');
    expectSealRefused(edit(m, (x) => { x.seal.k0 = 'zz'.repeat(48); }), multi.keys(), 'not hex');
    // The last hex digit changed to another one (always a different MAC byte).
    expectSealRefused(edit(m, (x) => { x.seal.k0 = x.seal.k0.slice(0, -1) + (x.seal.k0.endsWith('0') ? '1' : '0'); }), multi.keys(), 'edited');
    expectSealRefused(edit(m, (x) => { x.seal = {}; }), multi.keys(), 'no seal');
    expectSealRefused(edit(m, (x) => { x.keys = {}; x.seal = {}; }), multi.keys(), 'no keys');
    // What the worker parses first: the manifest itself refuses these shapes.
    expectCode(() => validateManifest(edit(m, (x) => { delete x.seal.k1; })), 'ERR_MANIFEST_INVALID', '.seal.k1');
    expectCode(() => validateManifest(edit(m, (x) => { x.seal.k0 = x.seal.k0.toUpperCase(); })), 'ERR_MANIFEST_INVALID', '.seal.k0');
  });

  it('refuses an extra seal entry (a key that is not in the body) when the manifest is parsed', () => {
    const m = edit(one.manifest, (x) => { x.seal.k9 = x.seal.k0; });
    expectCode(() => validateManifest(m), 'ERR_MANIFEST_INVALID', '.seal.k9');
    expectCode(() => parseManifest(JSON.stringify(m)), 'ERR_MANIFEST_INVALID', '.seal.k9');
  });

  it('refuses the wrong key, a missing key and a key of the wrong length', () => {
    expectSealRefused(one.manifest, new Map([['k0', key(1)]]), 'wrong key');
    expectSealRefused(one.manifest, new Map(), 'no key');
    expectSealRefused(one.manifest, new Map([['k0', one.keys().get('k0')!.subarray(0, 16)]]), 'short key');
    expectSealRefused(one.manifest, new Map([['k1', one.keys().get('k0')!]]), 'key under another reference');
    const partial = multi.keys();
    partial.delete('k2');
    expectSealRefused(multi.manifest, partial, 'one of several keys missing');
    const swapped = multi.keys();
    const [a, b] = [swapped.get('k0')!, swapped.get('k1')!];
    swapped.set('k0', b);
    swapped.set('k1', a);
    expectSealRefused(multi.manifest, swapped, 'keys swapped');
    const oneWrong = multi.keys();
    oneWrong.set('k1', key(7));
    expectSealRefused(multi.manifest, oneWrong, 'one of several keys wrong');
  });

  it('refuses a seal made by a different key, both ways: a host-minted key vouches for nothing', () => {
    const body = manifestBody(one.manifest);
    const hostKey = key(0x42);
    const hostSealed = sealManifest(body, new Map([['k0', deriveSealKey(hostKey)]]));
    expect(hostSealed.seal.k0).not.toBe(one.manifest.seal.k0);
    // The owner's key did not seal it...
    expectSealRefused(hostSealed, one.keys(), 'host seal, owner key');
    // ...and the host's key never sealed the owner's.
    expectSealRefused(one.manifest, new Map([['k0', hostKey]]), 'owner seal, host key');
    // A host that edits the body and re-seals it with its own key still fails under the owner's key.
    const more = sealManifest({ ...body, records: body.records + 5 }, new Map([['k0', deriveSealKey(hostKey)]]));
    expect(hex(verifyManifestSeal(more, new Map([['k0', hostKey]])))).not.toBe(hex(one.sealDigest));
    expectSealRefused(more, one.keys(), 'host re-seal');
    // A host key added beside the owner's: the owner's key never sealed a body naming it.
    const hostRef = 'k9';
    const withHostKey: ManifestBody = {
      ...body,
      keys: { ...body.keys, [hostRef]: { keyId: 'arn:aws:kms:us-east-1:444455556666:key/host', ciphertextBlob: 'AAAA', encryptionContext: keyEncryptionContext(body.datasetId, hostRef) } },
    };
    const ownerKeys = one.keys();
    const forged = sealManifest(withHostKey, new Map([['k0', deriveSealKey(key(0x43))], [hostRef, deriveSealKey(hostKey)]]));
    forged.seal.k0 = one.manifest.seal.k0!; // the owner's genuine MAC, over the other body
    expectSealRefused(validateManifest(forged), new Map([...ownerKeys, [hostRef, hostKey]]), 'host key added');
  });

  it('sealManifest needs a seal key for every key reference', () => {
    const body = manifestBody(multi.manifest);
    const sk = sealKeysOf(multi.keys());
    const round = sealManifest(body, sk);
    expect(round.seal).toEqual(multi.manifest.seal);
    sk.delete('k1');
    expect(() => sealManifest(body, sk)).toThrow(RangeError);
  });

  it('deriveSealKey: 48 bytes, deterministic, one per data key, never the data key', () => {
    const a = deriveSealKey(key(1));
    expect(a).toHaveLength(48);
    expect(hex(deriveSealKey(key(1)))).toBe(hex(a));
    expect(hex(deriveSealKey(key(2)))).not.toBe(hex(a));
    expect(hex(a).includes(hex(key(1)))).toBe(false);
    for (const bad of [new Uint8Array(16), new Uint8Array(33), 'x' as unknown as Uint8Array]) expect(() => deriveSealKey(bad)).toThrow(RangeError);
  });

  it('property: a seal verifies only under the keys that made it, over the body it was made for', () => {
    const body = manifestBody(one.manifest);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(1000), (k1, k2, records) => {
        const m = sealManifest({ ...body, records }, new Map([['k0', deriveSealKey(k1)]]));
        expect(hex(verifyManifestSeal(m, new Map([['k0', k1]])))).toBe(hex(sealDigest({ ...body, records })));
        if (hex(k1) !== hex(k2)) expectCode(() => verifyManifestSeal(m, new Map([['k0', k2]])), 'ERR_SEAL_INVALID', 'seal');
        expectCode(() => verifyManifestSeal({ ...m, records: records + 1 }, new Map([['k0', k1]])), 'ERR_SEAL_INVALID', 'seal');
      }),
      { numRuns: 100 },
    );
  });
});

describe('ledger seal', () => {
  const fixed = (n: number) => new Uint8Array(n).fill(9);
  const state = (d: EncryptedDataset, over: Partial<{ dataset: string; generation: number; spent: number }> = {}) => ({ dataset: hex(d.sealDigest), generation: 3, spent: 1.25, ...over });

  it('round-trips; fresh IVs make every blob different; key order does not matter', () => {
    const blob = sealLedger(state(multi), multi.keys(), multi.sealDigest);
    expect(blob.length).toBeGreaterThanOrEqual(29);
    expect(openLedger(blob, multi.keys(), multi.sealDigest)).toEqual(state(multi));
    expect(hex(sealLedger(state(multi), multi.keys(), multi.sealDigest))).not.toBe(hex(blob));
    expect(hex(sealLedger(state(multi), multi.keys(), multi.sealDigest, fixed))).toBe(hex(sealLedger(state(multi), multi.keys(), multi.sealDigest, fixed)));
    const reversed = new Map([...multi.keys()].reverse());
    expect(openLedger(blob, reversed, multi.sealDigest)).toEqual(state(multi));
    expect(openLedger(sealLedger(state(one, { generation: 0, spent: 0 }), one.keys(), one.sealDigest), one.keys(), one.sealDigest)).toEqual(state(one, { generation: 0, spent: 0 }));
  });

  it('refuses any tampered byte, truncation and out-of-range sizes', () => {
    const blob = sealLedger(state(one), one.keys(), one.sealDigest);
    for (let i = 0; i < blob.length; i++) {
      const t = blob.slice();
      t[i]! ^= 0x01;
      expectCode(() => openLedger(t, one.keys(), one.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
    }
    for (const b of [blob.subarray(0, blob.length - 1), blob.subarray(1), new Uint8Array(0), new Uint8Array(28), new Uint8Array(4097), new Uint8Array(64)])
      expectCode(() => openLedger(b, one.keys(), one.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
    expectCode(() => openLedger(Array.from(blob) as unknown as Uint8Array, one.keys(), one.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
    const longer = new Uint8Array(blob.length + 1);
    longer.set(blob);
    expectCode(() => openLedger(longer, one.keys(), one.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
  });

  it('refuses a ledger of another dataset, under other keys, or naming another seal', () => {
    const blob = sealLedger(state(one), one.keys(), one.sealDigest);
    // Another dataset's keys and seal.
    expectCode(() => openLedger(blob, multi.keys(), multi.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
    // The same keys, another seal digest (another manifest over the same keys).
    expectCode(() => openLedger(blob, one.keys(), multi.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
    // The same seal, other keys; one key missing; one extra key.
    expectCode(() => openLedger(blob, new Map([['k0', key(3)]]), one.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
    const mb = sealLedger(state(multi), multi.keys(), multi.sealDigest);
    const fewer = multi.keys();
    fewer.delete('k0');
    expectCode(() => openLedger(mb, fewer, multi.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
    expectCode(() => openLedger(blob, new Map([...one.keys(), ['k9', key(5)]]), one.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
    // Sealed correctly, but the state inside names another dataset.
    const misnamed = sealLedger(state(one, { dataset: hex(multi.sealDigest) }), one.keys(), one.sealDigest);
    expectCode(() => openLedger(misnamed, one.keys(), one.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
  });

  it('refuses a sealed state outside the model', () => {
    for (const over of [{ generation: -1 }, { generation: 1.5 }, { spent: -0.5 }, { generation: 2 ** 53 }]) {
      const b = sealLedger(state(one, over), one.keys(), one.sealDigest);
      expectCode(() => openLedger(b, one.keys(), one.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
    }
  });

  it('is tamper-evident, not tamper-proof: an older genuine blob still opens (the worker and audit verify compare generations)', () => {
    const old = sealLedger(state(one, { generation: 1, spent: 0.5 }), one.keys(), one.sealDigest);
    sealLedger(state(one, { generation: 2, spent: 1 }), one.keys(), one.sealDigest);
    expect(openLedger(old, one.keys(), one.sealDigest)).toMatchObject({ generation: 1, spent: 0.5 });
  });

  it('property: any bytes, and any change of a genuine blob, give only ERR_SEAL_INVALID', () => {
    const blob = sealLedger(state(one), one.keys(), one.sealDigest);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        expectCode(() => openLedger(b, one.keys(), one.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.nat(blob.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const b = blob.slice();
        b[i]! ^= x;
        expectCode(() => openLedger(b, one.keys(), one.sealDigest), 'ERR_SEAL_INVALID', 'ledger');
      }),
      { numRuns: 200 },
    );
  });
});
