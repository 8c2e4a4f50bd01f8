/**
 * Attack 06: the hostile host rewrites its audit log.
 *
 * Finding: the audit log could be rewritten. A refused job's entry was changed into a clean success
 * and the host hash chain recomputed; `audit verify` said intact (the chain has no key, and the entries
 * carried no evidence, only the host's own word: `verification: { ok: true }`, `resultDigest`).
 * Stopped by: audit log v2 (host/audit.ts). Every entry carries the worker's attested document (result
 * or refusal) with its evidence, nonce and worker key; every document carries its place in the worker's
 * own audit chain (instance, seq, prev) and the privacy ledger generation. `enclavekit audit verify`
 * requires the expected image (or an explicit --chain-only), re-verifies each entry's evidence at the
 * entry's time, checks the entry against its document, each worker instance's chain from seq 0 without
 * gaps, ledger generations, and that the --result files the verifier holds are in the log. So:
 * - a refusal edited into a success fails its evidence (user_data = SHA-384(document));
 * - a genuine success swapped in from another job leaves a gap in the worker's chain (dropped);
 * - a dropped entry leaves a gap (dropped);
 * - a cut-off tail is reported against a result file of a later job (cut_off);
 * - a worker restarted with an older sealed ledger issues a generation twice (rollback).
 * Not detectable (README, "Audit log"): a cut-off tail when the verifier holds nothing from after the
 * cut, including a whole later worker instance.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createNitroSimCa, type NitroSimCa } from '../../attestation/sim/nitro.js';
import { toHex } from '../../attestation/bytes.js';
import { decodeAttestedDocument, encodeResult } from '../../enclave/protocol/index.js';
import type { AuditEntry } from '../../host/audit.js';
import type { CliIO } from '../../host/cli/io.js';
import * as H from '../audit/helpers.js';

let dir: string;
let ca: NitroSimCa;
let rootPem: string;
let n = 0;
const fresh = () => join(dir, `audit-${n++}.jsonl`);

function io(): CliIO & { out: () => string } {
  const o = new PassThrough();
  let so = '';
  o.on('data', (c) => (so += c));
  return { stdout: o, stderr: new PassThrough(), stdin: new PassThrough(), env: {}, now: () => H.T0, out: () => so };
}

/** `enclavekit audit verify FILE --expect-pcr 0=<image> --trust-simulator-root PEM [...extra]`. */
async function auditVerify(file: string, extra: string[] = []): Promise<{ code: number; out: string }> {
  const { main } = await import('../../host/cli/main.js');
  const t = io();
  const code = await main(['audit', 'verify', file, '--expect-pcr', `0=${toHex(H.PCR0)}`, '--trust-simulator-root', rootPem, ...extra], t);
  return { code, out: t.out() };
}

/** The honest log: job 1 released, job 2 refused (after admission), job 3 released; all on worker A. */
let log: { path: string; entries: AuditEntry[]; a: H.FakeWorker; j1: H.FakeJob; j2: H.FakeJob; j3: H.FakeJob; r3: string };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'enclavekit-attack06-'));
  ca = await createNitroSimCa({ now: H.T0 });
  rootPem = join(dir, 'sim-root.pem');
  await writeFile(rootPem, `-----BEGIN CERTIFICATE-----\n${Buffer.from(ca.rootDer).toString('base64')}\n-----END CERTIFICATE-----\n`);
  const a = new H.FakeWorker(H.nitroAttest(ca));
  const j1 = await a.result();
  const j2 = await a.refusal({ code: 'ERR_JOB_REFUSED', reason: 'refused' });
  const j3 = await a.result();
  const path = fresh();
  await H.writeLog(path, [j1.record, j2.record, j3.record]);
  // The analyst keeps the result file of job 3, as `enclavekit run --out` wrote it.
  const r3 = join(dir, 'r3.json');
  await writeFile(r3, JSON.stringify({ ok: true, jobId: j3.record.jobId, resultCborBase64: H.b64(j3.bytes), evidenceBase64: H.b64(j3.evidence) }));
  log = { path, entries: await H.readEntries(path), a, j1, j2, j3, r3 };
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The host's edit, then the host chain recomputed so every prev/hash is consistent again. */
async function rewrite(edit: (es: AuditEntry[]) => AuditEntry[]): Promise<string> {
  const p = fresh();
  await H.writeEntries(p, H.rechain(edit(structuredClone(log.entries))));
  return p;
}

