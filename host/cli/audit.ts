/**
 * `enclavekit audit verify FILE`: check an audit log (README, "Audit log"). Evidence is re-verified
 * against the expected image unless `--chain-only` says not to. Exit 0 intact, 1 broken, 2 usage.
 */
import { parseArgs } from 'node:util';
import { readFile, stat } from 'node:fs/promises';
import { isToolkitError } from '../../attestation/errors.js';
import { verifyAuditLog, type AuditExpectations } from '../audit.js';
import { readRootsPem, readSimulatorRootFromState, readSnpSimulatorRootFromState } from '../kms-sim/sim-root.js';
import { EXIT_INVALID, EXIT_OK, UsageError, fileError, usage, writeJson, type CliIO } from './io.js';

const HELP = `usage: enclavekit audit verify FILE [--expect-pcr N=HEX]... [--expect-measurement HEX]
         [--trust-simulator-root PEM] [--sim-state DIR] [--result RESULT.json]... [--chain-only] [--json]

Check an audit log written by \`enclavekit run --audit\`: the host's hash chain; that each entry says
what the worker's attested document in it says; each document's evidence (at the entry's time, for
the entry's nonce and worker key, against the expected image); every worker instance's own chain
(from its first document, no gap, no reordering); the privacy ledger generations (no rollback); and
that every --result file is in the log (nothing cut off its end).

  --expect-pcr N=HEX          expected PCR N of the worker image (repeatable)
  --expect-measurement HEX    expected SEV-SNP MEASUREMENT
  --trust-simulator-root PEM  trust this simulator root (simulator evidence only verifies with it)
  --sim-state DIR             trust the simulator roots of this state folder
  --result RESULT.json        a result file written by \`enclavekit run --out\` (repeatable): the log
                              must hold its document
  --chain-only                do not re-verify evidence: structure, chains and documents only (a
                              hostile host can forge a log that passes this)
  --json                      print the verdict as one JSON object: {"ok":true,"entries",...} or
                              {"ok":false,"code":"ERR_AUDIT_INVALID","reason","message","firstBroken",...}

Without --chain-only, --expect-pcr or --expect-measurement is required.
Exit status: 0 intact, 1 broken, 2 usage or I/O error.
`;

function hexArg(v: string, label: string, len: number): Uint8Array {
  if (!/^[0-9a-fA-F]+$/.test(v) || v.length !== len * 2) throw new UsageError(`${label} expects ${len * 2} hex digits`);
  return new Uint8Array(Buffer.from(v, 'hex'));
}

