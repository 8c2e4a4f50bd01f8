/**
 * `enclavekit run`: one query job against an enclave worker, with the result verified and audited.
 *
 *   enclavekit run --dataset FILE --manifest FILE --query FILE --enclave vsock:CID:PORT|unix:PATH|sim
 *     [--expect-pcr N=HEX]... [--expect-measurement HEX]
 *     [--trust-simulator-root PEM | --sim-state DIR] [--kms-allow HOST:PORT]... [--kms-allow-file YAML]
 *     [--kms-endpoint URL] [--kms-listen vsock:PORT|unix:PATH] [--image-id HEX | --image FILE]
 *     --out RESULT.json [--audit FILE] [--batch N]
 *
 * Exit 0: the job ran and its result verified. 1: the job failed or did not verify (the audit log
 * says why; no RESULT.json is written). 2: usage.
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
import { createProgress } from '../progress.js';
import { datasetDigestOfFile, runJob, type RunOutcome } from '../run.js';
import { readSnpSimulatorRootFromState, simImageIdFromFiles, simPcr0 } from '../sim-stack.js';
import { startWorkerProcess, type WorkerProcess } from '../worker-process.js';
import { EXIT_INVALID, EXIT_OK, UsageError, usage, type CliIO } from './io.js';

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
  --image-id HEX | --image F  sim: the simulated worker image
  --kms-endpoint URL          KMS endpoint the worker uses (sim); the proxy forwards to it
  --kms-allow HOST:PORT       allow the KMS proxy to reach this endpoint (repeatable)
  --kms-allow-file YAML       allowlist in vsock-proxy's format
  --kms-listen EP             where the KMS proxy listens for a real enclave: vsock:PORT or unix:PATH
  --out RESULT.json           result: aggregates, evidence (base64) and verification outcome
  --audit FILE                append an audit entry with the worker's attested result or refusal (also on failure)
  --ledger FILE               keep the datasets' sealed privacy ledgers here (JSON); sent to the worker
                              with each job and replaced by what it returns, so a restarted worker
                              still knows what each dataset has spent
  --batch N                   records per frame (default 500)
`;

function hexArg(v: string, label: string, len?: number): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(v) || (len !== undefined && v.length !== len * 2))
    throw new UsageError(`${label} expects ${len === undefined ? 'hex' : `${len * 2} hex digits`}`);
  return new Uint8Array(Buffer.from(v, 'hex'));
}

async function readBounded(path: string, max: number, label: string): Promise<Buffer> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw new UsageError(`${label}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (st.size > max) throw new UsageError(`${label}: ${path} is larger than ${max} bytes`);
  return readFile(path);
}

/** The host's ledger file: seal digest (hex) -> base64 of the sealed ledger the worker returned. */
async function readLedgers(path: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UsageError(`--ledger: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new UsageError(`--ledger: ${path} is not JSON`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Object.entries(v).some(([k, b]) => !/^[0-9a-f]{96}$/.test(k) || typeof b !== 'string' || b.length > 8192))
    throw new UsageError(`--ledger: ${path} is not a ledger file (seal digest -> base64)`);
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
        out: { type: 'string' },
        audit: { type: 'string' },
        ledger: { type: 'string' },
        batch: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  for (const k of ['dataset', 'manifest', 'query', 'enclave', 'out'] as const) if (!values[k]) throw new UsageError(`--${k} is required`);
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

  const manifestBytes = await readBounded(values.manifest!, 16 * 1024 * 1024, '--manifest');
  const manifest: KeyManifest = parseManifest(new Uint8Array(manifestBytes));
  const queryBytes = await readBounded(values.query!, 1024 * 1024, '--query');
  let query: Record<string, unknown>;
  try {
    const q: unknown = JSON.parse(queryBytes.toString('utf8'));
    if (q === null || typeof q !== 'object' || Array.isArray(q)) throw new Error('not an object');
    query = q as Record<string, unknown>;
  } catch {
    throw new UsageError('--query: not a JSON object');
  }
  await readBounded(values.dataset!, Number.MAX_SAFE_INTEGER, '--dataset');

  // The KMS proxy: only to allow-listed endpoints.
  const allow: HostPort[] = [];
  try {
    for (const a of values['kms-allow'] ?? []) allow.push(parseHostPort(a));
    if (values['kms-allow-file']) allow.push(...parseAllowlistYaml((await readBounded(values['kms-allow-file'], 1024 * 1024, '--kms-allow-file')).toString('utf8')));
  } catch (e) {
    if (isToolkitError(e)) throw new UsageError(e.message);
    throw e;
  }

  const log = (l: string) => io.stderr.write(`${l}\n`);
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
      const imageId = values['image-id'] ? hexArg(values['image-id'], '--image-id', 48) : values.image ? await simImageIdFromFiles(values.image) : undefined;
      if (!imageId) throw new UsageError('--enclave sim needs --image-id HEX or --image FILE');
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
      progress: createProgress({ stream: io.stderr as NodeJS.WritableStream & { isTTY?: boolean }, totalBytes: total }),
      log,
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
      io.stderr.write(`enclavekit run: job ${out.jobId} FAILED at ${out.error.stage}: ${out.error.code}: ${out.error.message}\n`);
      return EXIT_INVALID;
    }
    await writeAtomic(values.out!, JSON.stringify(resultFileJson(out), null, 2) + '\n');
    io.stdout.write(
      `job ${out.jobId}: ${out.records} records, ${out.result.counts.groups} groups${out.result.counts.suppressedGroups === null ? '' : ` (${out.result.counts.suppressedGroups} suppressed)`}; ` +
        `result verified (${out.verification.platform}${out.verification.pcrs['0'] ? `, PCR0 ${out.verification.pcrs['0']}` : ''}); wrote ${values.out}\n`,
    );
    return EXIT_OK;
  } finally {
    await worker?.stop().catch(() => undefined);
    await proxy?.close().catch(() => undefined);
    await rm(tmp, { recursive: true, force: true });
  }
}
