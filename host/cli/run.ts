/**
 * `enclavekit run`: one query job against an enclave worker, with the result verified and audited.
 *
 *   enclavekit run --dataset FILE --manifest FILE --query FILE --enclave vsock:CID:PORT|unix:PATH|sim
 *     [--expect-pcr N=HEX]... [--expect-measurement HEX]
 *     [--trust-simulator-root PEM | --sim-state DIR] [--kms-allow HOST:PORT]... [--kms-allow-file YAML]
 *     [--kms-endpoint URL] [--kms-listen vsock:PORT|unix:PATH] [--image-id HEX | --image FILE]
 *     --out RESULT.json|- [--audit FILE] [--batch N] [--json]
 *
 * Exit (exit.ts): 0 the result verified; 1 a verdict (evidence, refusal, key denied; no RESULT.json
 * is written, the audit log says why); 2 usage or input; 3 the worker or KMS unreachable or failing.
 */
import { parseArgs } from 'node:util';
import { mkdtemp, readFile, rm, writeFile, rename, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ToolkitError, isToolkitError } from '../../attestation/errors.js';
import { toHex } from '../../attestation/bytes.js';
import { manifestBody, parseManifest, resultToJson, sealDigest, type KeyManifest } from '../../enclave/protocol/index.js';
import { appendAuditEntry, auditRecordFromOutcome } from '../audit.js';
import { connectEnclave, parseEnclaveTarget } from '../enclave-conn.js';
import { hostPortOfUrl, parseAllowlistYaml, parseHostPort, startKmsProxy, type HostPort, type KmsProxy } from '../kms-proxy.js';
import { readRootsPem, readSimulatorRootFromState } from '../kms-sim/sim-root.js';
import { datasetDigestOfFile, runJob, type RunOutcome } from '../run.js';
import { parentCredentials } from '../credentials.js';
import { readSnpSimulatorRootFromState, simImageIdFromFiles, simPcr0 } from '../sim-stack.js';
import { startWorkerProcess, type WorkerProcess } from '../worker-process.js';
import { createProgress, type TerminalProgress } from '../progress.js';
import { EXIT_OK, UsageError, errorJson, exitCodeOf, fileError, readInputFile, usage, writeJson, type CliIO } from './io.js';

const HELP = `usage: enclavekit run --dataset FILE --manifest FILE --query FILE --enclave TARGET --out RESULT.json [options]

Run a query over an encrypted dataset in an enclave worker; verify the attested result.

  --dataset FILE              NDJSON or CSV with fields encrypted by \`enclavekit encrypt\`
  --manifest FILE             its key manifest
  --query FILE                the query (JSON)
  --enclave TARGET            vsock:CID:PORT, unix:PATH, or sim (start a simulated worker process)
  --expect-pcr N=HEX          expected PCR N (repeatable); sim: defaults to the started image's PCR0
  --expect-measurement HEX    expected SEV-SNP MEASUREMENT
  --trust-simulator-root PEM  trust this simulator root (simulator evidence only verifies with it)
  --sim-state DIR             simulator state folder (its root is trusted; sim: the worker's state)
  --image-id HEX | --image F  sim: the simulated worker image (default: the worker bundle, whose
                              PCR0 \`enclavekit sim image-id\` prints)
  --kms-endpoint URL          KMS endpoint the worker uses (sim); the proxy forwards to it
  --kms-allow HOST:PORT       allow the KMS proxy to reach this endpoint (repeatable)
  --kms-allow-file YAML       allowlist in vsock-proxy's format
  --kms-listen EP             where the KMS proxy listens for a real enclave: vsock:PORT or unix:PATH
  --out RESULT.json           result: aggregates, evidence (base64) and verification outcome;
                              - writes it to standard output (the summary then goes to standard error)
  --audit FILE                append an audit entry with the worker's attested result or refusal (also on failure)
  --ledger FILE               keep the datasets' sealed privacy ledgers here (JSON); sent to the worker
                              with each job and replaced by what it returns, so a restarted worker
                              still knows what each dataset has spent
  --batch N                   records per frame (default 500)
  --credentials chain|none    the AWS credentials handed to the attested worker for its KMS requests:
                              chain (default) = the AWS SDK's default provider chain on this host
                              (instance profile via IMDSv2, environment, SSO, ...); none = send none
                              (the worker then refuses the job: ERR_KMS_REQUEST, no_credentials).
                              Simulated workers need a simulator principal's, e.g. eval "$(enclavekit
                              sim kms credentials add --state DIR --principal ROLE_ARN --session)"
  --allow-long-term-credentials  also hand over long-term access keys (no session token)
  --json                      print one JSON object: a summary of the verified result, or
                              {"ok":false,"code","reason","stage","message","exit"}

Exit status: 0 the result verified, 1 refused or did not verify (evidence, release policy, key
denied), 2 usage or input error, 3 the worker or KMS unreachable or failing, or a timeout.
`;

