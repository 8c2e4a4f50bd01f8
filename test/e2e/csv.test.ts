import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runJob } from '../../host/run.js';
import { encryptDataset, KmsDataKeySource } from '../../host/encrypt.js';
import { makeRecords, setUp, type Fixture, OPEN_POLICY } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await setUp(10);
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

describe('CSV datasets', () => {
  it('a CSV file encrypted by column runs through the same pipeline', async () => {
    const recs = makeRecords(120);
    const csv = ['id,region,email,spend,complaint', ...recs.map((r) => [r.id, r.region, r.email, r.spend, `"${r.complaint}"`].join(','))].join('\n') + '\n';
    const plain = join(fx.stack.dir, 'plain.csv');
    writeFileSync(plain, csv);
    const out = join(fx.stack.dir, 'data.csv');
    const kms = new KmsDataKeySource({ endpoint: fx.stack.kmsUrl, region: 'us-east-1', credentials: await fx.stack.credentials('data-owner') });
    const manifest = await encryptDataset({ input: plain, format: 'csv', fields: ['email', 'spend', 'complaint'], idField: 'id', datasetId: 'csv-ds', keyId: fx.keyId, kms, output: out, policy: OPEN_POLICY });
    kms.client.destroy();
    const res = await runJob(fx.baseRun({ dataset: out, manifest }));
    if (!res.ok) throw new Error(`${res.error.code}: ${res.error.message}`);
    expect(res.result.counts.records).toBe(120);
    const north = res.result.groups.find((g) => g.key[0] === 'north')!;
    expect(north.count).toBe(30);
    // spend was a CSV string, encrypted and decrypted as such; numeric aggregates still see a number.
    expect(typeof (north.aggregates as Record<string, unknown>).spend_mean).toBe('number');
  });
});