/** The attested document of a result file written by `enclavekit run --out` (resultFileJson). */
async function readResultFile(path: string): Promise<Uint8Array> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    throw fileError(e, path, '--result');
  }
  if (size > 64 * 1024 * 1024) throw new UsageError(`--result: ${path} is larger than 64 MiB`, { code: 'ERR_INPUT' });
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw fileError(e, path, '--result');
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw new UsageError(`--result: ${path} is not JSON`, { code: 'ERR_INPUT' });
  }
  const b = (j as { resultCborBase64?: unknown } | null)?.resultCborBase64;
  if (typeof b !== 'string' || b.length === 0 || Buffer.from(b, 'base64').toString('base64') !== b)
    throw new UsageError(`--result: ${path} has no resultCborBase64 (not a file written by \`enclavekit run --out\`)`, { code: 'ERR_INPUT' });
  return new Uint8Array(Buffer.from(b, 'base64'));
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = usage(() =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        'expect-pcr': { type: 'string', multiple: true },
        'expect-measurement': { type: 'string' },
        'trust-simulator-root': { type: 'string' },
        'sim-state': { type: 'string' },
        result: { type: 'string', multiple: true },
        'chain-only': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
    'audit verify',
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const [sub, file, ...extra] = positionals;
  if (sub !== 'verify') throw new UsageError(sub === undefined ? 'expected `audit verify FILE`' : `unknown subcommand "${sub}": expected \`audit verify FILE\``, { help: 'audit verify' });
  if (!file || extra.length > 0) throw new UsageError(`expected exactly one audit log FILE, got ${file ? 1 + extra.length : 0}`, { help: 'audit verify' });
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new UsageError(`audit log ${file} is not a file`, { code: 'ERR_INPUT' });
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw fileError(e, file, 'audit log');
  }

  const pcrs = new Map<number, Uint8Array>();
  for (const p of values['expect-pcr'] ?? []) {
    const m = /^(?:PCR)?(\d{1,2})=([0-9a-fA-F]+)$/.exec(p);
    if (!m || Number(m[1]) > 31) throw new UsageError(`--expect-pcr expects N=HEX with N in 0..31, got ${p}`);
    if (pcrs.has(Number(m[1]))) throw new UsageError(`--expect-pcr ${m[1]} given twice`);
    pcrs.set(Number(m[1]), hexArg(m[2]!, `--expect-pcr ${m[1]}`, 48));
  }
  const measurement = values['expect-measurement'] ? hexArg(values['expect-measurement'], '--expect-measurement', 48) : undefined;
  const chainOnly = values['chain-only'] === true;
  const trustFlags = pcrs.size > 0 || measurement !== undefined || values['trust-simulator-root'] !== undefined || values['sim-state'] !== undefined;
  if (chainOnly && trustFlags) throw new UsageError('--chain-only checks no evidence: give it without --expect-*, --trust-simulator-root and --sim-state');
  if (!chainOnly && pcrs.size === 0 && measurement === undefined)
    throw new UsageError('give --expect-pcr N=HEX or --expect-measurement HEX to re-verify the evidence in the log (or --chain-only, which a hostile host can forge)');

  let expect: AuditExpectations | undefined;
  if (!chainOnly) {
    const simulatorRoots: Uint8Array[] = [];
    const snpSimulatorRoots: Uint8Array[] = [];
    if (values['trust-simulator-root']) simulatorRoots.push(...(await readRootsPem(values['trust-simulator-root'])));
    if (values['sim-state']) {
      const r = await readSimulatorRootFromState(values['sim-state']);
      const ark = await readSnpSimulatorRootFromState(values['sim-state']);
      if (!r && !ark) throw new UsageError(`--sim-state ${values['sim-state']} holds no simulator root`);
      if (r) simulatorRoots.push(r);
      if (ark) snpSimulatorRoots.push(ark);
    }
    expect = {
      ...(pcrs.size > 0 ? { pcrs } : {}),
      ...(measurement ? { measurement } : {}),
      ...(simulatorRoots.length ? { simulatorRoots } : {}),
      ...(snpSimulatorRoots.length ? { snpSimulatorRoots } : {}),
    };
  }
  const later: { document: Uint8Array; label: string }[] = [];
  for (const p of values.result ?? []) later.push({ document: await readResultFile(p), label: p });

  let r;
  try {
    r = await verifyAuditLog(file, { ...(expect ? { expect } : {}), later });
  } catch (e) {
    // A --result whose document does not decode is the caller's input, not the log's fault.
    if (isToolkitError(e) && e.code === 'ERR_RESULT_INVALID') throw new UsageError(`--result: not an attested result document (${e.message})`, { code: 'ERR_INPUT' });
    throw e;
  }
  const broken = r.ok ? undefined : `audit log BROKEN at line ${r.firstBroken!.line} (${r.firstBroken!.reason}): ${r.firstBroken!.detail}; ${r.entries} entries before it verify (${r.mode})`;
  if (values.json) {
    writeJson(io.stdout, r.ok ? r : { ...r, ok: false, code: 'ERR_AUDIT_INVALID', reason: r.firstBroken!.reason, message: broken, exit: EXIT_INVALID });
  } else {
    const how =
      r.mode === 'evidence'
        ? `evidence of ${r.checked.evidence} attested document(s) re-verified against the expected image`
        : 'CHAIN ONLY: evidence NOT re-verified (a hostile host can forge this)';
    const extras = `${r.checked.chains} worker chain(s)${later.length ? `, ${r.checked.later} of ${later.length} result file(s) found in the log` : ''}`;
    if (r.ok) io.stdout.write(`audit log intact: ${r.entries} entries; ${how}; ${extras}\n`);
    else io.stdout.write(`${broken}\n`);
  }
  return r.ok ? EXIT_OK : EXIT_INVALID;
}
