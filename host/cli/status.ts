/**
 * `enclavekit status`: the operator's health check of a running worker, for systemd, a load
 * balancer or a person.
 *
 *   enclavekit status --enclave vsock:CID:PORT|unix:PATH [--expect-pcr N=HEX]... [--expect-measurement HEX]
 *     [--trust-simulator-root PEM | --sim-state DIR] [--timeout MS] [--json]
 *
 * One connection: hello with a fresh nonce, the worker's attestation (verified: chain to the pinned
 * root, signature, our nonce, a public key; with --expect-* also the image), then `status_request`
 * (worker version, uptime, documents attested). No credentials, no job. Exit 0 healthy; 1 the
 * evidence does not verify or is not the expected image; 3 unreachable or no answer; 2 usage.
 */
import { parseArgs } from 'node:util';
import { ToolkitError, isToolkitError } from '../../attestation/errors.js';
import { toHex } from '../../attestation/bytes.js';
import { verifyNitro, verifyEvidence, SNP_REPORT_SIZE, isDebugMode } from '../../attestation/index.js';
import { snpReportData } from '../../attestation/sevsnp/binding.js';
import { connectEnclave, parseEnclaveTarget, probeWorker, type WorkerProbe } from '../enclave-conn.js';
import { readRootsPem, readSimulatorRootFromState, readSnpSimulatorRootFromState } from '../kms-sim/sim-root.js';
import { verifyWorkerEvidence } from '../verify-result.js';
import { EXIT_INVALID, EXIT_OK, UsageError, errorJson, exitCodeOf, usage, writeJson, type CliIO } from './io.js';

const HELP = `usage: enclavekit status --enclave vsock:CID:PORT|unix:PATH [options]

Health check of a running enclave worker: reachable, its attested platform and measurements, its
version and uptime. Sends no credentials and no job.

  --enclave TARGET            vsock:CID:PORT (a Nitro enclave) or unix:PATH (a simulated worker)
  --expect-pcr N=HEX          healthy only if PCR N has this value (repeatable; several values of
                              one PCR are alternatives, e.g. old and new image during a roll-out)
  --expect-measurement HEX    healthy only for this SEV-SNP MEASUREMENT
  --trust-simulator-root PEM  trust this simulator root (simulated workers only verify with it)
  --sim-state DIR             trust the simulator roots of this state folder
  --timeout MS                bound on connecting and on each answer (default 5000)
  --json                      one JSON object on stdout

Exit 0 healthy, 1 evidence invalid or not the expected image, 3 unreachable or no answer, 2 usage.
A debug-mode enclave (nitro-cli run-enclave --debug-mode) attests PCR0/1/2 as zeros: it is reported
("debug": true) and is never healthy when an image is expected.
`;

function hex48(v: string, label: string): Uint8Array {
  if (!/^[0-9a-fA-F]{96}$/.test(v)) throw new UsageError(`${label} expects 96 hex digits (48 bytes, SHA-384)`);
  return new Uint8Array(Buffer.from(v, 'hex'));
}

interface Verified {
  format: 'nitro' | 'sev-snp';
  platform: string;
  measurements: Record<string, string>;
  debug: boolean;
}

