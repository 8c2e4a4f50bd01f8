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
import { checkQueryAgainstPolicy, parseManifest, DatasetDigest, verifyManifestSeal, type KeyManifest, type ReleasePolicy } from '../../enclave/protocol/index.js';
import type { CliIO } from '../../host/cli/io.js';
import { FakeKms, NOW, TEST_KEY_ARN, collect, encryptedCustomers, expectJobRefused, failureOf, hex, openJob, openPolicy, testLinks } from './fixtures.js';
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

/** Encrypt in memory; returns the manifest and the written text. */
async function encryptText(text: string, opts: { format: 'ndjson' | 'csv'; fields: string[]; idField?: string; datasetId?: string; kms?: FakeKms; rotateAfter?: number; policy?: ReleasePolicy | null }) {
  const kms = opts.kms ?? new FakeKms();
  const out = new PassThrough();
  const written = collect(out);
  const manifest = await encryptDataset({
    input: Readable.from([text]), format: opts.format, fields: opts.fields, idField: opts.idField ?? 'id', datasetId: opts.datasetId ?? 'd', keyId: 'alias/owner', kms, output: out,
    ...(opts.rotateAfter ? { rotateAfter: opts.rotateAfter } : {}), ...(opts.policy !== undefined ? { policy: opts.policy } : {}),
  });
  out.end();
  return { kms, manifest, text: await written };
}

/** A job over `records` as the worker runs one: the owner's verdict, the seal checked, then createJob. */
function jobOver(manifest: KeyManifest, keys: Map<string, Uint8Array>, query: Record<string, unknown>) {
  const sealDigest = verifyManifestSeal(manifest, keys);
  return createJob({
    jobId: 'j', datasetId: manifest.datasetId, manifest, keys, platform: 'simulator', workerVersion: '1', query, sealDigest,
    release: checkQueryAgainstPolicy(query, manifest, NOW),
  });
}

