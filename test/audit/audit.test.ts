/**
 * The audit log v2 (host/audit.ts): entries carry the worker's attested documents; verify checks the
 * host chain, each entry against its document and evidence, the workers' own chains, the ledger and
 * documents held elsewhere. One negative case per check.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createHash } from 'node:crypto';
import { createNitroSimCa, exportNitroSimCa, type NitroSimCa } from '../../attestation/sim/nitro.js';
import { createSnpSimChain } from '../../attestation/sim/snp.js';
import { toHex } from '../../attestation/bytes.js';
import { SimSnpPlatform } from '../../enclave/platform/sim-snp.js';
import { decodeAttestedDocument, encodeCanonical, encodeResult, type ResultDocument } from '../../enclave/protocol/index.js';
import {
  AUDIT_MAX_LINE,
  appendAuditEntry,
  auditRecordFromOutcome,
  verifyAuditLog,
  type AuditEntry,
  type AuditVerifyOptions,
  type AuditVerifyResult,
} from '../../host/audit.js';
import type { RunOutcome } from '../../host/run.js';
import type { CliIO } from '../../host/cli/io.js';
import { expectCodeAsync } from '../pipeline/helpers.js';
import * as H from './helpers.js';

let dir: string;
let ca: NitroSimCa;
let counter = 0;
const fresh = (): string => join(dir, `log-${counter++}.jsonl`);
const EXPECT = (): AuditVerifyOptions => ({ expect: { pcrs: new Map([[0, H.PCR0]]), simulatorRoots: [ca.rootDer] } });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'enclavekit-audit-'));
  ca = await createNitroSimCa({ now: H.T0 });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Lines: 1 j1 released (A 0, gen 1), 2 j2 refused (A 1, gen 2), 3 failed, 4 j3 released (A 2, gen 3),
 * then the worker restarts with the host's sealed ledger: 5 j4 refused before admission (B 0, no
 * ledger), 6 j5 released (B 1, gen 4).
 */
async function standardLog() {
  const a = new H.FakeWorker(H.nitroAttest(ca));
  const j1 = await a.result();
  const j2 = await a.refusal();
  const failed = H.failedRecord('job-unreachable', new Date(H.T0.getTime() + 150_000));
  const j3 = await a.result();
  const b = new H.FakeWorker(H.nitroAttest(ca));
  b.adoptLedger(a.generation);
  const j4 = await b.refusal({ admitted: false, code: 'ERR_QUERY_REFUSED', reason: 'group_bound' });
  const j5 = await b.result();
  const path = fresh();
  await H.writeLog(path, [j1.record, j2.record, failed, j3.record, j4.record, j5.record]);
  return { path, a, b, j1, j2, j3, j4, j5, entries: await H.readEntries(path) };
}
let std: Awaited<ReturnType<typeof standardLog>>;
beforeAll(async () => {
  std = await standardLog();
});

/** As a hostile host would: edit entries, then recompute the whole host chain. */
async function tampered(edit: (es: AuditEntry[]) => AuditEntry[] | void, opts: AuditVerifyOptions = EXPECT()): Promise<AuditVerifyResult> {
  const es = structuredClone(std.entries);
  const out = edit(es) ?? es;
  const p = fresh();
  await H.writeEntries(p, H.rechain(out));
  return verifyAuditLog(p, opts);
}
const broken = (r: AuditVerifyResult) => ({ line: r.firstBroken?.line, reason: r.firstBroken?.reason });