/** The hello evidence, verified for a health check: trusted root, signature, our nonce, a key. */
function verifyProbe(p: WorkerProbe, now: Date, simulatorRoots: Uint8Array[], snpRoots: Uint8Array[]): Verified {
  const nitro = p.evidence.length > 0 && (p.evidence[0] === 0x84 || p.evidence[0] === 0xd2);
  if (nitro) {
    // Debug enclaves are reported, not hidden: allowDebug here, `debug` in the output.
    const d = verifyNitro(p.evidence, { now, simulatorRoots, allowDebug: true, policy: { nonce: p.nonce } });
    if (d.publicKey === undefined || d.publicKey.length === 0)
      throw new ToolkitError('ERR_ATTESTATION_POLICY', 'the worker evidence carries no public key', { reason: 'public_key' });
    const measurements: Record<string, string> = {};
    for (const i of [0, 1, 2, 3, 4, 8]) {
      const v = d.pcrs.get(i);
      if (v !== undefined) measurements[`PCR${i}`] = toHex(v);
    }
    return { format: 'nitro', platform: d.platform, measurements, debug: isDebugMode(d.pcrs) };
  }
  if (p.publicKey === undefined) throw new ToolkitError('ERR_ATTESTATION_POLICY', 'SEV-SNP evidence arrived without the worker key beside it', { reason: 'public_key' });
  if (p.evidence.length < SNP_REPORT_SIZE) throw new ToolkitError('ERR_SNP_REPORT_INVALID', 'SEV-SNP evidence is shorter than a report', { reason: 'length' });
  const v = verifyEvidence(
    { evidence: p.evidence.subarray(0, SNP_REPORT_SIZE), certs: { certTable: p.evidence.subarray(SNP_REPORT_SIZE) }, format: 'sev-snp' },
    {
      now,
      expect: 'sev-snp',
      snp: {
        ...(snpRoots.length ? { simulatorRoots: snpRoots } : {}),
        policy: { reportData: snpReportData({ publicKey: p.publicKey, userData: null, nonce: p.nonce }), guestPolicy: { allowDebug: true } },
      },
    },
  );
  const m = v.measurements.get('MEASUREMENT');
  const debug = (v.details as { policyFlags?: Record<string, unknown> } | undefined)?.policyFlags?.DEBUG === true;
  return { format: 'sev-snp', platform: v.platform, measurements: m ? { MEASUREMENT: toHex(m) } : {}, debug };
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = usage(
    () =>
      parseArgs({
        args: argv,
        strict: true,
        allowPositionals: false,
        options: {
          enclave: { type: 'string' },
          'expect-pcr': { type: 'string', multiple: true },
          'expect-measurement': { type: 'string' },
          'trust-simulator-root': { type: 'string' },
          'sim-state': { type: 'string' },
          timeout: { type: 'string' },
          json: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
      }),
    'status',
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (!values.enclave) throw new UsageError('--enclave TARGET is required', { help: 'status' });
  let target;
  try {
    target = parseEnclaveTarget(values.enclave);
  } catch (e) {
    throw new UsageError((e as Error).message, { help: 'status' });
  }
  if (target.kind === 'sim') throw new UsageError('--enclave sim starts a worker; status checks a running one (vsock:CID:PORT or unix:PATH)', { help: 'status' });
  const timeoutMs = values.timeout === undefined ? 5000 : Number(values.timeout);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 600_000) throw new UsageError('--timeout must be an integer from 100 to 600000 (ms)');
  // Expected values: a PCR may be listed several times (alternatives during a roll-out).
  const expectPcrs = new Map<number, Uint8Array[]>();
  for (const p of values['expect-pcr'] ?? []) {
    const m = /^(?:PCR)?(\d{1,2})=(.*)$/.exec(p);
    if (!m || Number(m[1]) > 31) throw new UsageError(`--expect-pcr expects N=HEX with N in 0..31, got ${JSON.stringify(p.slice(0, 40))}`);
    const list = expectPcrs.get(Number(m[1])) ?? [];
    list.push(hex48(m[2]!, `--expect-pcr ${m[1]}`));
    expectPcrs.set(Number(m[1]), list);
  }
  const measurement = values['expect-measurement'] ? hex48(values['expect-measurement'], '--expect-measurement') : undefined;
  if (values['trust-simulator-root'] && values['sim-state']) throw new UsageError('give --trust-simulator-root or --sim-state, not both');
  const simulatorRoots: Uint8Array[] = [];
  const snpRoots: Uint8Array[] = [];
  if (values['trust-simulator-root']) simulatorRoots.push(...(await readRootsPem(values['trust-simulator-root'])));
  if (values['sim-state']) {
    const r = await readSimulatorRootFromState(values['sim-state']);
    if (!r) throw new UsageError(`--sim-state ${values['sim-state']} holds no simulator root`);
    simulatorRoots.push(r);
    const ark = await readSnpSimulatorRootFromState(values['sim-state']);
    if (ark) snpRoots.push(ark);
  }

  const t = target;
  const report: Record<string, unknown> = { target: values.enclave };
  const fail = (e: unknown, reachable: boolean): number => {
    const err = isToolkitError(e) ? e : new ToolkitError('ERR_JOB_FAILED', 'the health check failed', { reason: 'internal', cause: e });
    const exit = exitCodeOf(err);
    const out = { ...errorJson(err, exit), healthy: false, reachable, ...report };
    if (values.json) writeJson(io.stdout, out);
    else io.stdout.write(`${values.enclave}: UNHEALTHY (${reachable ? 'reachable' : 'unreachable'}): ${err.code}${err.reason ? ` (${err.reason})` : ''}: ${err.message}\n`);
    return exit;
  };

  let probe: WorkerProbe;
  try {
    probe = await probeWorker(() => connectEnclave(t, timeoutMs), { timeoutMs });
  } catch (e) {
    const reachable = !(isToolkitError(e) && e.code === 'ERR_JOB_FAILED' && (e.reason === 'connect' || e.reason === 'connect_timeout'));
    return fail(e, reachable);
  }
  const now = io.now();
  let v: Verified;
  try {
    v = verifyProbe(probe, now, simulatorRoots, snpRoots);
    Object.assign(report, { platform: v.platform, format: v.format, debug: v.debug, measurements: v.measurements });
    if (expectPcrs.size > 0 || measurement !== undefined) {
      if (v.debug) throw new ToolkitError('ERR_ATTESTATION_POLICY', 'a debug-mode enclave (PCR0/1/2 all zero) is not the expected image', { reason: 'debug' });
      // Any combination of the alternatives may match: try each PCR's values one at a time.
      const chosen = new Map<number, Uint8Array>();
      for (const [i, list] of expectPcrs) {
        const actual = v.measurements[`PCR${i}`];
        chosen.set(i, list.find((x) => toHex(x) === actual) ?? list[0]!);
      }
      verifyWorkerEvidence(probe.evidence, { now, pcrs: chosen, ...(measurement ? { measurement } : {}), simulatorRoots, snpSimulatorRoots: snpRoots }, {
        nonce: probe.nonce,
        ...(probe.publicKey ? { publicKey: probe.publicKey } : {}),
      });
    }
  } catch (e) {
    return fail(e, true);
  }
  const st = probe.status;
  const out = {
    ok: true,
    healthy: true,
    reachable: true,
    ...report,
    expected: expectPcrs.size > 0 || measurement !== undefined ? 'matched' : 'not checked',
    workerVersion: st?.workerVersion ?? null,
    uptimeSeconds: st ? Math.floor(st.uptimeMs / 1000) : null,
    jobs: st?.jobs ?? null,
    latencyMs: Math.round(probe.helloMs),
  };
  if (values.json) writeJson(io.stdout, out);
  else {
    io.stdout.write(
      `${values.enclave}: healthy; ${v.platform}${v.debug ? ' (DEBUG MODE: PCRs are zero, no KMS key policy should release keys to it)' : ''}; ` +
        `${Object.entries(v.measurements).map(([k, x]) => `${k} ${x}`).join(', ')}; ` +
        `${st ? `${st.workerVersion}, up ${out.uptimeSeconds} s, ${st.jobs} job(s)` : 'no status (older worker)'}; expected image: ${out.expected}\n`,
    );
  }
  return v.debug && out.expected === 'matched' ? EXIT_INVALID : EXIT_OK;
}
