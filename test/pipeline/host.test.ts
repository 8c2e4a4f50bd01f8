import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { KMSClient, CreateKeyCommand, DecryptCommand } from '@aws-sdk/client-kms';
import { readDataset } from '../../host/dataset.js';
import { encryptDataset, KmsDataKeySource } from '../../host/encrypt.js';
import { appendAuditEntry, verifyAuditLog, type AuditRecord } from '../../host/audit.js';
import { run as runEncryptCli } from '../../host/cli/encrypt.js';
import { run as runAuditCli } from '../../host/cli/audit.js';
import { startKmsSimulator } from '../../host/kms-sim/server.js';
import { syntheticCustomers, writeSyntheticDataset } from '../../host/synthetic.js';
import { createJob } from '../../enclave/job.js';
import { parseManifest, DatasetDigest } from '../../enclave/protocol/index.js';
import type { CliIO } from '../../host/cli/io.js';
import { FakeKms, collect } from './fixtures.js';
import { expectCodeAsync } from './helpers.js';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'ek-pipeline-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

function io(): CliIO & { out: () => string; err: () => string } {
  const o = new PassThrough(), e = new PassThrough();
  let so = '', se = '';
  o.on('data', (c) => (so += c)); e.on('data', (c) => (se += c));
  return { stdout: o, stderr: e, stdin: new PassThrough(), env: {}, now: () => new Date('2026-01-01T00:00:00Z'), out: () => so, err: () => se };
}

async function readAll(input: Readable, format: 'ndjson' | 'csv', nest = false, maxLineBytes = 200) {
  const out = [];
  for await (const r of readDataset(input, { format, maxLineBytes, nest })) out.push(r);
  return out;
}

describe('dataset readers', () => {
  it('NDJSON: records with line numbers, blank lines skipped, errors name the line', async () => {
    const recs = await readAll(Readable.from(['{"a":1}\n\n{"a"', ':2}\r\n{"a":3}']), 'ndjson');
    expect(recs).toEqual([{ record: { a: 1 }, line: 1 }, { record: { a: 2 }, line: 3 }, { record: { a: 3 }, line: 4 }]);
    await expectCodeAsync(() => readAll(Readable.from(['{"a":1}\n{oops}\n']), 'ndjson'), 'ERR_DATASET_INVALID', 'json').then((e) => expect(e.message).toMatch(/^line 2:/));
    await expectCodeAsync(() => readAll(Readable.from(['[1]\n']), 'ndjson'), 'ERR_DATASET_INVALID', 'record');
    await expectCodeAsync(() => readAll(Readable.from(['{"a":"' + 'x'.repeat(300)]), 'ndjson'), 'ERR_DATASET_INVALID', 'line_too_long');
    await expectCodeAsync(() => readAll(Readable.from([Buffer.from([0x7b, 0xff, 0x7d, 0x0a])]), 'ndjson'), 'ERR_DATASET_INVALID', 'utf8');
  });

  it('CSV: header, nesting of dotted columns, bad rows and headers', async () => {
    const recs = await readAll(Readable.from(['id,address.city,n\n1,Oslo,3\n2,"Ri, o",4\n']), 'csv', true);
    expect(recs.map((r) => r.record)).toEqual([{ id: '1', address: { city: 'Oslo' }, n: '3' }, { id: '2', address: { city: 'Ri, o' }, n: '4' }]);
    expect(recs[1]!.line).toBe(3);
    await expectCodeAsync(() => readAll(Readable.from(['a,b\n1,2,3\n']), 'csv'), 'ERR_DATASET_INVALID', 'csv');
    await expectCodeAsync(() => readAll(Readable.from(['a,a\n1,2\n']), 'csv'), 'ERR_DATASET_INVALID', 'header');
    await expectCodeAsync(() => readAll(Readable.from(['__proto__,b\n1,2\n']), 'csv'), 'ERR_DATASET_INVALID', 'header');
    await expectCodeAsync(() => readAll(Readable.from(['a\n' + 'x'.repeat(300) + '\n']), 'csv'), 'ERR_DATASET_INVALID', 'line_too_long');
  });
});