describe('audit log v2: an intact log', () => {
  it('verifies with evidence re-checked, and says so; chain-only says it did not check evidence', async () => {
    expect(await verifyAuditLog(std.path, EXPECT())).toEqual({ ok: true, entries: 6, mode: 'evidence', checked: { documents: 5, evidence: 5, chains: 2, later: 0 } });
    expect(await verifyAuditLog(std.path)).toEqual({ ok: true, entries: 6, mode: 'chain-only', checked: { documents: 5, evidence: 0, chains: 2, later: 0 } });
    const e = std.entries;
    expect(e.map((x) => x.outcome)).toEqual(['released', 'refused', 'failed', 'released', 'refused', 'released']);
    expect(e[1]).toMatchObject({ v: 2, seq: 1, code: 'ERR_JOB_REFUSED', reason: 'refused', sealDigest: toHex(H.SEAL), publicKey: H.b64(std.a.publicKey), nonce: toHex(std.j2.nonce) });
    expect(e[2]).toMatchObject({ document: null, evidence: null, nonce: null, code: 'ERR_VSOCK_CONNECT' });
    expect(Buffer.from(e[0]!.document!, 'base64')).toEqual(Buffer.from(std.j1.bytes));
  });

  it('an empty log verifies; a missing file is an I/O error', async () => {
    const p = fresh();
    await writeFile(p, '');
    expect((await verifyAuditLog(p, EXPECT())).ok).toBe(true);
    await expect(verifyAuditLog(join(dir, 'nope.jsonl'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('expectations that name no image are refused up front', async () => {
    await expectCodeAsync(() => verifyAuditLog(std.path, { expect: { simulatorRoots: [ca.rootDer] } }), 'ERR_CONFIG_INVALID', 'no_expectations');
    await expectCodeAsync(() => verifyAuditLog(std.path, { expect: [] }), 'ERR_CONFIG_INVALID', 'no_expectations');
  });
});

describe('the host chain', () => {
  const lines = () => std.entries.map((e) => JSON.stringify(e));
  const raw = async (ls: string[], tail = '\n') => {
    const p = fresh();
    await writeFile(p, ls.join('\n') + tail);
    return verifyAuditLog(p, EXPECT());
  };

  it('names the first broken line: edited (hash), removed (seq), rehashed alone (prev), garbage, cut', async () => {
    const ls = lines();
    const edited = [...ls];
    edited[2] = edited[2]!.replace('job-unreachable', 'job-elsewhere');
    expect(broken(await raw(edited))).toEqual({ line: 3, reason: 'hash' });
    expect((await raw(edited)).entries).toBe(2);
    expect(broken(await raw([ls[0]!, ...ls.slice(2)]))).toEqual({ line: 2, reason: 'seq' });
    // An entry whose own hash is recomputed (but not the next entry's prev) breaks the next link.
    const body: Partial<AuditEntry> = { ...std.entries[2]!, reason: 'connect: something else' };
    delete body.hash;
    const e3 = { ...body, hash: createHash('sha384').update(encodeCanonical(body)).digest('hex') };
    expect(broken(await raw([ls[0]!, ls[1]!, JSON.stringify(e3), ...ls.slice(3)]))).toEqual({ line: 4, reason: 'prev' });
    expect(broken(await raw([...ls.slice(0, 3), 'not json']))).toEqual({ line: 4, reason: 'json' });
    expect(broken(await raw([...ls.slice(0, 3), JSON.stringify({ ...std.entries[3], extra: 1 })]))).toEqual({ line: 4, reason: 'unknown_key:extra' });
    expect(broken(await raw([...ls.slice(0, 3), JSON.stringify({ ...std.entries[3], nonce: 'zz' })]))).toEqual({ line: 4, reason: 'nonce' });
    expect(broken(await raw([...ls.slice(0, 3), ls[3]!.slice(0, 100)], ''))).toEqual({ line: 4, reason: 'truncated' });
  });

  it('refuses a v1 log by name (reason version)', async () => {
    const v1 = { v: 1, seq: 0, time: '2026-01-01T00:00:00.000Z', jobId: 'j', datasetId: 'd', datasetDigest: 'a'.repeat(96), queryDigest: 'b'.repeat(96), keyIds: [], platform: 'simulator', measurements: {}, resultDigest: null, verification: { ok: true }, prev: '0'.repeat(96), hash: 'c'.repeat(96) };
    const r = await raw([JSON.stringify(v1)]);
    expect(r.firstBroken).toMatchObject({ line: 1, reason: 'version' });
    expect(r.firstBroken!.detail).toMatch(/v1/);
  });

  it('an outcome must carry what it claims: released/refused need document, evidence and nonce; failed has none', async () => {
    const mk = (e: Partial<AuditEntry>) => JSON.stringify(H.rechain([{ ...std.entries[0]!, ...e }])[0]);
    expect(broken(await raw([mk({ evidence: null })]))).toEqual({ line: 1, reason: 'outcome' });
    expect(broken(await raw([mk({ nonce: null })]))).toEqual({ line: 1, reason: 'nonce' });
    expect(broken(await raw([mk({ outcome: 'failed', code: 'ERR_X', reason: 'x' })]))).toEqual({ line: 1, reason: 'outcome' });
    expect(broken(await raw([mk({ code: 'ERR_X' })]))).toEqual({ line: 1, reason: 'outcome' });
    expect(broken(await raw([mk({ document: 'not base64!' })]))).toEqual({ line: 1, reason: 'base64' });
    expect(broken(await raw([mk({ time: '2026-03-02' })]))).toEqual({ line: 1, reason: 'time' });
  });
});

describe('each entry against its document', () => {
  it('a document that does not decode: document_invalid', async () => {
    const r = await tampered((es) => void (es[0]!.document = H.b64(new Uint8Array([0xa0]))));
    expect(broken(r)).toEqual({ line: 1, reason: 'document_invalid' });
  });

  it('entry fields that disagree with the document: document_mismatch (each field)', async () => {
    const cases: [number, (e: AuditEntry) => void, RegExp][] = [
      [1, (e) => void (e.jobId = 'job-other'), /jobId/],
      [1, (e) => void (e.datasetId = 'other'), /datasetId/],
      [1, (e) => void (e.sealDigest = 'ab'.repeat(48)), /sealDigest/],
      [1, (e) => void (e.queryDigest = 'ab'.repeat(48)), /queryDigest/],
      [1, (e) => void (e.datasetDigest = 'ab'.repeat(48)), /datasetDigest/],
      [1, (e) => void (e.keyIds = ['arn:aws:kms:us-east-1:999999999999:key/x']), /keyIds/],
      [1, (e) => void (e.platform = 'nitro'), /platform/],
      [2, (e) => void Object.assign(e, { outcome: 'released', code: null, reason: null }), /outcome/],
      [2, (e) => void (e.reason = 'something nicer'), /reason/],
      [2, (e) => void (e.code = 'ERR_QUERY_REFUSED'), /code/],
      [1, (e) => void Object.assign(e, { outcome: 'refused', code: 'ERR_JOB_REFUSED', reason: 'refused' }), /outcome/],
    ];
    for (const [line, edit, detail] of cases) {
      const r = await tampered((es) => edit(es[line - 1]!));
      expect(broken(r)).toEqual({ line, reason: 'document_mismatch' });
      expect(r.firstBroken!.detail).toMatch(detail);
    }
  });

  it('recorded measurements must be the verified ones (evidence mode)', async () => {
    const edit = (es: AuditEntry[]) => void (es[3]!.measurements = { PCR0: toHex(H.OTHER_PCR0) });
    expect(broken(await tampered(edit))).toEqual({ line: 4, reason: 'document_mismatch' });
    // chain-only cannot tell
    expect((await tampered(edit, {})).ok).toBe(true);
  });

  it('a refusal before the seal was checked keeps the host seal digest', async () => {
    // Line 5 is a refusal that names no seal: the entry's own value is not contradicted.
    expect(std.entries[4]!.sealDigest).toBe(toHex(H.SEAL));
    expect((await tampered((es) => void (es[4]!.sealDigest = null))).ok).toBe(true);
  });
});

describe('evidence (re-verified at the entry time)', () => {
  it('fails for another image, an untrusted root, a changed nonce, key or time, swapped evidence', async () => {
    let r = await verifyAuditLog(std.path, { expect: { pcrs: new Map([[0, H.OTHER_PCR0]]), simulatorRoots: [ca.rootDer] } });
    expect(broken(r)).toEqual({ line: 1, reason: 'evidence' });
    expect(r.firstBroken!.detail).toMatch(/PCR0/);
    r = await verifyAuditLog(std.path, { expect: { pcrs: new Map([[0, H.PCR0]]) } });
    expect(broken(r)).toEqual({ line: 1, reason: 'evidence' });
    expect(broken(await tampered((es) => void (es[1]!.nonce = toHex(new Uint8Array(32)))))).toEqual({ line: 2, reason: 'evidence' });
    expect(broken(await tampered((es) => void (es[1]!.publicKey = H.b64(new Uint8Array(91).fill(7)))))).toEqual({ line: 2, reason: 'evidence' });
    // The simulator leaf lives 3 hours: two days later it has expired.
    expect(broken(await tampered((es) => void (es[1]!.time = new Date(H.T0.getTime() + 2 * 86_400_000).toISOString())))).toEqual({ line: 2, reason: 'evidence' });
    expect(broken(await tampered((es) => void (es[1]!.evidence = es[0]!.evidence)))).toEqual({ line: 2, reason: 'evidence' });
  });

  it('a document edited in place (same chain link) fails its evidence; chain-only sees it only at the next link', async () => {
    const editLine = async (line: number, opts: AuditVerifyOptions) =>
      tampered((es) => {
        const e = es[line - 1]!;
        const d = decodeAttestedDocument(new Uint8Array(Buffer.from(e.document!, 'base64')));
        if (d.kind !== 'result') throw new Error('expected a result');
        const forged: ResultDocument = { ...d.doc, groups: d.doc.groups.map((g) => ({ ...g, count: g.count + 1000 })) };
        e.document = H.b64(encodeResult(forged));
      }, opts);
    expect(broken(await editLine(1, EXPECT()))).toEqual({ line: 1, reason: 'evidence' });
    expect(broken(await editLine(1, {}))).toEqual({ line: 2, reason: 'worker_chain' });
    // The last document of an instance has no next link: only the evidence catches that edit.
    expect(broken(await editLine(6, EXPECT()))).toEqual({ line: 6, reason: 'evidence' });
    expect((await editLine(6, {})).ok).toBe(true);
  });

  it('several accepted images: an entry verifies if any accepts it', async () => {
    const a = new H.FakeWorker(H.nitroAttest(ca));
    const b = new H.FakeWorker(H.nitroAttest(ca, H.OTHER_PCR0), { measurements: { PCR0: toHex(H.OTHER_PCR0) } });
    b.adoptLedger(1);
    const p = fresh();
    await H.writeLog(p, [(await a.result()).record, (await b.result()).record]);
    const imgA = { pcrs: new Map([[0, H.PCR0]]), simulatorRoots: [ca.rootDer] };
    const imgB = { pcrs: new Map([[0, H.OTHER_PCR0]]), simulatorRoots: [ca.rootDer] };
    expect(broken(await verifyAuditLog(p, { expect: imgA }))).toEqual({ line: 2, reason: 'evidence' });
    expect(await verifyAuditLog(p, { expect: [imgA, imgB] })).toMatchObject({ ok: true, checked: { evidence: 2, chains: 2 } });
  });

  it('SEV-SNP evidence needs the worker key recorded beside it', async () => {
    const chain = await createSnpSimChain({ now: H.T0, rsaBits: 2048 });
    const measurement = new Uint8Array(48).fill(0x3c);
    const platform = new SimSnpPlatform({ chain, measurement });
    const w = new H.FakeWorker((o) => platform.attest(o), { measurements: { MEASUREMENT: toHex(measurement) } });
    const p = fresh();
    await H.writeLog(p, [(await w.result()).record, (await w.refusal()).record]);
    const expect_ = { expect: { measurement, snpSimulatorRoots: [chain.ark.der] } };
    expect(await verifyAuditLog(p, expect_)).toMatchObject({ ok: true, checked: { evidence: 2 } });
    const es = await H.readEntries(p);
    const q = fresh();
    await H.writeEntries(q, H.rechain(es.map((e, i) => (i === 1 ? { ...e, publicKey: null } : e))));
    expect(broken(await verifyAuditLog(q, expect_))).toEqual({ line: 2, reason: 'evidence' });
    expect(broken(await verifyAuditLog(p, { expect: { measurement: new Uint8Array(48), snpSimulatorRoots: [chain.ark.der] } }))).toEqual({ line: 1, reason: 'evidence' });
  });
});

describe("the workers' own chains", () => {
  it('a dropped entry leaves a gap (dropped); so does a log whose first entry of an instance is not its seq 0', async () => {
    const r = await tampered((es) => es.filter((_, i) => i !== 1));
    expect(broken(r)).toEqual({ line: 3, reason: 'dropped' });
    expect(r.firstBroken!.detail).toMatch(/1 document\(s\) missing/);
    expect(broken(await tampered((es) => es.slice(1)))).toEqual({ line: 1, reason: 'dropped' });
    // also in chain-only mode: the links are in the signed documents
    expect(broken(await tampered((es) => es.filter((_, i) => i !== 1), {}))).toEqual({ line: 3, reason: 'dropped' });
    // the whole second instance dropped from the start but its later entries kept
    expect(broken(await tampered((es) => es.filter((_, i) => i !== 4)))).toEqual({ line: 5, reason: 'dropped' });
  });

  it('reordered or replayed entries are reported', async () => {
    expect(broken(await tampered((es) => [es[0]!, es[3]!, es[2]!, es[1]!, es[4]!, es[5]!]))).toEqual({ line: 2, reason: 'dropped' });
    expect(broken(await tampered((es) => [...es.slice(0, 4), es[1]!, ...es.slice(4)]))).toEqual({ line: 5, reason: 'reordered' });
    expect(broken(await tampered((es) => [es[0]!, es[0]!, ...es.slice(1)]))).toEqual({ line: 2, reason: 'reordered' });
  });

  it('one instance with two worker keys (chain-only; with evidence the key is attested)', async () => {
    const edit = (es: AuditEntry[]) => void (es[3]!.publicKey = H.b64(new Uint8Array(91).fill(9)));
    expect(broken(await tampered(edit, {}))).toEqual({ line: 4, reason: 'worker_chain' });
    expect(broken(await tampered(edit))).toEqual({ line: 4, reason: 'evidence' });
  });

  it('the first document of an instance must start at the genesis head', async () => {
    // A document claiming seq 0 with another prev (forged; chain-only mode cannot check its evidence).
    const r = await tampered((es) => {
      const d = decodeAttestedDocument(new Uint8Array(Buffer.from(es[0]!.document!, 'base64')));
      if (d.kind !== 'result') throw new Error('expected a result');
      es[0]!.document = H.b64(encodeResult({ ...d.doc, audit: { ...d.doc.audit, prev: new Uint8Array(48).fill(1) } }));
    }, {});
    expect(broken(r)).toEqual({ line: 1, reason: 'worker_chain' });
  });
});

describe('the privacy ledger (rollback)', () => {
  it('a restarted worker given no sealed ledger reuses generation 1: rollback', async () => {
    const a = new H.FakeWorker(H.nitroAttest(ca));
    const b = new H.FakeWorker(H.nitroAttest(ca));
    const p = fresh();
    await H.writeLog(p, [(await a.result()).record, (await a.result()).record, (await b.result()).record]);
    const r = await verifyAuditLog(p, EXPECT());
    expect(broken(r)).toEqual({ line: 3, reason: 'rollback' });
    expect(r.firstBroken!.detail).toMatch(/generation 1 .* twice/);
  });

  it('an older sealed ledger handed to a new instance: rollback even without a repeated generation', async () => {
    const a = new H.FakeWorker(H.nitroAttest(ca));
    const j1 = await a.result(); // gen 1
    a.generation++; // gen 2: an admitted job that died without a document
    const j3 = await a.result(); // gen 3
    const b = new H.FakeWorker(H.nitroAttest(ca));
    b.adoptLedger(1); // the host hands back generation 1
    const p = fresh();
    await H.writeLog(p, [j1.record, H.failedRecord('job-died', new Date(H.T0.getTime() + 90_000)), j3.record, (await b.result()).record]);
    const r = await verifyAuditLog(p, EXPECT());
    expect(broken(r)).toEqual({ line: 4, reason: 'rollback' });
    expect(r.firstBroken!.detail).toMatch(/generation 2 .* after generation 3/);
  });

  it('the latest sealed ledger handed on, and concurrent jobs of one worker finishing out of order, are fine', async () => {
    const a = new H.FakeWorker(H.nitroAttest(ca));
    const j1 = await a.result({ generation: 2 });
    const j2 = await a.result({ generation: 1 });
    const b = new H.FakeWorker(H.nitroAttest(ca));
    b.adoptLedger(2);
    const p = fresh();
    await H.writeLog(p, [j1.record, j2.record, (await b.result()).record]);
    expect((await verifyAuditLog(p, EXPECT())).ok).toBe(true);
  });
});

describe('documents held elsewhere (later): a cut-off tail', () => {
  it('a later document in the log is found; cut off, it is reported', async () => {
    expect(await verifyAuditLog(std.path, { ...EXPECT(), later: [{ document: std.j5.bytes }, { document: std.j1.bytes }] })).toMatchObject({ ok: true, checked: { later: 2 } });
    let r = await tampered((es) => es.slice(0, 5), { ...EXPECT(), later: [{ document: std.j5.bytes, label: 'r5.json' }] });
    expect(broken(r)).toEqual({ line: 6, reason: 'cut_off' });
    expect(r.firstBroken!.detail).toMatch(/r5\.json .*log ends at its document 0/);
    // the whole second worker instance cut off
    r = await tampered((es) => es.slice(0, 4), { ...EXPECT(), later: [{ document: std.j5.bytes }] });
    expect(broken(r)).toEqual({ line: 5, reason: 'cut_off' });
    expect(r.firstBroken!.detail).toMatch(/nor any entry of that worker instance/);
    // without the later document the cut is invisible
    expect((await tampered((es) => es.slice(0, 4))).ok).toBe(true);
  });

  it('a different document at the same place: later_mismatch; not a document at all: ERR_RESULT_INVALID', async () => {
    const d = decodeAttestedDocument(std.j3.bytes);
    if (d.kind !== 'result') throw new Error('expected a result');
    const other = encodeResult({ ...d.doc, counts: { ...d.doc.counts, suppressedGroups: 1 } });
    const r = await verifyAuditLog(std.path, { ...EXPECT(), later: [{ document: other }] });
    expect(broken(r)).toEqual({ line: 7, reason: 'later_mismatch' });
    await expectCodeAsync(() => verifyAuditLog(std.path, { later: [{ document: new Uint8Array([1, 2, 3]) }] }), 'ERR_RESULT_INVALID');
  });
});

describe('appendAuditEntry', () => {
  it('refuses to extend a v1 log, an edited tail or a partial line', async () => {
    const p = fresh();
    await writeFile(p, JSON.stringify({ v: 1, seq: 0 }) + '\n');
    await expectCodeAsync(() => appendAuditEntry(p, std.j1.record), 'ERR_AUDIT_INVALID', 'version');
    const q = fresh();
    await H.writeLog(q, [std.j1.record]);
    await writeFile(q, (await readFile(q, 'utf8')).replace(std.j1.record.jobId, 'job-x'));
    await expectCodeAsync(() => appendAuditEntry(q, std.j2.record), 'ERR_AUDIT_INVALID', 'hash');
    await appendFile(q, '{"partial');
    await expectCodeAsync(() => appendAuditEntry(q, std.j2.record), 'ERR_AUDIT_INVALID', 'truncated');
  });

  it('refuses a record that contradicts its own document, or an outcome without its document', async () => {
    const p = fresh();
    await expect(appendAuditEntry(p, { ...std.j2.record, outcome: 'released', code: null, reason: null })).rejects.toThrow(TypeError);
    await expect(appendAuditEntry(p, { ...std.j1.record, jobId: 'job-else' })).rejects.toThrow(/jobId/);
    await expect(appendAuditEntry(p, { ...std.j1.record, document: null })).rejects.toThrow(/outcome/);
    await expect(appendAuditEntry(p, { ...std.j1.record, time: 'yesterday' })).rejects.toThrow(TypeError);
  });

  it('chains after a last line longer than its read-back chunk', async () => {
    const w = new H.FakeWorker(H.nitroAttest(ca));
    const big = await w.result({ groups: 4000 });
    expect(big.bytes.length).toBeGreaterThan(100_000);
    const p = fresh();
    await H.writeLog(p, [big.record, (await w.refusal()).record, (await w.result({ groups: 3000 })).record, (await w.result()).record]);
    expect(await verifyAuditLog(p, EXPECT())).toMatchObject({ ok: true, entries: 4 });
    expect(AUDIT_MAX_LINE).toBeGreaterThan(4 * Math.ceil((8 * 1024 * 1024) / 3));
  });
});

describe('auditRecordFromOutcome', () => {
  it('builds released, refused and failed records from a RunOutcome; they verify', async () => {
    const w = new H.FakeWorker(H.nitroAttest(ca));
    const ok = await w.result();
    const ref = await w.refusal({ code: 'ERR_PRIVACY_BUDGET', reason: 'exhausted' });
    const worker = { format: 'nitro' as const, platform: 'simulator' as const, pcrs: { '0': toHex(H.PCR0), '7': 'ee'.repeat(48) }, publicKey: w.publicKey };
    const summary = { jobId: '', datasetId: H.DATASET_ID, queryDigest: toHex(decodeAttestedDocument(ok.bytes).doc.queryDigest), records: 80, keyIds: [H.KEY_ARN], sealDigest: toHex(H.SEAL), worker };
    const released = {
      ...summary,
      jobId: ok.record.jobId,
      datasetDigest: toHex(H.DATASET_DIGEST),
      jobNonce: ok.nonce,
      ok: true,
      result: decodeAttestedDocument(ok.bytes).doc as ResultDocument,
      resultBytes: ok.bytes,
      resultDigest: '00'.repeat(48),
      evidence: ok.evidence,
      verification: worker,
    } as RunOutcome;
    const refDoc = decodeAttestedDocument(ref.bytes);
    if (refDoc.kind !== 'refusal') throw new Error('expected a refusal');
    const refused = {
      ...summary,
      jobId: ref.record.jobId,
      jobNonce: ref.nonce,
      ok: false,
      error: { code: 'ERR_PRIVACY_BUDGET', message: 'the worker refused the job', stage: 'stream' },
      refusal: { doc: refDoc.doc, bytes: ref.bytes, evidence: ref.evidence, verification: worker },
    } as RunOutcome;
    const failed = { ...summary, jobId: 'job-f', ok: false, error: { code: 'ERR_VSOCK_CONNECT', message: 'refused', stage: 'connect' } } as RunOutcome;

    const r1 = auditRecordFromOutcome(released, { time: ok.record.time! });
    expect(r1).toMatchObject({ outcome: 'released', code: null, reason: null, measurements: { PCR0: toHex(H.PCR0) }, nonce: ok.nonce, publicKey: w.publicKey, platform: 'simulator' });
    expect(r1.measurements).not.toHaveProperty('PCR7');
    expect(() => auditRecordFromOutcome(refused)).toThrow(/datasetDigest/);
    const r2 = auditRecordFromOutcome(refused, { datasetDigest: toHex(H.DATASET_DIGEST), time: ref.record.time! });
    expect(r2).toMatchObject({ outcome: 'refused', code: 'ERR_PRIVACY_BUDGET', reason: 'exhausted', document: ref.bytes });
    const r3 = auditRecordFromOutcome(failed, { datasetDigest: toHex(H.DATASET_DIGEST) });
    expect(r3).toMatchObject({ outcome: 'failed', code: 'ERR_VSOCK_CONNECT', reason: 'connect: ERR_VSOCK_CONNECT: refused', document: null, evidence: null, nonce: null });
    const p = fresh();
    await H.writeLog(p, [r1, r2, r3]);
    expect(await verifyAuditLog(p, EXPECT())).toMatchObject({ ok: true, checked: { documents: 2, evidence: 2 } });
  });
});

function io(): CliIO & { out: () => string; err: () => string } {
  const o = new PassThrough();
  const e = new PassThrough();
  let so = '';
  let se = '';
  o.on('data', (c) => (so += c));
  e.on('data', (c) => (se += c));
  return { stdout: o, stderr: e, stdin: new PassThrough(), env: {}, now: () => H.T0, out: () => so, err: () => se };
}

describe('enclavekit audit verify', () => {
  const pem = (der: Uint8Array) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
  const main = async (args: string[]) => {
    const { main: m } = await import('../../host/cli/main.js');
    const t = io();
    const code = await m(['audit', ...args], t);
    return { code, out: t.out(), err: t.err() };
  };
  let rootPem: string;
  let state: string;
  beforeAll(async () => {
    rootPem = join(dir, 'root.pem');
    await writeFile(rootPem, pem(ca.rootDer));
    state = join(dir, 'state');
    await mkdir(state);
    await writeFile(join(state, 'sim-ca.json'), JSON.stringify(await exportNitroSimCa(ca)));
  });
  const pcr = () => ['--expect-pcr', `0=${toHex(H.PCR0)}`];

  it('requires expectations unless --chain-only, and not both', async () => {
    let r = await main(['verify', std.path]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--expect-pcr.*--chain-only/);
    r = await main(['verify', std.path, '--chain-only', ...pcr()]);
    expect(r.code).toBe(2);
    expect((await main(['verify', std.path, '--expect-pcr', '0=abcd'])).code).toBe(2);
    expect((await main(['verify'])).code).toBe(2);
    expect((await main(['verify', std.path, '--sim-state', join(dir, 'empty-state'), ...pcr()])).code).toBe(2);
  });

  it('exit 0 intact (says which mode ran), 1 broken, --json', async () => {
    let r = await main(['verify', std.path, ...pcr(), '--trust-simulator-root', rootPem]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/audit log intact: 6 entries; evidence of 5 attested document\(s\) re-verified.*2 worker chain/);
    r = await main(['verify', std.path, ...pcr(), '--sim-state', state]);
    expect(r.code).toBe(0);
    r = await main(['verify', std.path, '--chain-only']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/CHAIN ONLY: evidence NOT re-verified/);
    // without the simulator root the simulator evidence does not verify
    r = await main(['verify', std.path, ...pcr()]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/BROKEN at line 1 \(evidence\)/);
    r = await main(['verify', std.path, ...pcr(), '--trust-simulator-root', rootPem, '--json']);
    expect(JSON.parse(r.out)).toMatchObject({ ok: true, entries: 6, mode: 'evidence' });
  });

  it('--result: found in the log, or the tail was cut off', async () => {
    const resultFile = join(dir, 'r5.json');
    await writeFile(resultFile, JSON.stringify({ ok: true, jobId: std.j5.record.jobId, resultCborBase64: H.b64(std.j5.bytes), evidenceBase64: H.b64(std.j5.evidence) }));
    let r = await main(['verify', std.path, ...pcr(), '--trust-simulator-root', rootPem, '--result', resultFile]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/1 of 1 result file\(s\) found in the log/);
    const cut = fresh();
    await H.writeEntries(cut, std.entries.slice(0, 5));
    r = await main(['verify', cut, ...pcr(), '--trust-simulator-root', rootPem, '--result', resultFile]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/BROKEN at line 6 \(cut_off\)/);
    const notResult = join(dir, 'not-result.json');
    await writeFile(notResult, JSON.stringify({ resultCborBase64: H.b64(new Uint8Array([1, 2])) }));
    expect((await main(['verify', std.path, '--chain-only', '--result', notResult])).code).toBe(2);
    expect((await main(['verify', std.path, '--chain-only', '--result', join(dir, 'missing.json')])).code).toBe(2);
  });

  it('a v1 log is refused with reason version', async () => {
    const p = fresh();
    await writeFile(p, JSON.stringify({ v: 1, seq: 0 }) + '\n');
    const r = await main(['verify', p, '--chain-only']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/\(version\).*v1/);
  });
});

