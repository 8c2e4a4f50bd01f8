/**
 * `enclavekit verify FILE|- [--at ISO-TIME] [--root PEM]... [--allow-debug] [--pcr N=HEX]...
 *   [--nonce HEX] [--user-data HEX] [--policy FILE.json] [--json]`
 *
 * Verifies a Nitro attestation document (raw, base64 or hex). SEV-SNP reports go to verify-snp.ts:
 * when `--cert` is given, or the decoded input is 0x4A0 bytes or does not start like a COSE_Sign1.
 * Exit 0 valid, 1 invalid evidence or policy violation, 2 usage or I/O error.
 */
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { decodeEvidenceText } from '../../attestation/bytes.js';
import { AttestationError, isToolkitError } from '../../attestation/errors.js';
import { verifyNitro, type NitroPolicy, type VerifiedNitroDocument } from '../../attestation/index.js';
import { compileNitroPolicy } from '../../attestation/nitro/policy.js';
import { EXIT_OK, UsageError, usage, type CliIO } from './io.js';
import { atFlag, helpRequested, hexFlag, readBounded, readEvidenceArg, readPolicyJson } from './verify-common.js';
import { writeInvalid, writeValid } from './verify-output.js';

const HELP = `usage: enclavekit verify FILE|- [options]

Verify a Nitro attestation document (or an SEV-SNP report, see --cert) offline.
FILE may hold raw bytes, base64 or hex; "-" reads standard input.

  --at ISO-TIME        verification time (default: now), e.g. 2024-09-07T15:00:00Z
  --root PEM           trusted root certificate(s), PEM or DER; replaces the built-in AWS root (repeatable)
  --simulator-root PEM a simulator root to trust as well (repeatable); documents under it verify
                       with platform "simulator". Never trusted without this flag.
  --allow-debug        accept debug-mode enclaves (PCR0, PCR1, PCR2 all zero)
  --pcr N=HEX          expected PCR N; repeat the same N to allow several values (repeatable)
  --nonce HEX          expected nonce
  --user-data HEX      expected user_data
  --policy FILE.json   policy file (strict JSON, see README); flags add to it
  --json               print one JSON object instead of a summary
  --cert FILE          SEV-SNP: the VCEK/cert chain (handled by the SEV-SNP verifier)

Exit status: 0 valid, 1 invalid or policy violation, 2 usage or I/O error.
`;

const SNP_REPORT_SIZE = 0x4a0;
const POLICY_FILE_KEYS = new Set(['pcrs', 'nonce', 'userData', 'publicKey', 'maxAgeSeconds', 'allowDebug']);

/** PEM (one or more CERTIFICATE blocks) or a single DER certificate. */
function rootsFrom(bytes: Uint8Array, path: string): Uint8Array[] {
  const text = new TextDecoder().decode(bytes);
  if (!text.includes('-----BEGIN')) {
    if (bytes[0] !== 0x30) throw new UsageError(`--root ${path}: neither PEM nor DER`);
    return [bytes];
  }
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)) {
    const b64 = m[1]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new UsageError(`--root ${path}: bad base64 in PEM`);
    out.push(new Uint8Array(Buffer.from(b64, 'base64')));
  }
  if (out.length === 0) throw new UsageError(`--root ${path}: no CERTIFICATE block`);
  return out;
}

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

async function delegateSnp(argv: string[], io: CliIO): Promise<number> {
  // A variable specifier: verify-snp.ts is written separately and may not exist yet.
  const spec = './verify-snp.js';
  let mod: { runSnp?: (argv: string[], io: CliIO) => Promise<number> };
  try {
    mod = (await import(spec)) as typeof mod;
  } catch (e) {
    throw new UsageError(`SEV-SNP verification is not available in this build (${(e as Error).message})`);
  }
  if (typeof mod.runSnp !== 'function') throw new UsageError('SEV-SNP verification is not available in this build');
  return mod.runSnp(argv, io);
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

export async function run(argv: string[], io: CliIO): Promise<number> {
  if (helpRequested(argv, io, HELP)) return EXIT_OK;
  if (argv.some((a) => a === '--cert' || a.startsWith('--cert='))) return delegateSnp(argv, io);

  // Read the evidence first (SNP reports take options this parser does not know), then parse strictly.
  const loose = parseArgs({ args: argv, strict: false, allowPositionals: true });
  const file = loose.positionals[0];
  if (file === undefined) throw new UsageError('missing FILE (or - for standard input)\n\n' + HELP);
  const input = await readEvidenceArg(file, io, 'FILE');
  let bytes: Uint8Array | undefined;
  let encodingError: unknown;
  try {
    bytes = decodeEvidenceText(input);
  } catch (e) {
    encodingError = e;
  }
  if (bytes !== undefined && !looksLikeCose(bytes)) {
    const replayed: CliIO = { ...io, stdin: Readable.from([Buffer.from(input)]) };
    return delegateSnp(argv, replayed);
  }

  const { values, positionals } = usage(() =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        at: { type: 'string' },
        root: { type: 'string', multiple: true },
        'simulator-root': { type: 'string', multiple: true },
        'allow-debug': { type: 'boolean' },
        pcr: { type: 'string', multiple: true },
        nonce: { type: 'string' },
        'user-data': { type: 'string' },
        policy: { type: 'string' },
        json: { type: 'boolean' },
      },
    }),
  );
  if (positionals.length !== 1) throw new UsageError('expected exactly one FILE');
  const json = values.json === true;

  const now = atFlag(values.at, io.now());
  let roots: Uint8Array[] | undefined;
  if (values.root !== undefined) {
    roots = [];
    for (const p of values.root) roots.push(...rootsFrom(await readBounded(p, '--root'), p));
  }
  const simulatorRoots: Uint8Array[] = [];
  for (const p of values['simulator-root'] ?? [])
    simulatorRoots.push(...rootsFrom(await readBounded(p, '--simulator-root'), p));

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
  try {
    compileNitroPolicy(policy);
  } catch (e) {
    if (isToolkitError(e)) throw new UsageError(e.message);
    throw e;
  }

  try {
    if (bytes === undefined) throw encodingError;
    const r = verifyNitro(bytes, { now, roots, simulatorRoots, policy, allowDebug });
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
    return writeValid(io, json, { format: r.format, platform: r.platform, claims, summary: summarize(r) });
  } catch (e) {
    if (e instanceof AttestationError) return writeInvalid(io, json, e);
    throw e;
  }
}