function hexArg(v: string, label: string, len?: number): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(v) || (len !== undefined && v.length !== len * 2))
    throw new UsageError(`${label} expects ${len === undefined ? 'hex' : `${len * 2} hex digits`}`);
  return new Uint8Array(Buffer.from(v, 'hex'));
}

/** The host's ledger file: seal digest (hex) -> base64 of the sealed ledger the worker returned. */
async function readLedgers(path: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw fileError(e, path, '--ledger');
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new UsageError(`--ledger: ${path} is not JSON`, { code: 'ERR_INPUT' });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Object.entries(v).some(([k, b]) => !/^[0-9a-f]{96}$/.test(k) || typeof b !== 'string' || b.length > 8192))
    throw new UsageError(`--ledger: ${path} is not a ledger file (seal digest -> base64)`, { code: 'ERR_INPUT' });
  return v as Record<string, string>;
}

/** Write atomically: a reader never sees a half-written result. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, path);
}

export function resultFileJson(out: Extract<RunOutcome, { ok: true }>): unknown {
  return {
    ok: true,
    jobId: out.jobId,
    result: resultToJson(out.result),
    resultDigest: out.resultDigest,
    resultCborBase64: Buffer.from(out.resultBytes).toString('base64'),
    evidenceBase64: Buffer.from(out.evidence).toString('base64'),
    // What the evidence binds besides the result: `enclavekit result verify` re-checks both offline.
    ...(out.jobNonce ? { nonce: Buffer.from(out.jobNonce).toString('hex') } : {}),
    ...(out.verification.publicKey ? { publicKeyBase64: Buffer.from(out.verification.publicKey).toString('base64') } : {}),
    verification: {
      verified: true,
      format: out.verification.format,
      platform: out.verification.platform,
      pcrs: out.verification.pcrs,
      ...(out.verification.measurement ? { measurement: out.verification.measurement } : {}),
      checks: ['evidence chain and signature', 'expected measurements', 'nonce', 'user_data = SHA-384(result)', 'same worker key as the hello attestation', 'job, dataset digest, query digest and record count'],
    },
  };
}

/** What to do about a failed job, where the error alone does not say (the endpoint, the key). */
function failureHint(error: { code: string; reason?: string }, ctx: { target: string; kmsEndpoint: string | undefined; manifest: KeyManifest }): string | undefined {
  if (error.code === 'ERR_JOB_FAILED' && (error.reason === 'connect' || error.reason === 'connect_timeout'))
    return ctx.target === 'sim' ? 'the simulated worker did not accept the connection' : `is the worker running and listening at ${ctx.target} (\`enclavekit enclave --listen ...\`)?`;
  if (error.code === 'ERR_KMS_UNREACHABLE')
    return `the worker could not reach KMS${ctx.kmsEndpoint ? ` at ${ctx.kmsEndpoint} (through the KMS proxy)` : ''}: is it running, and is it allow-listed (--kms-allow)?`;
  if (error.code === 'ERR_KMS_REQUEST' && error.reason === 'NotFoundException') {
    const arns = [...new Set(Object.values(ctx.manifest.keys).map((k) => k.keyId))];
    return `the manifest's key ${arns.join(', ')} does not exist${ctx.kmsEndpoint ? ` at ${ctx.kmsEndpoint}` : ''} (another account, region or KMS?)`;
  }
  if (error.code === 'ERR_KMS_REQUEST' && error.reason === 'AccessDeniedException')
    return "the key policy does not release the key to this worker's attested image (check the PCRs in `enclavekit policy`)";
  return undefined;
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = usage(() =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        dataset: { type: 'string' },
        manifest: { type: 'string' },
        query: { type: 'string' },
        enclave: { type: 'string' },
        'expect-pcr': { type: 'string', multiple: true },
        'expect-measurement': { type: 'string' },
        'trust-simulator-root': { type: 'string' },
        'sim-state': { type: 'string' },
        'image-id': { type: 'string' },
        image: { type: 'string', multiple: true },
        'kms-allow': { type: 'string', multiple: true },
        'kms-allow-file': { type: 'string' },
        'kms-endpoint': { type: 'string' },
        'kms-listen': { type: 'string' },
        credentials: { type: 'string' },
        'allow-long-term-credentials': { type: 'boolean' },
        out: { type: 'string' },
        audit: { type: 'string' },
        ledger: { type: 'string' },
        batch: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
    'run',
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const missing = (['dataset', 'manifest', 'query', 'enclave', 'out'] as const).filter((k) => !values[k]);
  if (missing.length > 0) throw new UsageError(`${missing.map((k) => `--${k}`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} required`, { help: 'run' });
  const json = values.json === true;
  const outPath = values.out!;
  const toStdout = outPath === '-';
  const target = (() => {
    try {
      return parseEnclaveTarget(values.enclave!);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  })();
  // Unset, runJob's own default applies (500: measured as the best overlap of host and worker).
  const batch = values.batch === undefined ? undefined : Number(values.batch);
  if (batch !== undefined && (!Number.isSafeInteger(batch) || batch < 1 || batch > 100_000)) throw new UsageError('--batch must be an integer from 1 to 100000');

  // Expectations: fail closed. A simulator root is trusted only when named.
  const pcrs = new Map<number, Uint8Array>();
  for (const p of values['expect-pcr'] ?? []) {
    const m = /^(?:PCR)?(\d{1,2})=([0-9a-fA-F]+)$/.exec(p);
    if (!m || Number(m[1]) > 31) throw new UsageError(`--expect-pcr expects N=HEX with N in 0..31, got ${p}`);
    const v = hexArg(m[2]!, `--expect-pcr ${m[1]}`);
    if (v.length !== 48) throw new UsageError('--expect-pcr values are 48 bytes (96 hex digits)');
    pcrs.set(Number(m[1]), v);
  }
  const measurement = values['expect-measurement'] ? hexArg(values['expect-measurement'], '--expect-measurement', 48) : undefined;
  if (values['trust-simulator-root'] && values['sim-state'] && target.kind !== 'sim')
    throw new UsageError('give --trust-simulator-root or --sim-state, not both');
  const simulatorRoots: Uint8Array[] = [];
  const snpSimulatorRoots: Uint8Array[] = [];
  if (values['trust-simulator-root']) simulatorRoots.push(...(await readRootsPem(values['trust-simulator-root'])));

  const manifestBytes = await readInputFile(values.manifest!, 16 * 1024 * 1024, '--manifest');
  const manifest: KeyManifest = parseManifest(new Uint8Array(manifestBytes));
  const queryBytes = await readInputFile(values.query!, 1024 * 1024, '--query');
  let query: Record<string, unknown>;
  try {
    const q: unknown = JSON.parse(queryBytes.toString('utf8'));
    if (q === null || typeof q !== 'object' || Array.isArray(q)) throw new Error('not an object');
    query = q as Record<string, unknown>;
  } catch {
    throw new UsageError(`--query: ${values.query} is not a JSON object`, { code: 'ERR_INPUT' });
  }
  await readInputFile(values.dataset!, Number.MAX_SAFE_INTEGER, '--dataset');

  // The KMS proxy: only to allow-listed endpoints.
  const allow: HostPort[] = [];
  try {
    for (const a of values['kms-allow'] ?? []) allow.push(parseHostPort(a));
    if (values['kms-allow-file']) allow.push(...parseAllowlistYaml((await readInputFile(values['kms-allow-file'], 1024 * 1024, '--kms-allow-file')).toString('utf8')));
  } catch (e) {
    if (isToolkitError(e)) throw new UsageError(e.message);
    throw e;
  }

  // Log lines (the worker's, the KMS proxy's) go around the progress bar while it is drawn.
  let bar: TerminalProgress | undefined;
  const log = (l: string) => (bar ? bar.log(l) : io.stderr.write(`${l}\n`));
  const tmp = await mkdtemp(join(tmpdir(), 'enclavekit-run-'));
  let proxy: KmsProxy | undefined;
  let worker: WorkerProcess | undefined;
  try {
    const kmsEndpoint = values['kms-endpoint'];
    if (kmsEndpoint !== undefined || values['kms-listen'] !== undefined || target.kind === 'sim') {
      if (kmsEndpoint === undefined) throw new UsageError('--kms-endpoint URL is required to proxy KMS traffic');
      const listen =
        target.kind === 'sim'
          ? ({ kind: 'unix', path: join(tmp, 'kms.sock') } as const)
          : (() => {
              const l = values['kms-listen'] ?? 'vsock:8000';
              const m = /^vsock:(\d{1,10})$/.exec(l);
              if (m) return { kind: 'vsock', port: Number(m[1]) } as const;
              if (l.startsWith('unix:') && l.length > 5) return { kind: 'unix', path: l.slice(5) } as const;
              throw new UsageError('--kms-listen expects vsock:PORT or unix:PATH');
            })();
      let listenFn;
      if (listen.kind === 'vsock') {
        const native = (await import('../../native/index.js')) as unknown as {
          listenVsock?: (port: number, o?: { allowHalfOpen?: boolean }) => import('node:events').EventEmitter & { close(cb?: () => void): unknown };
        };
        if (typeof native.listenVsock !== 'function') throw new ToolkitError('ERR_PLATFORM_UNAVAILABLE', 'vsock needs the native addon', { reason: 'native' });
        const lv = native.listenVsock;
        listenFn = async (at: { kind: string; port?: number }, onConn: (s: import('node:stream').Duplex) => void) => {
          const srv = lv(at.port!, { allowHalfOpen: true });
          srv.on('connection', onConn);
          return { close: () => new Promise<void>((r) => void srv.close(() => r())) };
        };
      }
      try {
        proxy = await startKmsProxy({ listen, target: hostPortOfUrl(kmsEndpoint), allow, log: (l) => log(l), ...(listenFn ? { listenFn } : {}) });
      } catch (e) {
        if (isToolkitError(e) && e.code === 'ERR_CONFIG_INVALID') throw new UsageError(`${e.message} (use --kms-allow HOST:PORT)`);
        throw e;
      }
    }

    let connect: () => Promise<import('node:stream').Duplex>;
    if (target.kind === 'sim') {
      const stateDir = values['sim-state'];
      if (!stateDir) throw new UsageError('--enclave sim needs --sim-state DIR (the simulator state the KMS simulator trusts)');
      if (values['image-id'] && values.image) throw new UsageError('give --image-id or --image, not both');
      // Default: the worker bundle, as the demo's image A and `enclavekit sim image-id` (same PCR0).
      const imageId = values['image-id'] ? hexArg(values['image-id'], '--image-id', 48) : await simImageIdFromFiles(values.image ?? [(await import('./sim-image-id.js')).workerBundle()]);
      worker = await startWorkerProcess({
        socketPath: join(tmp, 'worker.sock'),
        args: ['--platform', 'simulator', '--sim-state', stateDir, '--image-id', toHex(imageId), '--kms', `unix:${join(tmp, 'kms.sock')}`, '--kms-endpoint', kmsEndpoint!],
        onLog: log,
      });
      // The host started this image itself, so its PCR0 is what to expect unless told otherwise.
      if (pcrs.size === 0 && measurement === undefined) pcrs.set(0, simPcr0(imageId));
      const w = worker;
      connect = () => connectEnclave({ kind: 'unix', path: w.socketPath });
    } else {
      connect = () => connectEnclave(target);
    }
    if (values['sim-state']) {
      const r = await readSimulatorRootFromState(values['sim-state']);
      if (!r) throw new UsageError(`--sim-state ${values['sim-state']} holds no simulator root`);
      simulatorRoots.push(r);
      const ark = await readSnpSimulatorRootFromState(values['sim-state']);
      if (ark) snpSimulatorRoots.push(ark);
    }
    if (pcrs.size === 0 && measurement === undefined) throw new UsageError('give --expect-pcr N=HEX or --expect-measurement HEX: a result is only as good as the image it is bound to');

    const total = (await stat(values.dataset!)).size;
    const sealHex = toHex(sealDigest(manifestBody(manifest)));
    const ledgers = values.ledger ? await readLedgers(values.ledger) : {};
    const held = ledgers[sealHex];
    // The parent's credentials go to the worker only after its attestation verified (host/run.ts).
    const credentialMode = values.credentials ?? 'chain';
    if (credentialMode !== 'chain' && credentialMode !== 'none') throw new UsageError('--credentials expects chain or none');
    const out = await runJob({
      ...(held ? { ledger: new Uint8Array(Buffer.from(held, 'base64')) } : {}),
      dataset: values.dataset!,
      manifest,
      query,
      connect,
      expect: {
        pcrs,
        ...(measurement ? { measurement } : {}),
        ...(simulatorRoots.length ? { simulatorRoots } : {}),
        ...(snpSimulatorRoots.length ? { snpSimulatorRoots } : {}),
      },
      now: io.now,
      ...(batch !== undefined ? { batchSize: batch } : {}),
      progress: (bar = createProgress({ stream: io.stderr as NodeJS.WritableStream & { isTTY?: boolean }, totalBytes: total })),
      log,
      ...(credentialMode === 'chain' ? { credentials: parentCredentials({ allowLongTerm: values['allow-long-term-credentials'] === true, log, env: io.env }) } : {}),
    });
    if (values.ledger && out.ledger) {
      ledgers[sealHex] = Buffer.from(out.ledger).toString('base64');
      await writeAtomic(values.ledger, JSON.stringify(ledgers, null, 2) + '\n');
    }
    if (values.audit) {
      // The worker's attested result or refusal goes in with its evidence (README "Audit log").
      const datasetDigest = out.datasetDigest ?? toHex(await datasetDigestOfFile(values.dataset!, manifest.datasetId));
      await appendAuditEntry(values.audit, auditRecordFromOutcome(out, { datasetDigest }), io.now);
    }
    if (!out.ok) {
      const exit = exitCodeOf(out.error);
      const hint = failureHint(out.error, { target: values.enclave!, kmsEndpoint, manifest });
      // The code and reason are printed once, in front (runJob's refusal text repeats them).
      const said = out.error.message.replace(`the worker refused the job: ${out.error.code} (${out.error.reason}): `, 'the worker refused the job: ');
      const message = hint ? `${said}: ${hint}` : said;
      if (json)
        writeJson(io.stdout, errorJson({ code: out.error.code, reason: out.error.reason, message }, exit, { stage: out.error.stage, jobId: out.jobId, attested: out.refusal !== undefined }));
      io.stderr.write(`enclavekit run: job ${out.jobId} FAILED at ${out.error.stage}: ${out.error.code}${out.error.reason ? ` (${out.error.reason})` : ''}: ${message}\n`);
      return exit;
    }
    const file = resultFileJson(out);
    // With --json, RESULT.json on stdout is the one JSON object, on one line.
    if (toStdout) io.stdout.write((json ? JSON.stringify(file) : JSON.stringify(file, null, 2)) + '\n');
    else await writeAtomic(outPath, JSON.stringify(file, null, 2) + '\n');
    const c = out.result.counts;
    if (json && !toStdout) {
      writeJson(io.stdout, {
        ok: true,
        jobId: out.jobId,
        records: out.records,
        groups: c.groups,
        suppressedGroups: c.suppressedGroups,
        verified: true,
        platform: out.verification.platform,
        pcrs: out.verification.pcrs,
        ...(out.verification.measurement ? { measurement: out.verification.measurement } : {}),
        resultDigest: out.resultDigest,
        out: outPath,
      });
    } else {
      (toStdout ? io.stderr : io.stdout).write(
        `job ${out.jobId}: ${out.records} records, ${c.groups} groups${c.suppressedGroups === null ? '' : ` (${c.suppressedGroups} suppressed)`}; ` +
          `result verified (${out.verification.platform}${out.verification.pcrs['0'] ? `, PCR0 ${out.verification.pcrs['0']}` : ''}); wrote ${toStdout ? 'standard output' : outPath}\n`,
      );
    }
    return EXIT_OK;
  } finally {
    await worker?.stop().catch(() => undefined);
    await proxy?.close().catch(() => undefined);
    await rm(tmp, { recursive: true, force: true });
  }
}
