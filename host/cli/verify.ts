/**
 * `enclavekit verify FILE|-... [--at ISO-TIME] [--root PEM]... [--simulator-root PEM]... [--allow-debug]
 *   [--pcr N=HEX]... [--nonce HEX] [--user-data HEX] [--public-key HEX] [--max-age SECONDS]
 *   [--policy FILE.json] [--json]`, plus the SEV-SNP flags (verify-snp.ts).
 *
 * Verifies Nitro attestation documents (raw, base64 or hex) and SEV-SNP reports: a FILE goes to
 * verify-snp.ts when `--cert`/`--cert-table` is given, or its decoded bytes are not a COSE_Sign1.
 * Several FILEs are verified in one process, one result each (one JSON line with `--json`); the exit
 * status is the worst of them. Exit 0 valid, 1 invalid evidence or policy violation, 2 usage or I/O.
 *
 * Start-up matters (CI runs this per document): this module imports only the Nitro verifier and its
 * policy; the SEV-SNP side (X.509/ASN.1 libraries) is loaded only when a report turns up.
 */
import { parseArgs } from 'node:util';
import { decodeEvidenceText } from '../../attestation/bytes.js';
import { AttestationError, isToolkitError, type ToolkitError } from '../../attestation/errors.js';
import { verifyNitro } from '../../attestation/nitro/node.js';
import { parseNitroDocument } from '../../attestation/nitro/parse.js';
import { compileNitroPolicy, isDebugMode, type NitroPolicy } from '../../attestation/nitro/policy.js';
import type { VerifiedNitroDocument } from '../../attestation/nitro/verify.js';
import { parseCertificate } from '../../attestation/x509/cert.js';
import { EXIT_OK, UsageError, fileErrorMessage, usage, type CliIO } from './io.js';
import {
  FlagError,
  NITRO_VERIFY_OPTIONS,
  SNP_VERIFY_OPTIONS,
  VERIFY_OPTIONS,
  asFlagError,
  atFlag,
  certificatesFrom,
  flagsOutside,
  helpRequested,
  hexFlag,
  readBounded,
  readEvidenceArg,
  readPolicyJson,
  type VerifyValues,
} from './verify-common.js';
import { writeFileError, writeInvalid, writeValid, type OutputOptions, type ValidityWindow } from './verify-output.js';
// Types only: the SEV-SNP module itself is loaded when a report turns up.
import type { SnpSettingsCache } from './verify-snp.js';

const HELP = `usage: enclavekit verify FILE|- [FILE...] [options]

Verify Nitro attestation documents and AMD SEV-SNP reports offline.
FILE may hold raw bytes, base64 or hex; "-" reads standard input. Several FILEs are verified in one
process, one result each (one JSON line each with --json); the exit status is the worst of them.

Nitro documents:
  --at ISO-TIME        verification time (default: now), e.g. 2024-09-07T15:00:00Z
  --root PEM           trusted root certificate(s), PEM or DER; replaces the built-in AWS root (repeatable)
  --simulator-root PEM a simulator root to trust as well (repeatable); documents under it verify
                       with platform "simulator". Never trusted without this flag.
  --allow-debug        accept debug-mode enclaves (PCR0, PCR1, PCR2 all zero); the output marks them
  --pcr N=HEX          expected PCR N; repeat the same N to allow several values (repeatable)
  --nonce HEX          expected nonce
  --user-data HEX      expected user_data
  --public-key HEX     expected public_key
  --max-age SECONDS    refuse a document whose timestamp is older than this (or over 60 s ahead)
  --policy FILE.json   policy file (strict JSON, see README); flags add to it
  --json               print one JSON object (a line) per FILE instead of a summary

SEV-SNP reports (chosen by --cert/--cert-table, or when FILE is not a COSE_Sign1):
  --cert FILE          the VCEK or VLEK that signed the report (DER or PEM)
  --chain PEM          AMD's cert_chain as KDS serves it: ASK (or ASVK) first, then the ARK
  --ark PEM            trusted ARK certificate(s); replaces the built-in AMD roots (repeatable)
  --simulator-ark PEM  trust a simulator ARK (reports then say platform "simulator") (repeatable)
  --cert-table FILE    extended-report certificate table (SNP_GET_EXT_REPORT / configfs-tsm auxblob)
  --crl FILE           AMD's CRL (DER or PEM) for the product; a revoked ASK/ASVK fails (repeatable)
  --product NAME       Milan, Genoa or Turin (must agree with the report and the certificate)
  --measurement HEX    expected MEASUREMENT (48 bytes); repeat to allow several
  --report-data HEX    expected REPORT_DATA (up to 64 bytes; shorter values are zero-padded)
  --at, --allow-debug, --policy FILE.json (the SEV-SNP policy format), --json: as above

Exit status: 0 valid, 1 invalid or policy violation, 2 usage or I/O error (several FILEs: the worst).
`;

