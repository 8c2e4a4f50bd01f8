/** Bad data, bad keys, bad KMS, a dying worker: every job fails closed and says why. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type Server } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { runJob } from '../../host/run.js';
import { connectEnclave } from '../../host/enclave-conn.js';
import { encryptDataset, KmsDataKeySource } from '../../host/encrypt.js';
import { appendAuditEntry, auditRecordFromOutcome, verifyAuditLog } from '../../host/audit.js';
import { QUERY, setUp, IMAGE_A, OPEN_POLICY, type Fixture } from './helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await setUp(200);
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

function lines(): Record<string, unknown>[] {
  return readFileSync(fx.datasetPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}
function writeLines(name: string, recs: Record<string, unknown>[]): string {
  const p = join(fx.stack.dir, name);
  writeFileSync(p, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return p;
}

/** Once records flow, every failure is the one constant, attested refusal (privacy.md 4). */
function expectConstantRefusal(out: Awaited<ReturnType<typeof runJob>>): void {
  expect(out.ok).toBe(false);
  if (out.ok) return;
  expect(out.error.code).toBe('ERR_JOB_REFUSED');
  expect(out.error.message).toBe('the worker refused the job; nothing was released');
  expect(out.refusal?.doc).toMatchObject({ code: 'ERR_JOB_REFUSED', reason: 'refused', message: 'the job was refused; nothing was released' });
}

describe('failures fail the job closed', () => {
  it('a field moved to another record: the constant refusal, no ciphertext or record named', async () => {
    const recs = lines();
    [recs[5]!.email, recs[6]!.email] = [recs[6]!.email, recs[5]!.email];
    const out = await runJob(fx.baseRun({ dataset: writeLines('swapped.ndjson', recs) }));
    expectConstantRefusal(out);
    if (out.ok) return;
    // Nothing of the record or its ciphertext comes back: not in the error, not in the refusal.
    const refusal = Buffer.from(out.refusal!.bytes).toString('latin1');
    for (const s of [String(recs[5]!.email).slice(5, 40), 'r5', 'email']) {
      expect(out.error.message).not.toContain(s);
      expect(refusal).not.toContain(s);
    }
  });

  it('a field moved to another column: the same refusal', async () => {
    const recs = lines();
    recs[9]!.complaint = recs[9]!.email;
    expectConstantRefusal(await runJob(fx.baseRun({ dataset: writeLines('moved.ndjson', recs) })));
  });

  it('a manifest edited by the host, or with another dataset\'s key, fails before any record is read', async () => {
    const renamed = structuredClone(fx.manifest);
    renamed.keys = { k7: renamed.keys.k0! };
    let out = await runJob(fx.baseRun({ manifest: renamed }));
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.message).toMatch(/manifest\.keys\.k7\.encryptionContext|manifest\.seal/);

    // A data key generated for another dataset: KMS refuses it under this dataset's context.
    const other = join(fx.stack.dir, 'other.ndjson');
    const kms = new KmsDataKeySource({ endpoint: fx.stack.kmsUrl, region: 'us-east-1', credentials: await fx.stack.credentials('data-owner') });
    const m2 = await encryptDataset({ input: fx.plainPath, format: 'ndjson', fields: ['email'], idField: 'id', datasetId: 'other-ds', keyId: fx.keyId, kms, output: other, policy: OPEN_POLICY });
    kms.client.destroy();
    const wrong = structuredClone(fx.manifest);
    wrong.keys.k0 = { ...m2.keys.k0!, encryptionContext: fx.manifest.keys.k0!.encryptionContext };
    out = await runJob(fx.baseRun({ manifest: wrong }));
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.message).toMatch(/ERR_KMS_REQUEST.*InvalidCiphertextException/);
  });

  it('KMS unreachable, and KMS that never answers, fail with a clear error in bounded time', async () => {
    const gone = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'nokms', kms: `unix:${join(fx.stack.dir, 'nothing-here.sock')}` });
    let out = await runJob(fx.baseRun({ connect: () => connectEnclave({ kind: 'unix', path: gone.socketPath }) }));
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.message).toMatch(/ERR_KMS_UNREACHABLE/);

    const silent: Server = createServer(() => {});
    const sp = join(fx.stack.dir, 'silent.sock');
    silent.listen(sp);
    await once(silent, 'listening');
    try {
      const slow = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'slowkms', kms: `unix:${sp}`, extraArgs: ['--kms-timeout', '1500'] });
      const t0 = Date.now();
      out = await runJob(fx.baseRun({ connect: () => connectEnclave({ kind: 'unix', path: slow.socketPath }) }));
      expect(out.ok).toBe(false);
      if (!out.ok) expect(out.error.message).toMatch(/ERR_KMS_(REQUEST|UNREACHABLE).*(within|timeout|did not)/);
      expect(Date.now() - t0).toBeLessThan(15_000);
    } finally {
      silent.close();
    }
  }, 40_000);

  it('a worker killed mid-job: the host reports failure, releases nothing, and the audit entry says so', async () => {
    const victim = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'victim' });
    let frames = 0;
    const out = await runJob(
      fx.baseRun({
        connect: () => connectEnclave({ kind: 'unix', path: victim.socketPath }),
        batchSize: 5,
        tap: (dir) => {
          if (dir === 'out' && ++frames === 8) victim.child.kill('SIGKILL');
        },
      }),
    );
    expect(out.ok).toBe(false);
    if (out.ok) return;
    expect(out.error.code).toMatch(/ERR_JOB_FAILED|ERR_PROTOCOL/);
    expect('result' in out).toBe(false);
    const audit = join(fx.stack.dir, 'killed-audit.log');
    await appendAuditEntry(audit, auditRecordFromOutcome(out, { datasetDigest: '0'.repeat(96) }));
    expect((await verifyAuditLog(audit)).ok).toBe(true);
    const entry = JSON.parse(readFileSync(audit, 'utf8').trim());
    expect(entry.outcome).toBe('failed');
    expect(entry.document).toBeNull();
    expect(entry.reason).toMatch(/^(stream|result): ERR_/);
  });

  it('an invalid query is refused; a query that would reveal small groups releases none of them', async () => {
    let out = await runJob(fx.baseRun({ query: { version: 1, aggregates: [{ name: 'x', op: 'median', field: 'spend' }] } }));
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.message).toMatch(/ERR_QUERY_INVALID/);
    out = await runJob(fx.baseRun({ query: { version: 1, groupBy: ['id'], aggregates: [{ name: 'n', op: 'count' }, { name: 'm', op: 'max', field: 'spend' }] } }));
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    expect(out.result.groups).toHaveLength(0);
    expect(out.result.counts.suppressedGroups).toBe(200);
    void QUERY;
  });
});