describe('encryptDataset', () => {
  const csv = 'id,name,city,region,spend\n' + Array.from({ length: 40 }, (_, i) => `${i},Person ${i},City ${i % 3},r${i % 2},${i * 1.5}`).join('\n') + '\n';
  const csvQuery = { version: 1, groupBy: ['region'], aggregates: [{ name: 'cities', op: 'distinctCount', field: 'city' }, { name: 's', op: 'sum', field: 'spend' }], privacy: { minGroupSize: 1 } };

  it('CSV in, CSV out: a sealed manifest (schema, count, digest over what a reader of the file sees) and a job that opens it', async () => {
    const policy = openPolicy({ minGroupSize: 1 });
    const { kms, manifest, text: enc } = await encryptText(csv, { format: 'csv', fields: ['name', 'city'], datasetId: 'csv-1', rotateAfter: 25, policy });
    expect(enc).not.toContain('Person 1');
    expect(enc.split('\n')[0]).toBe('id,name,city,region,spend');
    expect(Object.keys(manifest.keys)).toEqual(['k0', 'k1', 'k2', 'k3']);
    // KMS was asked for the alias; the manifest names the key ARN KMS answered with.
    expect(new Set(kms.requested)).toEqual(new Set(['alias/owner']));
    for (const k of Object.values(manifest.keys)) expect(k.keyId).toBe(TEST_KEY_ARN);
    expect(manifest).toMatchObject({ version: 2, datasetId: 'csv-1', idField: 'id', fields: ['name', 'city'], records: 40, policy });
    // CSV carries text: a column of decimal numbers is a number.
    expect(manifest.schema).toEqual({ city: 'string', id: 'number', name: 'string', region: 'string', spend: 'number' });
    // The digest is over the records as `enclavekit run` reads the written file (readDataset, flat CSV rows).
    const recs = (await readAll(Readable.from([enc]), 'csv', false, 1 << 20)).map((r) => r.record);
    const host = new DatasetDigest('csv-1');
    for (const r of recs) host.add(r);
    expect(hex(host.digest())).toBe(manifest.digest);
    // The returned manifest is what the CLI writes: it parses back and its seal verifies under the keys.
    expect(parseManifest(JSON.stringify(manifest))).toEqual(manifest);
    const job = jobOver(manifest, kms.keys(), csvQuery);
    job.addBatch(recs);
    const { result } = job.finish().build(testLinks());
    expect(result.groups.map((g) => g.aggregates)).toEqual([{ cities: 3, s: 20 * 19 * 1.5 }, { cities: 3, s: 20 * 20 * 1.5 }]);
    expect(result.keyArns).toEqual([TEST_KEY_ARN]);
  });

  // A CSV column whose name has a dot ("address.city") is the nested field address -> city everywhere:
  // encrypt encrypts and seals it so, `run` reads CSV nested (readDataset's default), and the job opens
  // it. (It used to be encrypted as a flat column the job never found: its aggregates came back null.)
  it('CSV: an encrypted column with a dotted name is opened by the job the way `enclavekit run` reads the file', async () => {
    const dotted = 'id,name,address.city,region\n' + Array.from({ length: 20 }, (_, i) => `${i},P ${i},City ${i % 3},r${i % 2}`).join('\n') + '\n';
    const { kms, manifest, text: enc } = await encryptText(dotted, { format: 'csv', fields: ['name', 'address.city'], datasetId: 'csv-2', policy: openPolicy({ minGroupSize: 1 }) });
    const q = { version: 1, aggregates: [{ name: 'cities', op: 'distinctCount', field: 'address.city' }], privacy: { minGroupSize: 1 } };
    const recs = (await readAll(Readable.from([enc]), 'csv', true, 1 << 20)).map((r) => r.record);
    expect(manifest.schema['address.city']).toBe('string');
    const job = jobOver(manifest, kms.keys(), q);
    job.addBatch(recs);
    expect(job.finish().build(testLinks()).result.groups[0]!.aggregates.cities).toBe(3);
  });

  it('NDJSON: schema of every leaf path (mixed when types differ), digest over the records as written', async () => {
    const lines = [
      { id: 'a', v: 1, flag: true, nested: { x: 'p', y: { z: 2 } }, note: null, tags: ['t'], email: 'a@x' },
      { id: 'b', v: 'one', flag: false, nested: { x: 'q', y: { z: 3.5 } }, email: 'b@x', 'bad key': 1 },
      { id: 7, v: 2.0, nested: { x: 'r' }, email: 'c@x' },
    ];
    const text = lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
    const { manifest, text: enc } = await encryptText(text, { format: 'ndjson', fields: ['email', 'nested.x'] });
    expect(manifest.schema).toEqual({ email: 'string', flag: 'boolean', id: 'mixed', 'nested.x': 'string', 'nested.y.z': 'number', tags: 'mixed', v: 'mixed' });
    expect(manifest.records).toBe(3);
    const d = new DatasetDigest('d');
    for (const l of enc.trim().split('\n')) d.add(JSON.parse(l));
    expect(hex(d.digest())).toBe(manifest.digest);
    // The digest covers clear fields: the plaintext digest (other bytes) differs.
    const p = new DatasetDigest('d');
    for (const l of lines) p.add(l);
    expect(hex(p.digest())).not.toBe(manifest.digest);
  });

  it('seals the owner\'s policy (or null for the default) and refuses an invalid one before any KMS call', async () => {
    const text = '{"id":"a","x":1}\n';
    expect((await encryptText(text, { format: 'ndjson', fields: ['x'] })).manifest.policy).toBeNull();
    expect((await encryptText(text, { format: 'ndjson', fields: ['x'], policy: null })).manifest.policy).toBeNull();
    expect((await encryptText(text, { format: 'ndjson', fields: ['x'], policy: openPolicy() })).manifest.policy).toEqual(openPolicy());
    const kms = new FakeKms();
    await expectCodeAsync(() => encryptText(text, { format: 'ndjson', fields: ['x'], kms, policy: { ...openPolicy(), minGroupSize: 0 } }), 'ERR_POLICY_INVALID', '$.minGroupSize');
    expect(kms.calls).toBe(0);
  });

  it('refuses a KMS answer that names no key ARN, or a key of the wrong length, and removes the partial output', async () => {
    const path = join(dir, 'notarn.ndjson');
    for (const answer of ['k', 'alias/owner', '1234abcd-12ab-34cd-56ef-1234567890ab', 'arn:aws:s3:::bucket']) {
      const kms = new FakeKms(answer);
      const e = await expectCodeAsync(
        () => encryptDataset({ input: Readable.from(['{"id":"a","x":1}\n']), format: 'ndjson', fields: ['x'], idField: 'id', datasetId: 'd', keyId: 'k', kms, output: path }),
        'ERR_KMS_REQUEST', 'response',
      );
      expect(e.message).toContain('not a key ARN');
      await expect(readFile(path)).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(readFile(path + '.partial')).rejects.toMatchObject({ code: 'ENOENT' });
    }
    const shortKey = { async generateDataKey() { return { plaintext: new Uint8Array(16), ciphertextBlob: new Uint8Array([1]), keyId: TEST_KEY_ARN }; } };
    await expectCodeAsync(
      () => encryptDataset({ input: Readable.from(['{"id":"a","x":1}\n']), format: 'ndjson', fields: ['x'], idField: 'id', datasetId: 'd', keyId: 'k', kms: shortKey, output: path }),
      'ERR_KMS_REQUEST', 'response',
    );
    await expect(readFile(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a sealed dataset refuses what the host did to it, end to end', async () => {
    const data = await encryptedCustomers(25, { policy: openPolicy({ minGroupSize: 1 }) });
    const q = { version: 1, aggregates: [{ name: 'n', op: 'count' }], privacy: { minGroupSize: 1 } };
    // Records added from another encryption of the same customers (another data key the host holds).
    const other = await encryptedCustomers(25, { policy: openPolicy({ minGroupSize: 1 }), seed: 8 });
    const job = openJob(data, q);
    job.addBatch(structuredClone([...data.records.slice(0, 24), other.records[0]!]));
    expectJobRefused(() => job.finish());
    expect(failureOf(job).code).toMatch(/^ERR_(FIELD_DECRYPT|DATASET_INVALID)$/);
    // The other dataset's manifest does not verify under this dataset's keys, nor the reverse.
    expect(() => verifyManifestSeal(other.manifest, data.keys())).toThrow(expect.objectContaining({ code: 'ERR_SEAL_INVALID' }));
    expect(() => verifyManifestSeal(data.manifest, other.keys())).toThrow(expect.objectContaining({ code: 'ERR_SEAL_INVALID' }));
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
    await writeSyntheticDataset(src, { count: 120_000, seed: 3 });
    const script = `
      import { encryptDataset } from ${JSON.stringify(join(process.cwd(), 'host/encrypt.ts'))};
      import { createHash } from 'node:crypto';
      let peak = 0;
      const t = setInterval(() => { peak = Math.max(peak, process.memoryUsage().heapUsed); }, 20);
      const kms = { async generateDataKey(id, ctx) { return { plaintext: new Uint8Array(createHash('sha256').update(JSON.stringify(ctx)).digest()), ciphertextBlob: new Uint8Array([1]), keyId: ${JSON.stringify(TEST_KEY_ARN)} }; } };
      const m = await encryptDataset({ input: ${JSON.stringify(src)}, format: 'ndjson', fields: ['name', 'email', 'complaint'], idField: 'id', datasetId: 'big', keyId: 'k', kms, output: ${JSON.stringify(src + '.enc')}, rotateAfter: 100000 });
      clearInterval(t);
      peak = Math.max(peak, process.memoryUsage().heapUsed);
      console.log(JSON.stringify({ peak, records: m.records, keys: Object.keys(m.keys).length }));
    `;
    const file = join(dir, 'run.mts');
    await writeFile(file, script);
    const srcSize = (await readFile(src)).length;
    const { stdout } = await promisify(execFile)(process.execPath, ['--max-old-space-size=24', '--import', 'tsx', file], { cwd: process.cwd() });
    const { peak, records, keys } = JSON.parse(stdout.trim().split('\n').pop()!) as { peak: number; records: number; keys: number };
    expect(records).toBe(120_000);
    expect(keys).toBe(4);
    const encSize = (await readFile(src + '.enc')).length;
    expect(srcSize).toBeGreaterThan(36 * 1024 * 1024);
    expect(encSize).toBeGreaterThan(srcSize);
    console.log(`encrypt streaming: input ${srcSize} bytes, output ${encSize} bytes, peak heap ${peak} bytes`);
    // Input and output together are several times the 24 MiB old-space cap the process ran under (it
    // would have died holding either); the heap peak (young generation included) stays far below them.
    expect(peak).toBeLessThan(32 * 1024 * 1024);
    expect(peak).toBeLessThan((srcSize + encSize) / 2);
  }, 60_000);
});

describe('KMS simulator, real SDK', () => {
  it('enclavekit encrypt against the simulator; the data keys decrypt under their context and open the fields', async () => {
    const sim = await startKmsSimulator({ stateDir: join(dir, 'kms'), port: 0 });
    // The simulator checks SigV4: the account root's key from its state folder (the default key policy lets it).
    const creds = sim.credentials;
    const client = new KMSClient({ endpoint: sim.url, region: 'us-east-1', credentials: creds });
    try {
      const { KeyMetadata } = await client.send(new CreateKeyCommand({}));
      const src = join(dir, 'small.ndjson');
      await writeSyntheticDataset(src, { count: 60, seed: 9 });
      const policyPath = join(dir, 'policy.json');
      await writeFile(policyPath, JSON.stringify(openPolicy()));
      const t = io();
      t.env = { AWS_ACCESS_KEY_ID: creds.accessKeyId, AWS_SECRET_ACCESS_KEY: creds.secretAccessKey };
      const code = await runEncryptCli(
        ['--in', src, '--fields', 'name,email,address.street', '--id-field', 'id', '--dataset', 'sim-1', '--key-id', KeyMetadata!.KeyId!,
          '--endpoint', sim.url, '--rotate-after', '100', '--out', join(dir, 'small.enc.ndjson'), '--manifest', join(dir, 'small.manifest.json'), '--policy', policyPath],
        t,
      );
      expect(t.err()).toBe('');
      expect(code).toBe(0);
      expect(t.out()).toContain('60 records sealed with the given release policy');
      const manifest = parseManifest(await readFile(join(dir, 'small.manifest.json')));
      expect(Object.keys(manifest.keys)).toEqual(['k0', 'k1']);
      expect(manifest.records).toBe(60);
      expect(manifest.policy).toEqual(openPolicy());
      const keys = new Map<string, Uint8Array>();
      for (const [ref, k] of Object.entries(manifest.keys)) {
        // The sealed key ARN is the key KMS names in its answers.
        expect(k.keyId).toBe(KeyMetadata!.Arn);
        const r = await client.send(new DecryptCommand({ CiphertextBlob: Buffer.from(k.ciphertextBlob, 'base64'), EncryptionContext: k.encryptionContext }));
        expect(r.KeyId).toBe(k.keyId);
        keys.set(ref, r.Plaintext!);
      }
      // the wrong encryption context does not release the key
      const k0 = manifest.keys.k0!;
      await expect(client.send(new DecryptCommand({ CiphertextBlob: Buffer.from(k0.ciphertextBlob, 'base64'), EncryptionContext: { ...k0.encryptionContext, 'enclavekit:key-ref': 'k1' } }))).rejects.toThrow();
      const recs = (await readAll(Readable.from([await readFile(join(dir, 'small.enc.ndjson'))]), 'ndjson', false, 1 << 20)).map((r) => r.record);
      const query = { version: 1, aggregates: [{ name: 'n', op: 'count' }, { name: 'people', op: 'distinctCount', field: 'email' }] };
      const job = jobOver(manifest, keys, query);
      job.addBatch(recs);
      const { result } = job.finish().build(testLinks());
      expect(result.groups[0]!.count).toBe(60);
      expect(result.keyArns).toEqual([KeyMetadata!.Arn]);
      // Without the policy the same manifest would be the strict default: this exact query is refused.
      expect(() => checkQueryAgainstPolicy(query, { ...manifest, policy: null }, NOW)).toThrow(expect.objectContaining({ code: 'ERR_QUERY_REFUSED', reason: 'dp_required' }));
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
    // audit verify needs the expected image, or an explicit --chain-only
    expect(await main(['audit', 'verify', join(dir, 'nothing.jsonl')], t)).toBe(2);
    // --policy must be a valid release policy
    const bad = join(dir, 'bad-policy.json');
    await writeFile(bad, JSON.stringify({ ...openPolicy(), minGroupSize: 0 }));
    const t2 = io();
    expect(await main(['encrypt', '--in', join(dir, 'x.ndjson'), '--fields', 'a', '--id-field', 'id', '--dataset', 'd', '--key-id', 'k', '--out', join(dir, 'o'), '--manifest', join(dir, 'm'), '--policy', bad], t2)).toBe(2);
    expect(t2.err()).toContain('$.minGroupSize');
    await writeFile(bad, '{ not json');
    expect(await main(['encrypt', '--in', join(dir, 'x.ndjson'), '--fields', 'a', '--id-field', 'id', '--dataset', 'd', '--key-id', 'k', '--out', join(dir, 'o'), '--manifest', join(dir, 'm'), '--policy', bad], io())).toBe(2);
  });
});

describe('audit log', () => {
  /** A job the host could not finish: no attested document. */
  const failed = (i: number): AuditRecord => ({
    jobId: `job-${i}`, datasetId: 'd', sealDigest: null, datasetDigest: 'a'.repeat(96), queryDigest: 'b'.repeat(96), keyIds: [TEST_KEY_ARN], platform: 'simulator',
    measurements: {}, outcome: 'failed', code: 'ERR_PROTOCOL', reason: i === 2 ? 'finish: ERR_PROTOCOL: worker died' : `send: ERR_PROTOCOL: connection reset ${i}`,
    document: null, evidence: null, publicKey: null, nonce: null,
  });

  /** A released job: the worker's real result document (chain-only verification does not check the evidence bytes). */
  async function released(): Promise<AuditRecord> {
    const data = await encryptedCustomers(15, { policy: openPolicy({ minGroupSize: 1 }) });
    const job = openJob(data, { version: 1, aggregates: [{ name: 'n', op: 'count' }], privacy: { minGroupSize: 1 } });
    job.addBatch(structuredClone(data.records));
    const { result, resultBytes } = job.finish().build(testLinks());
    return {
      jobId: result.jobId, datasetId: result.datasetId, sealDigest: hex(result.sealDigest), datasetDigest: hex(result.datasetDigest), queryDigest: hex(result.queryDigest),
      keyIds: [TEST_KEY_ARN], platform: 'simulator', measurements: { PCR0: 'c'.repeat(96) }, outcome: 'released', code: null, reason: null,
      document: resultBytes, evidence: new Uint8Array([1, 2, 3]), publicKey: null, nonce: new Uint8Array(32).fill(7),
    };
  }

  it('chains entries and names the first broken line on tampering', async () => {
    const path = join(dir, 'audit.jsonl');
    const first = await released();
    await appendAuditEntry(path, first, () => new Date(Date.UTC(2026, 0, 1, 0, 0)));
    for (let i = 1; i < 5; i++) await appendAuditEntry(path, failed(i), () => new Date(Date.UTC(2026, 0, 1, 0, i)));
    expect(await verifyAuditLog(path)).toEqual({ ok: true, entries: 5, mode: 'chain-only', checked: { documents: 1, evidence: 0, chains: 1, later: 0 } });
    const lines = (await readFile(path, 'utf8')).split('\n');

    const tampered = async (ls: string[]) => { const p = join(dir, `t-${Math.random()}.jsonl`); await writeFile(p, ls.join('\n')); return verifyAuditLog(p); };
    const edited = [...lines];
    edited[2] = edited[2]!.replace('worker died', 'all good');
    expect(await tampered(edited)).toMatchObject({ ok: false, entries: 2, firstBroken: { line: 3, reason: 'hash' } });
    const removed = [...lines];
    removed.splice(1, 1);
    expect((await tampered(removed)).firstBroken).toMatchObject({ line: 2, reason: 'seq' });
    const swapped = [lines[0]!, lines[2]!, lines[1]!, ...lines.slice(3)];
    expect((await tampered(swapped)).firstBroken).toMatchObject({ line: 2, reason: 'seq' });
    // an edited entry whose hash is recomputed still breaks the next entry's prev link
    const reh = JSON.parse(lines[1]!);
    reh.jobId = 'forged';
    const { hash: _h, ...body } = reh;
    const { encodeCanonical } = await import('../../enclave/protocol/index.js');
    const { createHash } = await import('node:crypto');
    reh.hash = createHash('sha384').update(encodeCanonical(body)).digest('hex');
    const rehashed = [...lines];
    rehashed[1] = JSON.stringify(reh);
    expect((await tampered(rehashed)).firstBroken).toMatchObject({ line: 3, reason: 'prev' });
    // the released entry's document replaced (the entry's hash no longer matches)
    const doc0 = JSON.parse(lines[0]!);
    doc0.document = Buffer.from(Buffer.from(doc0.document, 'base64').reverse()).toString('base64');
    expect((await tampered([JSON.stringify(doc0), ...lines.slice(1)])).firstBroken).toMatchObject({ line: 1, reason: 'hash' });
    expect((await tampered([...lines.slice(0, 4), '{"v":2,"garbage": true}', ''])).firstBroken).toMatchObject({ line: 5, reason: 'unknown_key:garbage' });
    // a line of another version (v1 logs are refused, not verified)
    const v1 = await tampered([...lines.slice(0, 4), '{"seq":4,"jobId":"x"}', '']);
    expect(v1.firstBroken).toMatchObject({ line: 5, reason: 'version' });
    expect(v1.firstBroken!.detail).toContain('v1');
    expect((await tampered([...lines.slice(0, 3), 'not json', ''])).firstBroken).toMatchObject({ line: 4, reason: 'json' });
    expect((await tampered([...lines.slice(0, 4), lines[4]!.slice(0, 40)])).firstBroken).toMatchObject({ line: 5, reason: 'truncated' });

    const ok = io();
    expect(await runAuditCli(['verify', '--chain-only', path], ok)).toBe(0);
    expect(ok.out()).toContain('5 entries');
    expect(ok.out()).toContain('CHAIN ONLY');
    const p = join(dir, 'broken.jsonl');
    await writeFile(p, edited.join('\n'));
    const bad = io();
    expect(await runAuditCli(['verify', '--chain-only', p], bad)).toBe(1);
    expect(bad.out()).toContain('line 3 (hash)');
    // appending to a log whose tail was edited is refused
    const tail = [...lines];
    tail[4] = tail[4]!.replace('job-4', 'job-X');
    await writeFile(p, tail.join('\n'));
    await expectCodeAsync(() => appendAuditEntry(p, failed(9)), 'ERR_AUDIT_INVALID', 'hash');
    await appendFile(p, '{"partial');
    await expectCodeAsync(() => appendAuditEntry(p, failed(9)), 'ERR_AUDIT_INVALID', 'truncated');
  });

  it('refuses to append a record that contradicts its own attested document', async () => {
    const path = join(dir, 'contradict.jsonl');
    const r = await released();
    for (const over of [{ keyIds: ['arn:aws:kms:us-east-1:444455556666:key/other'] }, { jobId: 'job-other' }, { datasetDigest: 'e'.repeat(96) }, { sealDigest: 'f'.repeat(96) }, { outcome: 'refused' as const, code: 'ERR_JOB_REFUSED', reason: 'refused' }])
      await expect(appendAuditEntry(path, { ...r, ...over })).rejects.toThrow(TypeError);
    // an attested outcome without its evidence or nonce is malformed
    await expect(appendAuditEntry(path, { ...r, evidence: null })).rejects.toThrow(TypeError);
    await expect(appendAuditEntry(path, { ...r, nonce: null })).rejects.toThrow(TypeError);
    await expect(readFile(path)).rejects.toMatchObject({ code: 'ENOENT' });
    await appendAuditEntry(path, r);
    expect(await verifyAuditLog(path)).toMatchObject({ ok: true, entries: 1 });
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
