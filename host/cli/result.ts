/**
 * `enclavekit result verify RESULT.json [--pcr N=HEX]... [--measurement HEX]
 *   [--root PEM | --trust-simulator-root PEM | --sim-state DIR] [--nonce HEX] [--at ISO-TIME] [--json]`
 *
 * Re-verifies, offline, a result file that `enclavekit run --out` wrote (run.ts resultFileJson):
 *
 *  1. the attested result (`resultCborBase64`) decodes as a canonical version-2 result document;
 *  2. the evidence (`evidenceBase64`) verifies to a trusted root (simulator roots only when named) with
 *     the expected PCRs or MEASUREMENT, and binds `user_data = SHA-384(result CBOR)`, the worker key
 *     (`publicKeyBase64`) and the job nonce (`--nonce`, else the file's `nonce`);
 *  3. what the file says in the clear agrees with what was attested: the decoded `result` equals the
 *     CBOR, and `jobId`, `resultDigest` and `verification` (format, platform, PCRs, MEASUREMENT) match.
 *
 * The nonce: the evidence carries the job's nonce, which only the host that ran the job chose. The file
 * records it, so by default this checks the evidence carries the nonce the file names (consistency);
 * a caller who knows the nonce (from its own records or audit log) passes `--nonce` to require it.
 * Nitro evidence can be checked without any nonce (the one it carries is reported, "not checked");
 * SEV-SNP evidence cannot: its REPORT_DATA is a digest over key, result digest and nonce together.
 *
 * Time: Nitro leaf certificates live about 3 hours, so a saved result is checked by default as of the
 * evidence's own (signed) timestamp: "was it attested by a valid chain when it was made". `--at` checks
 * at another time. SEV-SNP reports carry no time: the default is now.
 *
 * Exit 0 verified; 1 it does not verify (evidence, binding, or the file disagrees with the attested
 * result); 2 usage, or a file that is not a result file (unreadable, truncated, not JSON).
 */
import { parseArgs } from 'node:util';
import { readFileSync, statSync } from 'node:fs';
import { equalBytes, toHex } from '../../attestation/bytes.js';
import { AttestationError, AttestationPolicyError, ToolkitError, isToolkitError, type PolicyViolation } from '../../attestation/errors.js';
import { verifyNitro } from '../../attestation/nitro/node.js';
import { parseNitroDocument } from '../../attestation/nitro/parse.js';
import { compileNitroPolicy, type NitroPolicy } from '../../attestation/nitro/policy.js';
import { decodeResult, resultToJson, sha384, type ResultDocument } from '../../enclave/protocol/index.js';
import { EXIT_INVALID, EXIT_OK, UsageError, fileErrorMessage, usage, type CliIO } from './io.js';
import { atFlag, certificatesFrom, helpRequested, hexFlag } from './verify-common.js';
import { toJsonValue } from './verify-output.js';

const HELP = `usage: enclavekit result verify RESULT.json [options]

Re-verify a result file written by \`enclavekit run --out\`, offline: the attested result CBOR decodes,
the evidence verifies with the expected image and binds user_data = SHA-384(result), the worker key
and the job nonce, and the decoded "result" in the file equals the attested CBOR.

  --pcr N=HEX                expected PCR N of the worker image (Nitro; repeatable, repeat N to allow several)
  --measurement HEX          expected MEASUREMENT (SEV-SNP; repeatable)
  --root PEM                 trusted root(s), PEM or DER: replace the built-in AWS root / AMD ARKs
  --trust-simulator-root PEM trust this simulator root (Nitro) or ARK (SEV-SNP)
  --sim-state DIR            trust the simulator roots of this state folder
  --nonce HEX                the job's nonce as you know it (default: the "nonce" the file records)
  --at ISO-TIME              verification time (default: the evidence's own timestamp for Nitro,
                             now for SEV-SNP)
  --json                     print one JSON object instead of a summary

Exit status: 0 verified, 1 does not verify, 2 usage or not a result file.
`;