describe('attack 06: rewriting the audit log', () => {
  it('the honest log verifies (with the later result file)', async () => {
    const r = await auditVerify(log.path, ['--result', log.r3]);
    expect(r.out).toMatch(/audit log intact: 3 entries; evidence of 3 attested document\(s\) re-verified/);
    expect(r.code).toBe(0);
  });

  it('a refused entry edited into a clean success, host chain recomputed: the evidence no longer verifies', async () => {
    const forged = await rewrite((es) => {
      const e = es[1]!;
      const d = decodeAttestedDocument(new Uint8Array(Buffer.from(e.document!, 'base64')));
      if (d.kind !== 'refusal') throw new Error('expected the refusal');
      // A result document for the same job, at the same place in the worker's chain, with the same ledger.
      const result = encodeResult({
        version: 2,
        jobId: d.doc.jobId,
        datasetId: d.doc.datasetId,
        datasetDigest: H.DATASET_DIGEST,
        sealDigest: d.doc.sealDigest!,
        keyArns: [H.KEY_ARN],
        query: H.QUERY,
        queryDigest: d.doc.queryDigest,
        counts: { records: 80, matched: 80, groups: 1, suppressedGroups: 0 },
        groups: [{ key: ['eu'], count: 80, aggregates: { n: 80 } }],
        privacy: { minGroupSize: 10, dp: null },
        ledger: d.doc.ledger!,
        audit: d.doc.audit,
        platform: d.doc.platform,
        workerVersion: d.doc.workerVersion,
      });
      Object.assign(e, { outcome: 'released', code: null, reason: null, document: H.b64(result) });
      return es;
    });
    const r = await auditVerify(forged);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/BROKEN at line 2 \(evidence\)/);
    // Chain-only mode reports it too here (the next document links to the refusal), but says it is weaker.
    const c = await (await import('../../host/audit.js')).verifyAuditLog(forged);
    expect(c.firstBroken).toMatchObject({ line: 3, reason: 'worker_chain' });
  });

  it('a genuine success of another job swapped in (its own evidence, nonce and key): the refusal is missing from the chain', async () => {
    // The host ran the same query again on a second worker of the same image, and got a real result.
    const other = new H.FakeWorker(H.nitroAttest(ca));
    other.adoptLedger(3);
    const elsewhere = await other.result();
    const forged = await rewrite((es) => {
      const e = es[1]!;
      const r = elsewhere.record;
      Object.assign(e, {
        jobId: r.jobId,
        outcome: 'released',
        code: null,
        reason: null,
        document: H.b64(elsewhere.bytes),
        evidence: H.b64(elsewhere.evidence),
        nonce: toHex(elsewhere.nonce),
        publicKey: H.b64(other.publicKey),
        time: r.time,
      });
      return es;
    });
    const r = await auditVerify(forged);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/BROKEN at line 3 \(dropped\)/);
  });

  it('the refused entry dropped: a gap in the worker chain', async () => {
    const r = await auditVerify(await rewrite((es) => [es[0]!, es[2]!]));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/BROKEN at line 2 \(dropped\).*1 document\(s\) missing/);
  });

  it('the tail cut off: reported against the result file of the later job (and invisible without it)', async () => {
    const cut = await rewrite((es) => es.slice(0, 2));
    const r = await auditVerify(cut, ['--result', log.r3]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/BROKEN at line 3 \(cut_off\).*r3\.json/);
    expect((await auditVerify(cut)).code).toBe(0);
  });

  it('a ledger rollback: the worker restarted with an older sealed ledger issues a generation twice', async () => {
    const b = new H.FakeWorker(H.nitroAttest(ca));
    b.adoptLedger(1); // the host hands back the ledger as it was after job 1
    const j4 = await b.result();
    const p = fresh();
    await H.writeLog(p, [log.j1.record, log.j2.record, log.j3.record, j4.record]);
    const r = await auditVerify(p);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/BROKEN at line 4 \(rollback\).*generation 2/);
  });

  it('skipping the evidence needs saying so: no expectations is a usage error', async () => {
    const { main } = await import('../../host/cli/main.js');
    expect(await main(['audit', 'verify', log.path], io())).toBe(2);
  });
});
