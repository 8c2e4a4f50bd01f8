/**
 * `enclavekit demo` (`npm run demo`): the whole pipeline on this machine in simulator mode.
 *
 *  1. a temporary simulator state; a simulated worker (image A) as its own process on a Unix socket
 *  2. the KMS simulator on a free loopback port, trusting that state's simulator root, and the KMS
 *     proxy in front of it (Unix socket in, TCP out, allow-listed to the simulator only)
 *  3. a KMS key whose policy (as `enclavekit policy` builds it) releases data keys only to image A's PCR0
 *  4. a seeded synthetic dataset (100k customers), its PII and spend/complaint fields encrypted
 *  5. a query run through the worker; the attested result verified and printed as a table
 *  6. a worker built as a different image (B): KMS refuses it the key
 *
 * Everything runs under one temporary folder, removed on every path, and every process it started
 * is stopped.
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { toHex } from '../../attestation/bytes.js';
import { connectEnclave } from '../enclave-conn.js';
import { encryptDataset, KmsDataKeySource } from '../encrypt.js';
import { REGIONS, writeSyntheticDataset } from '../synthetic.js';
import type { ReleasePolicy } from '../../enclave/protocol/index.js';
import { runJob, type RunOutcome } from '../run.js';
import { startSimStack, simImageId, type SimStack } from '../sim-stack.js';
import { packageRoot } from '../worker-process.js';
import { createProgress, type TerminalProgress } from '../progress.js';
import { appendAuditEntry, auditRecordFromOutcome, verifyAuditLog } from '../audit.js';
import { EXIT_INVALID, EXIT_OK, UsageError, errorJson, exitCodeOf, usage, writeJson, type CliIO } from './io.js';

const HELP = `usage: enclavekit demo [--records N] [--verbose] [--json]

Runs the pipeline end to end in simulator mode: KMS simulator, key policy bound to the worker
image's PCR0, synthetic dataset with encrypted fields, worker process, attested and verified
aggregates; then shows KMS denying the key to a worker built as a different image.

  --records N   dataset size (default 100000)
  --verbose     print worker, proxy and KMS log lines (on standard error)
  --json        print one JSON object with the outcome of each step on standard output; the
                narration goes to standard error

Exit status: 0 the result verified, the policy-breaking query was refused and image B was denied;
1 one of those did not hold; 2 usage; 3 the simulator stack could not start or failed.
`;

export const DEMO_QUERY = {
  version: 1,
  groupBy: ['region'],
  aggregates: [
    { name: 'customers', op: 'count' },
    { name: 'spend_mean', op: 'mean', field: 'orders.total' },
    { name: 'spend_stddev', op: 'stddev', field: 'orders.total' },
    { name: 'spend_quantiles', op: 'quantiles', field: 'orders.total', q: [0.5, 0.9] },
    { name: 'complaint_terms', op: 'topTerms', field: 'complaint', k: 3 },
    { name: 'sentiment', op: 'sentiment', field: 'complaint' },
  ],
  privacy: { minGroupSize: 10 },
};

export const DEMO_FIELDS = ['name', 'email', 'phone', 'address', 'orders.total', 'complaint'];

/**
 * The data owner's release policy, sealed into the manifest: group by region only (a declared public
 * domain), aggregates over spend and complaint texts only, exact aggregates allowed for this demo's
 * trusted analysts (DP remains available within the epsilon range and budget).
 */
export const DEMO_POLICY: ReleasePolicy = {
  version: 1,
  minGroupSize: 10,
  dimensions: { region: { domain: [...REGIONS] } },
  aggregates: {
    'orders.total': { ops: ['sum', 'mean', 'stddev', 'quantiles', 'histogram'], bounds: [0, 10_000] },
    complaint: { ops: ['topTerms', 'sentiment'] },
  },
  filters: { region: ['eq', 'in'] },
  dp: { required: false, epsilonMin: 0.1, epsilonMax: 1, budget: 10, delta: 1e-6 },
  exactExtrema: true,
};

/** A query the owner's policy refuses: grouping by a personal field. */
export const DEMO_REFUSED_QUERY = {
  version: 1,
  groupBy: ['email'],
  aggregates: [{ name: 'n', op: 'count' }],
};

const num = (v: unknown, d = 2): string => (typeof v === 'number' ? v.toFixed(d) : '-');

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 || i === r.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

export function renderAggregates(out: Extract<RunOutcome, { ok: true }>): string {
  const rows: string[][] = [['region', 'customers', 'mean spend', 'stddev', 'median', 'p90', 'sentiment', 'top complaint terms']];
  for (const g of out.result.groups) {
    const a = g.aggregates as Record<string, unknown>;
    const qs = (a.spend_quantiles as { q: number; value: number }[] | null) ?? [];
    const terms = (a.complaint_terms as { term: string; count: number }[] | null) ?? [];
    const s = a.sentiment as { mean?: number | null } | null;
    rows.push([
      String(g.key[0]),
      String(g.count),
      num(a.spend_mean),
      num(a.spend_stddev),
      num(qs.find((q) => q.q === 0.5)?.value),
      num(qs.find((q) => q.q === 0.9)?.value),
      num(s?.mean, 3),
      terms.map((t) => t.term).join(', '),
    ]);
  }
  const c = out.result.counts;
  return `${table(rows)}\n${c.records} records, ${c.groups} groups released, ${c.suppressedGroups} suppressed (fewer than ${out.result.privacy.minGroupSize} records)`;
}