describe('encryptDataset', () => {
  it('CSV in, CSV out; the enclave job opens what the host reads back (nested)', async () => {
    const kms = new FakeKms();
    const csv = 'id,name,address.city,region,spend\n' + Array.from({ length: 40 }, (_, i) => `${i},Person ${i},City ${i % 3},r${i % 2},${i * 1.5}`).join('\n') + '\n';
    const out = new PassThrough();
    const text = collect(out);
    const manifest = await encryptDataset({ input: Readable.from([csv]), format: 'csv', fields: ['name', 'address.city'], idField: 'id', datasetId: 'csv-1', keyId: 'k', kms, output: out, rotateAfter: 25 });
    out.end();
    const enc = await text;
    expect(enc).not.toContain('Person 1');
    expect(enc.split('\n')[0]).toBe('id,name,address.city,region,spend');
    expect(Object.keys(manifest.keys)).toEqual(['k0', 'k1', 'k2', 'k3']);
    const job = createJob({
      jobId: 'j', datasetId: 'csv-1', manifest, keys: kms.keys(), platform: 'simulator', workerVersion: '1', minGroupSizeFloor: 1,
      query: { version: 1, groupBy: ['region'], aggregates: [{ name: 'cities', op: 'distinctCount', field: 'address.city' }, { name: 's', op: 'sum', field: 'spend' }], privacy: { minGroupSize: 1 } },
    });
    const recs = (await readAll(Readable.from([enc]), 'csv', true)).map((r) => r.record);
    job.addBatch(recs);
    const { result } = job.finish();
    expect(result.groups.map((g) => g.aggregates)).toEqual([{ cities: 3, s: 20 * 19 * 1.5 }, { cities: 3, s: 20 * 20 * 1.5 }]);
  });

  it('refuses records without an id and removes the partial output file', async () => {
    const path = join(dir, 'noid.ndjson');
    await expectCodeAsync(
      () => encryptDataset({ input: Readable.from(['{"id":"a","x":1}\n{"x":2}\n']), format: 'ndjson', fields: ['x'], idField: 'id', datasetId: 'd', keyId: 'k', kms: new FakeKms(), output: path }),
      'ERR_DATASET_INVALID', 'record_id',
    );
    await expect(readFile(path)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(readFile(path + '.partial')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a field name that matches nothing, so no column stays in clear by a typo', async () => {
    const path = join(dir, 'typo.ndjson');
    await expectCodeAsync(
      () => encryptDataset({ input: Readable.from(['{"id":"a","email":"x@y"}\n']), format: 'ndjson', fields: ['emial'], idField: 'id', datasetId: 'd', keyId: 'k', kms: new FakeKms(), output: path }),
      'ERR_DATASET_INVALID', 'field_absent',
    );
    await expect(readFile(path)).rejects.toMatchObject({ code: 'ENOENT' });
    await expectCodeAsync(
      () => encryptDataset({ input: Readable.from(['id,email\n1,x@y\n']), format: 'csv', fields: ['emial'], idField: 'id', datasetId: 'd', keyId: 'k', kms: new FakeKms(), output: path }),
      'ERR_DATASET_INVALID', 'field_absent',
    );
  });

  it('streams a file much larger than its heap limit in constant memory', async () => {
    const src = join(dir, 'big.ndjson');
    await writeSyntheticDataset(src, { count: 40_000, seed: 3 });
    const script = `
      import { encryptDataset } from ${JSON.stringify(join(process.cwd(), 'host/encrypt.ts'))};
      import { createHash } from 'node:crypto';
      let peak = 0;
      const t = setInterval(() => { peak = Math.max(peak, process.memoryUsage().heapUsed); }, 20);
      const kms = { async generateDataKey(id, ctx) { return { plaintext: new Uint8Array(createHash('sha256').update(JSON.stringify(ctx)).digest()), ciphertextBlob: new Uint8Array([1]), keyId: id }; } };
      await encryptDataset({ input: ${JSON.stringify(src)}, format: 'ndjson', fields: ['name', 'email', 'complaint'], idField: 'id', datasetId: 'big', keyId: 'k', kms, output: ${JSON.stringify(src + '.enc')}, rotateAfter: 100000 });
      clearInterval(t);
      peak = Math.max(peak, process.memoryUsage().heapUsed);
      console.log(JSON.stringify({ peak }));
    `;
    const file = join(dir, 'run.mts');
    await writeFile(file, script);
    const srcSize = (await readFile(src)).length;
    const { stdout } = await promisify(execFile)(process.execPath, ['--max-old-space-size=24', '--import', 'tsx', file], { cwd: process.cwd() });
    const { peak } = JSON.parse(stdout.trim().split('\n').pop()!) as { peak: number };
    const encSize = (await readFile(src + '.enc')).length;
    expect(srcSize).toBeGreaterThan(12 * 1024 * 1024);
    expect(encSize).toBeGreaterThan(srcSize);
    console.log(`encrypt streaming: input ${srcSize} bytes, output ${encSize} bytes, peak heap ${peak} bytes`);
    // input and output together are about twice the 24 MiB heap cap; the peak stays under it
    expect(peak).toBeLessThan(24 * 1024 * 1024);
  }, 60_000);
});

describe('KMS simulator, real SDK', () => {
  it('enclavekit encrypt against the simulator; the data keys decrypt under their context and open the fields', async () => {
    const sim = await startKmsSimulator({ stateDir: join(dir, 'kms'), port: 0 });
    const creds = { accessKeyId: 'test', secretAccessKey: 'test' };
    const client = new KMSClient({ endpoint: sim.url, region: 'us-east-1', credentials: creds });
    try {
      const { KeyMetadata } = await client.send(new CreateKeyCommand({}));
      const src = join(dir, 'small.ndjson');
      await writeSyntheticDataset(src, { count: 60, seed: 9 });
      const t = io();
      const code = await runEncryptCli(
        ['--in', src, '--fields', 'name,email,address.street', '--id-field', 'id', '--dataset', 'sim-1', '--key-id', KeyMetadata!.KeyId!,
          '--endpoint', sim.url, '--rotate-after', '100', '--out', join(dir, 'small.enc.ndjson'), '--manifest', join(dir, 'small.manifest.json')],
        t,
      );
      expect(t.err()).toBe('');
      expect(code).toBe(0);
      const manifest = parseManifest(await readFile(join(dir, 'small.manifest.json')));
      expect(Object.keys(manifest.keys)).toEqual(['k0', 'k1']);
      const keys = new Map<string, Uint8Array>();
      for (const [ref, k] of Object.entries(manifest.keys)) {
        const r = await client.send(new DecryptCommand({ CiphertextBlob: Buffer.from(k.ciphertextBlob, 'base64'), EncryptionContext: k.encryptionContext }));
        keys.set(ref, r.Plaintext!);
      }
      // the wrong encryption context does not release the key
      const k0 = manifest.keys.k0!;
      await expect(client.send(new DecryptCommand({ CiphertextBlob: Buffer.from(k0.ciphertextBlob, 'base64'), EncryptionContext: { ...k0.encryptionContext, 'enclavekit:key-ref': 'k1' } }))).rejects.toThrow();
      const recs = (await readAll(Readable.from([await readFile(join(dir, 'small.enc.ndjson'))]), 'ndjson', false, 1 << 20)).map((r) => r.record);
      const job = createJob({ jobId: 'j', datasetId: 'sim-1', manifest, keys, platform: 'simulator', workerVersion: '1',
        query: { version: 1, aggregates: [{ name: 'n', op: 'count' }, { name: 'people', op: 'distinctCount', field: 'email' }] } });
      job.addBatch(recs);
      const { result } = job.finish();
      expect(result.groups[0]!.count).toBe(60);
      // the plaintext of the synthetic names never reached the encrypted file
      const encText = (await readFile(join(dir, 'small.enc.ndjson'))).toString();
      for (const c of syntheticCustomers({ count: 60, seed: 9 })) expect(encText.includes(c.email)).toBe(false);
    } finally {
      client.destroy();
      await sim.close();
    }
  });

  it('KMS unreachable is a clear error', async () => {
    const src = new KmsDataKeySource({ endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, timeoutMs: 2000 });
    try {
      await expectCodeAsync(() => src.generateDataKey('k', {}), 'ERR_KMS_UNREACHABLE');
    } finally {
      src.destroy();
    }
  });

  it('CLI usage errors exit 2', async () => {
    const { main } = await import('../../host/cli/main.js');
    const t = io();
    expect(await main(['encrypt', '--in', 'x.ndjson'], t)).toBe(2);
    expect(await main(['encrypt', '--in', 'x.txt', '--fields', 'a', '--id-field', 'id', '--dataset', 'd', '--key-id', 'k', '--out', 'o', '--manifest', 'm'], t)).toBe(2);
    expect(await main(['audit', 'check', 'x'], t)).toBe(2);
  });
});

describe('audit log', () => {
  const rec = (i: number): AuditRecord => ({
    jobId: `job-${i}`, datasetId: 'd', datasetDigest: 'a'.repeat(96), queryDigest: 'b'.repeat(96), keyIds: ['arn:aws:kms:k'], platform: 'simulator',
    measurements: { PCR0: 'c'.repeat(96) }, resultDigest: i === 2 ? null : 'd'.repeat(96), verification: i === 2 ? { ok: false, reason: 'worker died' } : { ok: true },
  });

  it('chains entries and names the first broken line on tampering', async () => {
    const path = join(dir, 'audit.jsonl');
    for (let i = 0; i < 5; i++) await appendAuditEntry(path, rec(i), () => new Date(Date.UTC(2026, 0, 1, 0, i)));
    expect(await verifyAuditLog(path)).toEqual({ ok: true, entries: 5 });
    const lines = (await readFile(path, 'utf8')).split('\n');

    const tampered = async (ls: string[]) => { const p = join(dir, `t-${Math.random()}.jsonl`); await writeFile(p, ls.join('\n')); return verifyAuditLog(p); };
    const edited = [...lines];
    edited[2] = edited[2]!.replace('"ok":false', '"ok":true');
    expect(await tampered(edited)).toEqual({ ok: false, entries: 2, firstBroken: { line: 3, reason: 'hash' } });
    const removed = [...lines];
    removed.splice(1, 1);
    expect((await tampered(removed)).firstBroken).toEqual({ line: 2, reason: 'seq' });
    const swapped = [lines[0]!, lines[2]!, lines[1]!, ...lines.slice(3)];
    expect((await tampered(swapped)).firstBroken).toEqual({ line: 2, reason: 'seq' });
    // an edited entry whose hash is recomputed still breaks the next entry's prev link
    const reh = JSON.parse(lines[1]!);
    reh.jobId = 'forged';
    const { hash: _h, ...body } = reh;
    const { encodeCanonical } = await import('../../enclave/protocol/index.js');
    const { createHash } = await import('node:crypto');
    reh.hash = createHash('sha384').update(encodeCanonical(body)).digest('hex');
    const rehashed = [...lines];
    rehashed[1] = JSON.stringify(reh);
    expect((await tampered(rehashed)).firstBroken).toEqual({ line: 3, reason: 'prev' });
    expect((await tampered([...lines.slice(0, 4), '{"garbage": true}', ''])).firstBroken).toEqual({ line: 5, reason: 'unknown_key:garbage' });
    expect((await tampered([...lines.slice(0, 3), 'not json', ''])).firstBroken).toEqual({ line: 4, reason: 'json' });
    expect((await tampered([...lines.slice(0, 4), lines[4]!.slice(0, 40)])).firstBroken).toEqual({ line: 5, reason: 'truncated' });

    const ok = io();
    expect(await runAuditCli(['verify', path], ok)).toBe(0);
    expect(ok.out()).toContain('5 entries');
    const p = join(dir, 'broken.jsonl');
    await writeFile(p, edited.join('\n'));
    const bad = io();
    expect(await runAuditCli(['verify', p], bad)).toBe(1);
    expect(bad.out()).toContain('line 3 (hash)');
    // appending to a log whose tail was edited is refused
    const tail = [...lines];
    tail[4] = tail[4]!.replace('job-4', 'job-X');
    await writeFile(p, tail.join('\n'));
    await expectCodeAsync(() => appendAuditEntry(p, rec(9)), 'ERR_AUDIT_INVALID', 'hash');
    await appendFile(p, '{"partial');
    await expectCodeAsync(() => appendAuditEntry(p, rec(9)), 'ERR_AUDIT_INVALID', 'truncated');
  });

  it('digest of what the host sends equals what the enclave computes', async () => {
    const a = new DatasetDigest('x');
    const b = new DatasetDigest('x');
    const recs = [...syntheticCustomers({ count: 20 })];
    for (const r of recs) a.add(JSON.parse(JSON.stringify(r)));
    for (const r of recs) b.add(structuredClone(r));
    expect(a.digest()).toEqual(b.digest());
  });
});

describe('synthetic dataset', () => {
  it('is deterministic per seed, has PII, orders, a sentiment mix and a tiny region', async () => {
    const a = [...syntheticCustomers({ count: 3000, seed: 5 })];
    const b = [...syntheticCustomers({ count: 3000, seed: 5 })];
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(JSON.stringify([...syntheticCustomers({ count: 50, seed: 6 })])).not.toBe(JSON.stringify(a.slice(0, 50)));
    const c = a[0]!;
    expect(c.email).toMatch(/@example\.com$/);
    expect(c.phone).toMatch(/^\+1-555-\d{7}$/);
    expect(c.orders.total).toBeGreaterThan(0);
    const regions = new Map<string, number>();
    for (const x of a) regions.set(x.region, (regions.get(x.region) ?? 0) + 1);
    expect(regions.size).toBeGreaterThanOrEqual(5);
    expect(regions.get('ap-east') ?? 0).toBeLessThan(10); // rare on purpose: it exercises suppression
    const out = new PassThrough();
    const text = collect(out);
    await writeSyntheticDataset(out, { count: 10, seed: 5 });
    out.end();
    expect((await text).trim().split('\n').map((l) => JSON.parse(l))).toEqual(a.slice(0, 10));
  });
});