/** A result CBOR is at most 8 MiB (decodeResult); base64 and the decoded JSON beside it fit in this. */
const MAX_FILE = 48 * 1024 * 1024;

interface ResultFile {
  resultBytes: Uint8Array;
  evidence: Uint8Array;
  /** The decoded result as the file shows it. */
  resultJson: unknown;
  jobId?: unknown;
  resultDigest?: unknown;
  nonce?: Uint8Array;
  publicKey?: Uint8Array;
  verification?: Record<string, unknown>;
}

const notAResultFile = (path: string, why: string) =>
  new UsageError(`${path} is not a result file written by \`enclavekit run --out\`: ${why}`, { code: 'ERR_INPUT' });

function b64Field(o: Record<string, unknown>, key: string, path: string, required: boolean): Uint8Array | undefined {
  const v = o[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(v)) throw notAResultFile(path, `"${key}" is not base64`);
  return new Uint8Array(Buffer.from(v, 'base64'));
}

function readResultFile(path: string): ResultFile {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw notAResultFile(path, 'not a regular file');
    if (st.size > MAX_FILE) throw notAResultFile(path, `larger than ${MAX_FILE} bytes`);
    text = new TextDecoder('utf-8', { fatal: true }).decode(readFileSync(path));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if (typeof (e as NodeJS.ErrnoException).code === 'string') throw new UsageError(fileErrorMessage(e, path, 'RESULT.json'), { code: 'ERR_INPUT', cause: e });
    throw notAResultFile(path, 'not UTF-8');
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw notAResultFile(path, `not JSON (${(e as Error).message}); truncated?`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw notAResultFile(path, 'not a JSON object');
  const o = v as Record<string, unknown>;
  if (o.ok !== true) throw notAResultFile(path, '"ok" is not true');
  if (o.result === null || typeof o.result !== 'object') throw notAResultFile(path, 'no decoded "result"');
  let nonce: Uint8Array | undefined;
  if (o.nonce !== undefined) {
    if (typeof o.nonce !== 'string' || !/^(?:[0-9a-f]{2}){1,512}$/.test(o.nonce)) throw notAResultFile(path, '"nonce" is not hex');
    nonce = new Uint8Array(Buffer.from(o.nonce, 'hex'));
  }
  const verification = o.verification !== null && typeof o.verification === 'object' && !Array.isArray(o.verification) ? (o.verification as Record<string, unknown>) : undefined;
  return {
    resultBytes: b64Field(o, 'resultCborBase64', path, true)!,
    evidence: b64Field(o, 'evidenceBase64', path, true)!,
    resultJson: o.result,
    jobId: o.jobId,
    resultDigest: o.resultDigest,
    ...(nonce ? { nonce } : {}),
    ...(o.publicKeyBase64 !== undefined ? { publicKey: b64Field(o, 'publicKeyBase64', path, false)! } : {}),
    ...(verification ? { verification } : {}),
  };
}

/** The first place two JSON values differ, as a path (`$.groups[0].count`), or undefined when equal. */
export function firstDifference(a: unknown, b: unknown, path = '$'): string | undefined {
  if (a === b) return undefined;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return path;
  if (Array.isArray(a) !== Array.isArray(b)) return path;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return `${path}.length`;
    for (let i = 0; i < a.length; i++) {
      const d = firstDifference(a[i], bb[i], `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of [...keys].sort()) {
    if (!Object.hasOwn(ao, k) || !Object.hasOwn(bo, k)) return `${path}.${k}`;
    const d = firstDifference(ao[k], bo[k], `${path}.${k}`);
    if (d !== undefined) return d;
  }
  return undefined;
}

interface Trust {
  roots?: Uint8Array[];
  simulatorRoots: Uint8Array[];
  snpSimulatorRoots: Uint8Array[];
}

interface CheckedEvidence {
  format: 'nitro' | 'sev-snp';
  platform: 'nitro' | 'sev-snp' | 'simulator';
  pcrs?: Record<string, string>;
  measurement?: string;
  timestamp?: Date;
  /** The nonce the evidence carries (Nitro), or the one REPORT_DATA was recomputed with (SEV-SNP). */
  nonce: Uint8Array | undefined;
  publicKey: Uint8Array;
  at: Date;
  atSource: 'flag' | 'evidence' | 'now';
}

function isNitroEvidence(b: Uint8Array): boolean {
  return b.length > 0 && (b[0] === 0x84 || (b[0] === 0xd2 && b[1] === 0x84));
}

async function checkEvidence(
  f: ResultFile,
  digest: Uint8Array,
  x: { pcrs: Record<string, Uint8Array[]>; measurements: string[]; nonce: Uint8Array | undefined; at: Date | undefined; now: Date },
  trust: Trust,
): Promise<CheckedEvidence> {
  if (isNitroEvidence(f.evidence)) {
    if (Object.keys(x.pcrs).length === 0)
      throw new UsageError('the result carries Nitro evidence: give --pcr N=HEX (a result is only as good as the image it is bound to)');
    let at = x.at;
    let atSource: CheckedEvidence['atSource'] = 'flag';
    if (at === undefined) {
      try {
        at = new Date(parseNitroDocument(f.evidence).timestamp);
        atSource = 'evidence';
      } catch {
        // verifyNitro below reports what is wrong with the document.
        at = x.now;
        atSource = 'now';
      }
    }
    const policy: NitroPolicy = {
      pcrs: x.pcrs,
      userData: digest,
      ...(x.nonce ? { nonce: x.nonce } : {}),
      ...(f.publicKey ? { publicKey: f.publicKey } : {}),
    };
    const d = verifyNitro(f.evidence, { now: at, ...(trust.roots ? { roots: trust.roots } : {}), simulatorRoots: trust.simulatorRoots, policy });
    if (d.publicKey === undefined || d.publicKey.length === 0)
      throw new AttestationPolicyError([{ field: 'public_key', expected: 'the worker key the result was signed with', actual: '(absent)' }]);
    const pcrs: Record<string, string> = {};
    for (const [i, v] of d.pcrs) pcrs[String(i)] = toHex(v);
    return { format: 'nitro', platform: d.platform, pcrs, timestamp: d.timestamp, nonce: d.nonce, publicKey: d.publicKey, at, atSource };
  }
  if (x.measurements.length === 0) throw new UsageError('the result carries SEV-SNP evidence: give --measurement HEX (a result is only as good as the image it is bound to)');
  if (f.publicKey === undefined || x.nonce === undefined)
    throw new ToolkitError(
      'ERR_RESULT_INVALID',
      `SEV-SNP evidence binds the worker key and the job nonce into REPORT_DATA; the file carries ${f.publicKey === undefined ? 'no "publicKeyBase64"' : 'no "nonce"'}${x.nonce === undefined ? ' (pass --nonce HEX)' : ''}`,
      { reason: 'binding' },
    );
  const SNP_REPORT = 0x4a0;
  if (f.evidence.length < SNP_REPORT)
    throw new AttestationError('ERR_SNP_REPORT_INVALID', `SEV-SNP evidence of ${f.evidence.length} bytes is shorter than a report`, { reason: 'length' });
  const [{ verifySevSnp }, { snpReportData }] = await Promise.all([import('../../attestation/sevsnp/node.js'), import('../../attestation/sevsnp/binding.js')]);
  const at = x.at ?? x.now;
  const r = verifySevSnp(
    f.evidence.subarray(0, SNP_REPORT),
    { certTable: f.evidence.subarray(SNP_REPORT) },
    {
      now: at,
      ...(trust.roots ? { roots: trust.roots } : {}),
      ...(trust.snpSimulatorRoots.length ? { simulatorRoots: trust.snpSimulatorRoots } : {}),
      policy: { measurement: x.measurements, reportData: toHex(snpReportData({ publicKey: f.publicKey, userData: digest, nonce: x.nonce })) },
    },
  );
  return { format: 'sev-snp', platform: r.platform, measurement: toHex(r.measurement), nonce: x.nonce, publicKey: f.publicKey, at, atSource: x.at ? 'flag' : 'now' };
}

/** What the file states in the clear, against what was attested. */
function fileMismatches(f: ResultFile, doc: ResultDocument, digest: Uint8Array, ev: CheckedEvidence): PolicyViolation[] {
  const v: PolicyViolation[] = [];
  const where = firstDifference(f.resultJson, resultToJson(doc));
  if (where !== undefined) v.push({ field: 'result', expected: 'the attested result CBOR, decoded', actual: `differs at ${where}` });
  if (f.jobId !== undefined && f.jobId !== doc.jobId) v.push({ field: 'jobId', expected: doc.jobId, actual: String(f.jobId) });
  if (f.resultDigest !== undefined && f.resultDigest !== toHex(digest)) v.push({ field: 'resultDigest', expected: toHex(digest), actual: String(f.resultDigest) });
  const wantPlatform = ev.platform === 'simulator' ? 'simulator' : ev.format;
  if (doc.platform !== wantPlatform) v.push({ field: 'result.platform', expected: wantPlatform, actual: doc.platform });
  const ver = f.verification;
  if (ver !== undefined) {
    if (ver.format !== undefined && ver.format !== ev.format) v.push({ field: 'verification.format', expected: ev.format, actual: String(ver.format) });
    if (ver.platform !== undefined && ver.platform !== ev.platform) v.push({ field: 'verification.platform', expected: ev.platform, actual: String(ver.platform) });
    if (ver.pcrs !== undefined && ev.pcrs !== undefined) {
      const d = firstDifference(ver.pcrs, ev.pcrs, 'verification.pcrs');
      if (d !== undefined) v.push({ field: d, expected: 'the PCRs the evidence carries', actual: 'differs' });
    }
    if (ver.measurement !== undefined && ver.measurement !== ev.measurement)
      v.push({ field: 'verification.measurement', expected: ev.measurement ?? '(none)', actual: String(ver.measurement) });
  }
  return v;
}

async function trustFrom(values: { root?: string[] | undefined; 'trust-simulator-root'?: string | undefined; 'sim-state'?: string | undefined }): Promise<Trust> {
  const read = (p: string, label: string) => {
    try {
      const st = statSync(p);
      if (!st.isFile() || st.size > 1 << 20) throw new UsageError(`${label} ${p}: not a regular file of at most 1 MiB`);
      return new Uint8Array(readFileSync(p));
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new UsageError(fileErrorMessage(e, p, label), { code: 'ERR_INPUT', cause: e });
    }
  };
  const t: Trust = { simulatorRoots: [], snpSimulatorRoots: [] };
  if (values.root !== undefined) t.roots = values.root.flatMap((p) => certificatesFrom(read(p, '--root'), `--root ${p}`));
  const simPem = values['trust-simulator-root'];
  if (simPem !== undefined) {
    const certs = certificatesFrom(read(simPem, '--trust-simulator-root'), `--trust-simulator-root ${simPem}`);
    // One flag for both simulated platforms: a Nitro simulator root and an SEV-SNP simulator ARK.
    t.simulatorRoots.push(...certs);
    t.snpSimulatorRoots.push(...certs);
  }
  const dir = values['sim-state'];
  if (dir !== undefined) {
    const { readSimulatorRootFromState, readSnpSimulatorRootFromState } = await import('../kms-sim/sim-root.js');
    const nitro = await readSimulatorRootFromState(dir);
    const snp = await readSnpSimulatorRootFromState(dir);
    if (!nitro && !snp) throw new UsageError(`--sim-state ${dir} holds no simulator root`);
    if (nitro) t.simulatorRoots.push(nitro);
    if (snp) t.snpSimulatorRoots.push(snp);
  }
  return t;
}

interface Verdict {
  file: string;
  doc: ResultDocument;
  digest: Uint8Array;
  ev: CheckedEvidence;
  nonceChecked: 'flag' | 'file' | false;
  keyChecked: boolean;
}

function writeVerified(io: CliIO, json: boolean, r: Verdict): number {
  const d = r.doc;
  if (json) {
    io.stdout.write(
      JSON.stringify({
        valid: true,
        file: r.file,
        jobId: d.jobId,
        datasetId: d.datasetId,
        datasetDigest: toHex(d.datasetDigest),
        sealDigest: toHex(d.sealDigest),
        queryDigest: toHex(d.queryDigest),
        resultDigest: toHex(r.digest),
        counts: d.counts,
        platform: d.platform,
        evidence: toJsonValue({
          format: r.ev.format,
          platform: r.ev.platform,
          pcrs: r.ev.pcrs,
          measurement: r.ev.measurement,
          timestamp: r.ev.timestamp,
          publicKey: r.ev.publicKey,
        }),
        nonce: r.ev.nonce ? toHex(r.ev.nonce) : null,
        nonceChecked: r.nonceChecked,
        at: r.ev.at.toISOString(),
        atSource: r.ev.atSource,
      }) + '\n',
    );
    return EXIT_OK;
  }
  const nonceText = r.ev.nonce === undefined ? '(none)' : toHex(r.ev.nonce);
  const lines = [
    `VALID result ${r.file}: job ${d.jobId} over dataset ${d.datasetId} (${d.counts.records} records, ${d.counts.groups} groups), platform ${d.platform}`,
    `  evidence     ${r.ev.format} (platform: ${r.ev.platform}), checked at ${r.ev.at.toISOString()}${r.ev.atSource === 'evidence' ? " (the evidence's own timestamp)" : r.ev.atSource === 'now' ? ' (now)' : ''}`,
  ];
  if (r.ev.pcrs?.['0'] !== undefined) lines.push(`  PCR0         ${r.ev.pcrs['0']}`);
  if (r.ev.measurement !== undefined) lines.push(`  MEASUREMENT  ${r.ev.measurement}`);
  lines.push(`  user_data    SHA-384(result CBOR) = ${toHex(r.digest)}`);
  lines.push(
    `  nonce        ${nonceText} (${r.nonceChecked === 'flag' ? 'equals --nonce' : r.nonceChecked === 'file' ? "equals the file's nonce; pass --nonce to require your own" : 'NOT checked: the file records none; pass --nonce to require one'})`,
  );
  lines.push(`  worker key   ${r.keyChecked ? "the evidence's key equals the file's publicKeyBase64" : 'the evidence carries one (the file records none)'}`);
  lines.push(`  decoded      the file's "result", jobId, resultDigest and verification agree with the attested result`);
  lines.push(`  seal         ${toHex(d.sealDigest)}`);
  if (r.ev.platform === 'simulator') lines.push('  NOTE: simulator evidence, trusted only because its root was passed explicitly');
  io.stdout.write(lines.join('\n') + '\n');
  return EXIT_OK;
}

function writeNotVerified(io: CliIO, json: boolean, file: string, e: ToolkitError, violations: readonly PolicyViolation[]): number {
  if (json) {
    io.stdout.write(JSON.stringify({ valid: false, file, code: e.code, reason: e.reason ?? null, message: e.message, violations }) + '\n');
  } else {
    const lines = [`INVALID result ${file}: ${e.code}${e.reason ? ` (${e.reason})` : ''}: ${violations.length > 0 ? `${violations.length} problem(s)` : e.message}`];
    for (const v of violations) lines.push(`  ${v.field}: expected ${v.expected}, got ${v.actual}`);
    io.stdout.write(lines.join('\n') + '\n');
  }
  return EXIT_INVALID;
}

async function verifyCommand(argv: string[], io: CliIO): Promise<number> {
  if (helpRequested(argv, io, HELP)) return EXIT_OK;
  const { values, positionals } = usage(
    () =>
      parseArgs({
        args: argv,
        strict: true,
        allowPositionals: true,
        options: {
          pcr: { type: 'string', multiple: true },
          measurement: { type: 'string', multiple: true },
          root: { type: 'string', multiple: true },
          'trust-simulator-root': { type: 'string' },
          'sim-state': { type: 'string' },
          nonce: { type: 'string' },
          at: { type: 'string' },
          json: { type: 'boolean' },
        },
      }),
    'result verify',
  );
  if (positionals.length !== 1) throw new UsageError('expected exactly one RESULT.json', { help: 'result verify' });
  const file = positionals[0]!;
  const json = values.json === true;

  const pcrs: Record<string, Uint8Array[]> = {};
  for (const spec of values.pcr ?? []) {
    const m = /^(?:PCR)?(\d{1,2})=(.+)$/.exec(spec);
    if (!m || Number(m[1]) > 31) throw new UsageError(`--pcr: expected N=HEX with N in 0..31, got ${JSON.stringify(spec)}`);
    (pcrs[String(Number(m[1]))] ??= []).push(hexFlag(m[2]!, `--pcr ${m[1]}`));
  }
  try {
    compileNitroPolicy({ pcrs });
  } catch (e) {
    if (isToolkitError(e)) throw new UsageError(e.message);
    throw e;
  }
  const measurements = (values.measurement ?? []).map((m) => {
    const b = hexFlag(m, '--measurement');
    if (b.length !== 48) throw new UsageError('--measurement: expected 48 bytes (96 hex digits)');
    return toHex(b);
  });
  const nonceFlag = values.nonce !== undefined ? hexFlag(values.nonce, '--nonce') : undefined;
  const at = values.at !== undefined ? atFlag(values.at, io.now()) : undefined;
  const trust = await trustFrom(values);
  const f = readResultFile(file);

  const digest = sha384(f.resultBytes);
  const violations: PolicyViolation[] = [];
  // A caller's --nonce must be the one the file records too (else the file names another job).
  if (nonceFlag !== undefined && f.nonce !== undefined && !equalBytes(nonceFlag, f.nonce))
    violations.push({ field: 'nonce', expected: toHex(nonceFlag), actual: `${toHex(f.nonce)} (the file's)` });
  let doc: ResultDocument;
  let ev: CheckedEvidence;
  try {
    doc = decodeResult(f.resultBytes);
    ev = await checkEvidence(f, digest, { pcrs, measurements, nonce: nonceFlag ?? f.nonce, at, now: io.now() }, trust);
  } catch (e) {
    if (e instanceof AttestationPolicyError) return writeNotVerified(io, json, file, e, [...violations, ...e.violations]);
    if (isToolkitError(e) && e.code !== 'ERR_CONFIG_INVALID') return writeNotVerified(io, json, file, e, violations);
    throw e;
  }
  violations.push(...fileMismatches(f, doc, digest, ev));
  if (violations.length > 0) {
    const e = new ToolkitError('ERR_RESULT_INVALID', `the result file does not agree with its attested result: ${violations.map((v) => `${v.field} expected ${v.expected}, got ${v.actual}`).join('; ')}`, { reason: 'file_mismatch' });
    return writeNotVerified(io, json, file, e, violations);
  }
  const nonceChecked = nonceFlag !== undefined ? 'flag' : f.nonce !== undefined ? 'file' : false;
  return writeVerified(io, json, { file, doc, digest, ev, nonceChecked, keyChecked: f.publicKey !== undefined });
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'verify') return verifyCommand(rest, io);
  if (sub === '--help' || sub === '-h' || sub === undefined) {
    io.stdout.write(`usage: enclavekit result verify RESULT.json [options]\n\nSee \`enclavekit result verify --help\`.\n`);
    return sub === undefined ? 2 : EXIT_OK;
  }
  throw new UsageError(`unknown subcommand ${JSON.stringify(sub)}: expected \`result verify\``);
}