/** The worker program's file: what the simulated image consists of. */
function workerBundle(): string {
  const root = packageRoot();
  const built = join(root, 'dist', 'enclave', 'cli.js');
  return import.meta.url.endsWith('.ts') || !existsSync(built) ? join(root, 'enclave', 'cli.ts') : built;
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = usage(() =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        records: { type: 'string' },
        verbose: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
    'demo',
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const records = values.records === undefined ? 100_000 : Number(values.records);
  if (!Number.isSafeInteger(records) || records < 1 || records > 10_000_000) throw new UsageError('--records must be an integer from 1 to 10000000');
  const json = values.json === true;
  // With --json, stdout carries only the final object; the narration goes to stderr.
  const say = (s: string) => (json ? io.stderr : io.stdout).write(`${s}\n`);
  const verbose = values.verbose === true;
  // Verbose log lines go around the progress bar while it is drawn.
  let bar: TerminalProgress | undefined;
  const log = (l: string) => verbose && (bar ? bar.log(l) : io.stderr.write(`${l}\n`));
  const fail = (code: string, message: string, exit: number, extra: Record<string, unknown> = {}): number => {
    say(message);
    if (json) writeJson(io.stdout, errorJson({ code, message }, exit, extra));
    return exit;
  };
  const t0 = performance.now();
  const secs = () => ((performance.now() - t0) / 1000).toFixed(1);

  let stack: SimStack | undefined;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    void stack?.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    stack = await startSimStack({ log });
    say(`enclavekit demo: simulator mode, temporary state in ${stack.dir}`);

    const bundle = await readFile(workerBundle());
    const imageA = simImageId([new Uint8Array(bundle)]);
    // Image B: the same bundle with one line appended, as a rebuilt or tampered image would be.
    const imageB = simImageId([new Uint8Array(bundle), new TextEncoder().encode('// patched build\n')]);
    const workerA = await stack.startWorker({ imageId: imageA, name: 'worker-a' });
    say(`[${secs()}s] worker image A started (pid ${workerA.pid}), PCR0 ${toHex(workerA.pcr0)}`);

    await stack.startKms();
    say(`[${secs()}s] KMS simulator on ${stack.kmsUrl} (trusting this demo's simulator root); KMS proxy on ${stack.kmsProxySocket}`);
    const keyId = await stack.createEnclaveKey(workerA.pcr0);
    say(`[${secs()}s] KMS key ${keyId} (created by the key admin): its policy lets only the data owner generate data keys and releases them only to the instance role with a Recipient attesting PCR0 = image A; the simulator checks each request's SigV4 signature and evaluates the policy for its signer`);

    const plain = join(stack.dir, 'customers.ndjson');
    await writeSyntheticDataset(plain, { count: records, seed: 42 });
    const encrypted = join(stack.dir, 'customers.enc.ndjson');
    // The data owner's credentials (a role session the stack made in its state folder): only it may
    // generate data keys under the key's policy.
    const kms = new KmsDataKeySource({ endpoint: stack.kmsUrl, region: 'us-east-1', credentials: await stack.credentials('data-owner') });
    let manifest;
    try {
      manifest = await encryptDataset({ input: plain, format: 'ndjson', fields: DEMO_FIELDS, idField: 'id', datasetId: 'demo-customers', keyId, kms, output: encrypted, policy: DEMO_POLICY });
    } finally {
      kms.client.destroy();
    }
    say(`[${secs()}s] synthetic dataset: ${records} customers (seed 42); encrypted fields: ${DEMO_FIELDS.join(', ')}`);

    const root = await stack.simulatorRoot();
    const st = stack;
    const roleCredentials = () => st.credentials('role');
    const query = DEMO_QUERY as unknown as Record<string, unknown>;
    const progress = (bar = createProgress({ stream: io.stderr as NodeJS.WritableStream & { isTTY?: boolean } }));
    const wA = workerA;
    const out = await runJob({
      dataset: encrypted,
      manifest,
      query,
      connect: () => connectEnclave({ kind: 'unix', path: wA.socketPath }),
      expect: { pcrs: new Map([[0, wA.pcr0]]), simulatorRoots: [root] },
      // The instance role's session: the worker signs its KMS Decrypt (with Recipient) with it.
      credentials: roleCredentials,
      now: io.now,
      progress,
    });
    if (!out.ok) return fail(out.error.code, `job FAILED at ${out.error.stage}: ${out.error.code}: ${out.error.message}`, exitCodeOf(out.error), { step: 'result' });
    await writeFile(join(stack.dir, 'result.cbor'), out.resultBytes);
    say(`[${secs()}s] job ${out.jobId}: aggregates from worker image A\n`);
    say(renderAggregates(out));
    say(
      `\nresult VERIFIED: simulator attestation (trusted explicitly: the simulator root of this demo's state), ` +
        `PCR0 ${out.verification.pcrs['0']} (image A), user_data = SHA-384(result) = ${out.resultDigest.slice(0, 24)}..., ` +
        `nonce and worker key match, dataset digest ${out.datasetDigest!.slice(0, 24)}...`,
    );

    const refused = await runJob({
      dataset: encrypted,
      manifest,
      query: DEMO_REFUSED_QUERY,
      connect: () => connectEnclave({ kind: 'unix', path: wA.socketPath }),
      expect: { pcrs: new Map([[0, wA.pcr0]]), simulatorRoots: [root] },
      // The instance role's session: the worker signs its KMS Decrypt (with Recipient) with it.
      credentials: roleCredentials,
      now: io.now,
    });
    if (refused.ok || refused.error.code !== 'ERR_QUERY_REFUSED' || !refused.refusal)
      return fail('ERR_DEMO_UNEXPECTED', `UNEXPECTED: the owner's release policy did not refuse grouping by email (${refused.ok ? 'released' : refused.error.code})`, EXIT_INVALID, { step: 'refusal' });
    say(
      `\n[${secs()}s] query grouping by email REFUSED by the owner's release policy before any key was fetched or record read ` +
        `(attested refusal, reason ${refused.refusal.doc.reason}): ${refused.error.message}`,
    );

    const workerB = await stack.startWorker({ imageId: imageB, name: 'worker-b' });
    say(`\n[${secs()}s] worker image B started (a different build), PCR0 ${toHex(workerB.pcr0)}`);
    const wB = workerB;
    const denied = await runJob({
      dataset: encrypted,
      manifest,
      query,
      connect: () => connectEnclave({ kind: 'unix', path: wB.socketPath }),
      expect: { pcrs: new Map([[0, wB.pcr0]]), simulatorRoots: [root] },
      credentials: roleCredentials,
      now: io.now,
    });
    if (denied.ok) return fail('ERR_DEMO_UNEXPECTED', 'UNEXPECTED: image B obtained the key; the key policy did not hold', EXIT_INVALID, { step: 'denial' });
    if (!/AccessDeniedException/.test(denied.error.message))
      return fail(denied.error.code, `UNEXPECTED failure for image B: ${denied.error.code}: ${denied.error.message}`, exitCodeOf(denied.error), { step: 'denial' });
    say(`[${secs()}s] KMS DENIED image B the data key: ${denied.error.message}`);
    say('nothing was released by image B: the job failed before any record was decrypted');
    const audit = join(stack.dir, 'audit.log');
    // The entries hold each job's attested result or refusal (what `enclavekit run --audit` writes). A
    // job denied its key may not have sent every record; it was about the same file as job A.
    await appendAuditEntry(audit, auditRecordFromOutcome(out), io.now);
    await appendAuditEntry(audit, auditRecordFromOutcome(refused, { datasetDigest: out.datasetDigest! }), io.now);
    await appendAuditEntry(audit, auditRecordFromOutcome(denied, { datasetDigest: out.datasetDigest! }), io.now);
    // Evidence mode: every entry's attestation is verified again, against either image.
    const chain = await verifyAuditLog(audit, {
      expect: [
        { pcrs: new Map([[0, wA.pcr0]]), simulatorRoots: [root] },
        { pcrs: new Map([[0, wB.pcr0]]), simulatorRoots: [root] },
      ],
    });
    if (!chain.ok) return fail('ERR_AUDIT_INVALID', `UNEXPECTED: the demo's audit log does not verify: ${JSON.stringify(chain.firstBroken)}`, EXIT_INVALID, { step: 'audit' });
    say(
      `audit log: ${chain.entries} entries (image A verified, the email query refused, image B denied), each with the ` +
        `worker's attested document; evidence re-verified, host and worker chains intact`,
    );
    say(`\ndemo finished in ${secs()} s`);
    if (json)
      writeJson(io.stdout, {
        ok: true,
        records,
        seconds: Number(secs()),
        result: {
          jobId: out.jobId,
          verified: true,
          platform: out.verification.platform,
          pcr0: out.verification.pcrs['0'],
          records: out.result.counts.records,
          groups: out.result.counts.groups,
          suppressedGroups: out.result.counts.suppressedGroups,
          resultDigest: out.resultDigest,
          aggregates: out.result.groups.map((g) => ({ key: g.key, count: g.count, aggregates: g.aggregates })),
        },
        refused: { jobId: refused.jobId, code: refused.error.code, reason: refused.error.reason ?? null, attested: true },
        denied: { jobId: denied.jobId, code: denied.error.code, reason: denied.error.reason ?? null, stage: denied.error.stage, pcr0: toHex(workerB.pcr0) },
        audit: { entries: chain.entries, ok: chain.ok, mode: chain.mode },
      });
    return EXIT_OK;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!interrupted) await stack?.close();
  }
}