const SNP_REPORT_SIZE = 0x4a0;
const POLICY_FILE_KEYS = new Set(['pcrs', 'nonce', 'userData', 'publicKey', 'maxAgeSeconds', 'allowDebug']);

async function loadPolicyFile(path: string): Promise<{ policy: NitroPolicy; allowDebug: boolean }> {
  const raw = await readPolicyJson(path);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UsageError(`--policy ${path}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!POLICY_FILE_KEYS.has(k)) throw new UsageError(`--policy ${path}: unknown key ${JSON.stringify(k)}`);
  if (o.allowDebug !== undefined && typeof o.allowDebug !== 'boolean') throw new UsageError(`--policy ${path}: allowDebug must be true or false`);
  for (const k of ['nonce', 'userData', 'publicKey'] as const)
    if (o[k] !== undefined && typeof o[k] !== 'string') throw new UsageError(`--policy ${path}: ${k} must be a hex string`);
  if (o.pcrs !== undefined) {
    if (typeof o.pcrs !== 'object' || o.pcrs === null || Array.isArray(o.pcrs)) throw new UsageError(`--policy ${path}: pcrs must be an object`);
    for (const [k, v] of Object.entries(o.pcrs))
      if (typeof v !== 'string' && !(Array.isArray(v) && v.every((x) => typeof x === 'string')))
        throw new UsageError(`--policy ${path}: pcrs.${k} must be a hex string or a list of them`);
  }
  const { allowDebug, ...policy } = o;
  try {
    compileNitroPolicy(policy as NitroPolicy);
  } catch (e) {
    if (isToolkitError(e)) throw new UsageError(`--policy ${path}: ${e.message}`);
    throw e;
  }
  return { policy: policy as NitroPolicy, allowDebug: allowDebug === true };
}

/** Does this look like a Nitro COSE_Sign1 (untagged array(4) or tag 18)? */
const looksLikeCose = (b: Uint8Array) => b.length !== SNP_REPORT_SIZE && (b[0] === 0x84 || (b[0] === 0xd2 && b[1] === 0x84));

interface NitroSettings {
  now: Date;
  roots: Uint8Array[] | undefined;
  simulatorRoots: Uint8Array[];
  policy: NitroPolicy;
  allowDebug: boolean;
}

/** Nitro flags -> verifier options, once per run (policy files and roots are read once for all FILEs). */
async function nitroSettings(values: VerifyValues, io: CliIO): Promise<NitroSettings> {
  const foreign = flagsOutside(values, NITRO_VERIFY_OPTIONS);
  if (foreign.length > 0) throw new FlagError(`${foreign.join(', ')}: SEV-SNP flag(s), but the evidence is a Nitro document`);
  try {
    const now = atFlag(values.at, io.now());
    let roots: Uint8Array[] | undefined;
    if (values.root !== undefined) {
      roots = [];
      for (const p of values.root) roots.push(...certificatesFrom(await readBounded(p, '--root'), `--root ${p}`));
    }
    const simulatorRoots: Uint8Array[] = [];
    for (const p of values['simulator-root'] ?? []) simulatorRoots.push(...certificatesFrom(await readBounded(p, '--simulator-root'), `--simulator-root ${p}`));

    let policy: NitroPolicy = {};
    let allowDebug = values['allow-debug'] === true;
    if (values.policy !== undefined) {
      const f = await loadPolicyFile(values.policy);
      policy = f.policy;
      allowDebug ||= f.allowDebug;
    }
    if (values.pcr !== undefined) {
      const pcrs: Record<string, Uint8Array[]> = {};
      for (const spec of values.pcr) {
        const m = /^(\d{1,2})=(.+)$/.exec(spec);
        if (!m || Number(m[1]) > 31) throw new UsageError(`--pcr: expected N=HEX with N in 0..31, got ${JSON.stringify(spec)}`);
        (pcrs[m[1]!] ??= []).push(hexFlag(m[2]!, `--pcr ${m[1]}`));
      }
      // A PCR given by flag replaces the policy file's expectation for that index.
      const merged: Record<string, unknown> = { ...(policy.pcrs ?? {}) };
      for (const k of Object.keys(merged)) if (pcrs[k.replace(/^PCR/i, '')] !== undefined) delete merged[k];
      policy = { ...policy, pcrs: { ...(merged as NitroPolicy['pcrs']), ...pcrs } };
    }
    if (values.nonce !== undefined) policy = { ...policy, nonce: hexFlag(values.nonce, '--nonce') };
    if (values['user-data'] !== undefined) policy = { ...policy, userData: hexFlag(values['user-data'], '--user-data') };
    if (values['public-key'] !== undefined) policy = { ...policy, publicKey: hexFlag(values['public-key'], '--public-key') };
    if (values['max-age'] !== undefined) {
      const s = values['max-age'];
      if (!/^\d{1,10}$/.test(s) || Number(s) < 1) throw new UsageError(`--max-age: expected a whole number of seconds (>= 1), got ${JSON.stringify(s)}`);
      policy = { ...policy, maxAgeSeconds: Number(s) };
    }
    try {
      compileNitroPolicy(policy);
    } catch (e) {
      if (isToolkitError(e)) throw new UsageError(e.message);
      throw e;
    }
    return { now, roots, simulatorRoots, policy, allowDebug };
  } catch (e) {
    throw asFlagError(e);
  }
}

function summarize(r: VerifiedNitroDocument): [string, string][] {
  const hex = (b: Uint8Array | undefined) =>
    b === undefined
      ? '(none)'
      : b.length === 0
        ? '(empty)'
        : b.length > 64
          ? `${Buffer.from(b.subarray(0, 32)).toString('hex')}... (${b.length} bytes; --json prints all)`
          : Buffer.from(b).toString('hex');
  const lines: [string, string][] = [
    ['module_id', r.moduleId],
    ['timestamp', r.timestamp.toISOString()],
    ['valid until', r.validUntil.toISOString()],
  ];
  for (const [i, v] of r.pcrs) lines.push([`PCR${i}`, hex(v)]);
  lines.push(['public_key', hex(r.publicKey)], ['user_data', hex(r.userData)], ['nonce', hex(r.nonce)]);
  lines.push(['leaf', r.certificate.subject], ['root', r.chain[0]!.subject]);
  return lines;
}

/** The window in which a Nitro document's chain is valid, for the message under an expired chain. */
function nitroWindow(e: ToolkitError, bytes: Uint8Array | undefined): ValidityWindow | undefined {
  if (bytes === undefined || e.code !== 'ERR_NITRO_CHAIN_INVALID' || (e.reason !== 'expired' && e.reason !== 'not_yet_valid')) return undefined;
  try {
    const p = parseNitroDocument(bytes);
    const certs = [...p.cabundle, p.certificate].map((c) => parseCertificate(c));
    return {
      notBefore: new Date(Math.max(...certs.map((c) => c.notBefore.getTime()))),
      notAfter: new Date(Math.min(...certs.map((c) => c.notAfter.getTime()))),
      timestamp: new Date(p.timestamp),
    };
  } catch {
    return undefined;
  }
}

/** The state of one `verify` run: its flags, and the settings derived from them once. */
class VerifyRun {
  #nitro: Promise<NitroSettings> | undefined;
  readonly #snpCache: SnpSettingsCache = {};
  constructor(
    readonly values: VerifyValues,
    readonly io: CliIO,
  ) {}

  get snpRequested(): boolean {
    return this.values.cert !== undefined || this.values['cert-table'] !== undefined;
  }

  async snp(input: Uint8Array, out: OutputOptions): Promise<number> {
    const foreign = flagsOutside(this.values, SNP_VERIFY_OPTIONS);
    if (foreign.length > 0) throw new FlagError(`${foreign.join(', ')}: Nitro flag(s), but the evidence is an SEV-SNP report`);
    const mod = await import('./verify-snp.js');
    return mod.verifySnpInput(input, this.values, this.io, out, this.#snpCache);
  }

  async nitro(input: Uint8Array, out: OutputOptions): Promise<number> {
    let bytes: Uint8Array | undefined;
    let encodingError: unknown;
    try {
      bytes = decodeEvidenceText(input);
    } catch (e) {
      encodingError = e;
    }
    if (bytes !== undefined && !looksLikeCose(bytes)) return this.snp(input, out);
    const s = await (this.#nitro ??= nitroSettings(this.values, this.io));
    try {
      if (bytes === undefined) throw encodingError;
      const r = verifyNitro(bytes, { now: s.now, roots: s.roots, simulatorRoots: s.simulatorRoots, policy: s.policy, allowDebug: s.allowDebug });
      const claims = {
        moduleId: r.moduleId,
        timestamp: r.timestamp,
        digest: r.digest,
        pcrs: r.pcrs,
        publicKey: r.publicKey ?? null,
        userData: r.userData ?? null,
        nonce: r.nonce ?? null,
        certificate: r.certificate,
        chain: r.chain,
        validUntil: r.validUntil,
      };
      return writeValid(this.io, out, { format: r.format, platform: r.platform, claims, summary: summarize(r), debug: isDebugMode(r.pcrs) });
    } catch (e) {
      if (e instanceof AttestationError) {
        const window = nitroWindow(e, bytes);
        return writeInvalid(this.io, out, e, window ? { window, atGiven: this.values.at !== undefined } : {});
      }
      throw e;
    }
  }

  async file(file: string, out: OutputOptions): Promise<number> {
    const input = await readEvidenceArg(file, this.io, 'FILE', this.snpRequested ? { statAsUsage: true } : {});
    return this.snpRequested ? this.snp(input, out) : this.nitro(input, out);
  }
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  if (helpRequested(argv, io, HELP)) return EXIT_OK;
  const { values, positionals } = usage(() => parseArgs({ args: argv, strict: true, allowPositionals: true, options: VERIFY_OPTIONS }));
  if (positionals.length === 0) throw new UsageError('missing FILE (or - for standard input)\n\n' + HELP);
  if (positionals.filter((p) => p === '-').length > 1) throw new UsageError('"-" (standard input) may be given only once');
  const json = values.json === true;
  const r = new VerifyRun(values as VerifyValues, io);
  if (positionals.length === 1) return r.file(positionals[0]!, { json });

  let worst = EXIT_OK;
  for (const file of positionals) {
    const out: OutputOptions = { json, file };
    let code: number;
    try {
      code = await r.file(file, out);
    } catch (e) {
      if (e instanceof FlagError) throw e;
      const err = e as NodeJS.ErrnoException;
      if (e instanceof UsageError) code = writeFileError(io, out, { code: e.code, message: e.message });
      else if (typeof err?.code === 'string' && typeof err?.syscall === 'string')
        code = writeFileError(io, out, { code: 'ERR_INPUT', reason: err.code, message: fileErrorMessage(err, file, 'FILE') });
      else throw e;
    }
    worst = Math.max(worst, code);
  }
  return worst;
}
