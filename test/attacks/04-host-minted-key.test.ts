/**
 * Finding 4: host-minted data keys were accepted. The host created its own KMS key and a data key it
 * knows, added it to the manifest, and fabricated 9 records under it beside one genuine record: one
 * verified result returned the target's exact spend and the words of its complaint.
 *
 * Mechanism: the seal is checked under EVERY data key of the manifest (privacy.md 1). The host can
 * MAC a manifest under its own key, but not under the owner's: a manifest that mixes them is refused
 * before any record is read. A manifest sealed by the host alone holds only the host's keys, so the
 * owner's fields cannot be decrypted in it; and the result names the key ARNs it was computed under.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJob } from '../../host/run.js';
import { KmsDataKeySource } from '../../host/encrypt.js';
import {
  DatasetDigest, deriveSealKey, fieldAad, formatField, keyEncryptionContext, manifestBody, sealManifest, validateManifest,
  type KeyManifest, type ManifestBody,
} from '../../enclave/protocol/index.js';
import { readRecords, setUp, writeRecords, type Fixture } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await setUp(30);
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

describe('attack 4: a data key the host minted', () => {
  it('a manifest with the owner key plus a host key, sealed by the host key only, is refused before any record', async () => {
    // The host's own key, which the same enclave image may use (the host writes that key policy).
    const hostKeyId = await fx.stack.createEnclaveKey(fx.worker.pcr0);
    const kms = new KmsDataKeySource({ endpoint: fx.stack.kmsUrl, region: 'us-east-1', credentials: await fx.stack.credentials('data-owner') });
    const ds = fx.manifest.datasetId;
    const dk = await kms.generateDataKey(hostKeyId, keyEncryptionContext(ds, 'h0'));
    kms.destroy();
    const enc = (id: string, path: string, v: unknown): string => {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', dk.plaintext, iv);
      c.setAAD(fieldAad(ds, id, path, 'h0'));
      return formatField('h0', iv, Buffer.concat([c.update(JSON.stringify(v)), c.final(), c.getAuthTag()]));
    };
    const target = readRecords(fx.datasetPath)[4]!;
    const fake = Array.from({ length: 9 }, (_, i) => ({ id: `fake${i}`, region: target.region, email: enc(`fake${i}`, 'email', 'x'), spend: enc(`fake${i}`, 'spend', 0), complaint: enc(`fake${i}`, 'complaint', 'x') }));
    const records = [target, ...fake];
    const dataset = writeRecords(fx.stack.dir, 'minted.ndjson', records);
    const digest = new DatasetDigest(ds);
    for (const r of records) digest.add(r);
    const owner = fx.manifest.keys.k0!;
    const body: ManifestBody = {
      ...manifestBody(fx.manifest),
      keys: { k0: owner, h0: { keyId: dk.keyId, ciphertextBlob: Buffer.from(dk.ciphertextBlob).toString('base64'), encryptionContext: keyEncryptionContext(ds, 'h0') } },
      records: records.length,
      digest: Buffer.from(digest.digest()).toString('hex'),
    };
    const hostSeal = sealManifest({ ...body, keys: { h0: body.keys.h0! } }, new Map([['h0', deriveSealKey(dk.plaintext)]]));
    // The host can only guess the owner key's MAC.
    const forged: KeyManifest = validateManifest({ ...body, seal: { k0: randomBytes(48).toString('hex'), h0: hostSeal.seal.h0! } });
    const query = { version: 1, groupBy: ['region'], aggregates: [{ name: 'n', op: 'count' }, { name: 'spend', op: 'sum', field: 'spend' }, { name: 'terms', op: 'topTerms', field: 'complaint', k: 5 }] };
    const out = await runJob(fx.baseRun({ dataset, manifest: forged, query }));
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expect(out.error.code).toBe('ERR_SEAL_INVALID');
      expect(out.refusal?.doc.ledger).toBeNull();
    }
    dk.plaintext.fill(0);
  });

  it('the owner manifest with its seal swapped to another key entry is refused', async () => {
    const m = structuredClone(fx.manifest) as KeyManifest;
    const tampered = { ...m, keys: { ...m.keys, k0: { ...m.keys.k0!, keyId: m.keys.k0!.keyId.replace(/key\/.*/, 'key/00000000-0000-0000-0000-000000000000') } } };
    const out = await runJob(fx.baseRun({ manifest: tampered }));
    expect(out.ok).toBe(false);
  });
});
