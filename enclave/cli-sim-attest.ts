/**
 * `enclavekit sim attest`: issue simulated evidence from a simulator state folder, for scripts and
 * tests. A Nitro document (default) or, with `--platform sev-snp`, an SNP report followed by its
 * certificate table.
 *
 *   enclavekit sim attest --state DIR --public-key SPKI.der [--pcr N=HEX]... [--nonce HEX]
 *     [--user-data HEX] [--platform nitro|sev-snp] [--image FILE]... | [--image-id HEX]
 *     [--instance-id ID] [--measurement HEX] --out DOC.cose
 *
 * It issues evidence as the simulated platform would, so it lives on the worker's side: the state
 * folder is opened by enclave/sim-state.ts and the image formulas are attestation/sim/image.ts's,
 * exactly what a simulated worker uses. bin/enclavekit.js dispatches `sim attest` here (host code
 * may not import enclave/); `sim kms` stays on the host side.
 */
import { randomBytes } from 'node:crypto';
import { writeFile, readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { concatBytes, fromHex, toHex } from '../attestation/bytes.js';
import { isToolkitError } from '../attestation/errors.js';
import { buildSnpCertTable } from '../attestation/sevsnp/certtable.js';
import { snpReportData } from '../attestation/sevsnp/binding.js';
import { issueNitroDocument } from '../attestation/sim/nitro.js';
import { issueSnpReport } from '../attestation/sim/snp.js';
import { SIM_DEFAULT_INSTANCE_ID, simBootPcrs, simImageIdFromDigests, simSnpMeasurement } from '../attestation/sim/image.js';
import { imageIdFromFiles } from './platform/sim-image.js';
import { openSimulatorState } from './sim-state.js';

const HELP = `usage: enclavekit sim attest --state DIR --public-key SPKI.der --out FILE [options]

Issue a simulated attestation (signed by the simulator root in DIR, created on first use).
Simulator evidence verifies only where that root is trusted explicitly; it says platform: simulator.

  --state DIR            simulator state folder (sim-ca.json, sim-snp.json, sim-root.pem)
  --public-key FILE      DER SubjectPublicKeyInfo to bind (Nitro public_key; SNP: in REPORT_DATA)
  --out FILE             where to write the document (Nitro COSE_Sign1) or report+cert table (SNP)
  --platform P           nitro (default) or sev-snp
  --image FILE           worker bundle file(s) the simulated image consists of (repeatable)
  --image-id HEX         48-byte image id instead of --image
  --instance-id ID       parent instance id measured into PCR4 (default ${SIM_DEFAULT_INSTANCE_ID})
  --pcr N=HEX            set PCR N (48 bytes) after the image PCRs; 16..31 appear as locked PCRs
  --nonce HEX            nonce (up to 512 bytes)
  --user-data HEX        user data (up to 512 bytes)
  --measurement HEX      SEV-SNP MEASUREMENT (48 bytes) instead of the one derived from the image
  --json                 print one JSON object: {"ok":true,"out","bytes","platform","pcr0"|"measurement"}
                         or {"ok":false,"code","message","exit"}

Exit status: 0 written, 2 usage error or unusable state folder.
`;

const EXIT_OK = 0;
const EXIT_USAGE = 2;

/** Bad arguments: exit 2. Named like the host CLI's, so callers and tests match on `name`. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The part of the host CLI's CliIO this command uses (the same shape, so tests pass either). */
export interface SimAttestIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** The clock, injectable for tests. */
  now: () => Date;
}

function hexArg(v: string, label: string, opts: { len?: number; max?: number } = {}): Uint8Array {
  let b: Uint8Array;
  try {
    b = fromHex(v, label);
  } catch {
    throw new UsageError(`--${label}: expected hex`);
  }
  if (opts.len !== undefined && b.length !== opts.len) throw new UsageError(`--${label}: expected ${opts.len} bytes, got ${b.length}`);
  if (opts.max !== undefined && b.length > opts.max) throw new UsageError(`--${label}: at most ${opts.max} bytes`);
  return b;
}

async function readFileBounded(path: string, max: number, label: string): Promise<Uint8Array> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw new UsageError(`--${label}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!st.isFile()) throw new UsageError(`--${label}: ${path} is not a file`);
  if (st.size > max) throw new UsageError(`--${label}: ${path} is larger than ${max} bytes`);
  return new Uint8Array(await readFile(path));
}

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        state: { type: 'string' },
        'public-key': { type: 'string' },
        out: { type: 'string' },
        platform: { type: 'string', default: 'nitro' },
        image: { type: 'string', multiple: true },
        'image-id': { type: 'string' },
        'instance-id': { type: 'string' },
        pcr: { type: 'string', multiple: true },
        nonce: { type: 'string' },
        'user-data': { type: 'string' },
        measurement: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    // Node's parser text in our words, as the host CLI's io.ts says it.
    const err = e as { code?: string; message?: string };
    const quoted = /'([^']*)'/.exec(String(err.message))?.[1];
    const msg =
      err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? `unknown option ${quoted}`
      : err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && /argument missing/.test(String(err.message)) ? `${quoted?.split(' ')[0]} needs a value`
      : String(err.message);
    throw new UsageError(`${msg}; see enclavekit sim attest --help`);
  }
}

export async function run(argv: string[], io: SimAttestIO): Promise<number> {
  const { values } = parse(argv);
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (!values.state) throw new UsageError('--state DIR is required');
  if (!values['public-key']) throw new UsageError('--public-key SPKI.der is required');
  if (!values.out) throw new UsageError('--out FILE is required');
  const platform = values.platform;
  if (platform !== 'nitro' && platform !== 'sev-snp') throw new UsageError('--platform must be nitro or sev-snp');
  if (values.image && values['image-id']) throw new UsageError('give --image or --image-id, not both');

  const publicKey = await readFileBounded(values['public-key'], 1024, 'public-key');
  const nonce = values.nonce !== undefined ? hexArg(values.nonce, 'nonce', { max: 512 }) : undefined;
  const userData = values['user-data'] !== undefined ? hexArg(values['user-data'], 'user-data', { max: 512 }) : undefined;
  const imageId = values['image-id'] !== undefined
    ? hexArg(values['image-id'], 'image-id', { len: 48 })
    : values.image
      ? await imageIdFromFiles(values.image)
      : simImageIdFromDigests([]); // an image of no files: stable, and distinct from any real bundle
  // Every argument is checked before the state folder is touched (creating it generates keys).
  const pcrOverrides = new Map<number, Uint8Array>();
  for (const spec of values.pcr ?? []) {
    const m = /^(\d{1,2})=([0-9a-fA-F]+)$/.exec(spec);
    if (!m || Number(m[1]) > 31) throw new UsageError(`--pcr ${spec}: expected N=HEX with N in 0..31`);
    pcrOverrides.set(Number(m[1]), hexArg(m[2]!, 'pcr', { len: 48 }));
  }
  const explicitMeasurement = values.measurement !== undefined ? hexArg(values.measurement, 'measurement', { len: 48 }) : undefined;
  if (platform === 'nitro' && explicitMeasurement) throw new UsageError('--measurement applies to --platform sev-snp');
  if (platform === 'sev-snp' && pcrOverrides.size > 0) throw new UsageError('SEV-SNP has no PCRs; use --measurement or --image');
  if (platform === 'sev-snp' && values['instance-id'] !== undefined) throw new UsageError('--instance-id applies to --platform nitro');
  const now = io.now();
  const state = await openSimulatorState(values.state, { now });

  let evidence: Uint8Array;
  const summary: string[] = [];
  /** What --json reports beside the file: PCR0 (Nitro) or MEASUREMENT (SEV-SNP), hex. */
  let measured: { pcr0: string } | { measurement: string };
  if (platform === 'nitro') {
    const instanceId = values['instance-id'] ?? SIM_DEFAULT_INSTANCE_ID;
    const pcrs = simBootPcrs({ imageId, instanceId });
    for (const [i, v] of pcrOverrides) pcrs.set(i, v);
    const moduleId = `${instanceId}-enc${randomBytes(8).toString('hex')}`;
    evidence = await issueNitroDocument(state.nitroCa, { moduleId, timestamp: now, pcrs, publicKey, userData: userData ?? null, nonce: nonce ?? null });
    measured = { pcr0: toHex(pcrs.get(0)!) };
    summary.push(`PCR0 ${measured.pcr0}`);
  } else {
    const measurement = explicitMeasurement ?? simSnpMeasurement(imageId);
    const report = await issueSnpReport(state.snpChain, {
      version: 5,
      measurement,
      reportData: snpReportData({ publicKey, userData: userData ?? null, nonce: nonce ?? null }),
    });
    const c = state.snpChain;
    evidence = concatBytes(report, buildSnpCertTable({ vcek: c.vcek.der, ask: c.ask.der, ark: c.ark.der }));
    measured = { measurement: toHex(measurement) };
    summary.push(`MEASUREMENT ${measured.measurement}`);
  }
  await writeFile(values.out, evidence);
  if (values.json)
    io.stdout.write(
      JSON.stringify({ ok: true, out: values.out, bytes: evidence.length, format: platform, platform: 'simulator', ...measured }) + '\n',
    );
  else io.stdout.write(`wrote ${values.out} (${evidence.length} bytes, ${platform}, platform: simulator)\n${summary.join('\n')}\n`);
  return EXIT_OK;
}

/**
 * Entry for bin/enclavekit.js (`enclavekit sim attest ...`). Errors are reported the way the host
 * dispatcher reports them for `sim`, so the command reads the same from either side.
 */
export async function main(
  argv: string[],
  io: SimAttestIO = { stdout: process.stdout, stderr: process.stderr, now: () => new Date() },
): Promise<number> {
  // Every failure here is a usage or state-folder error (exit 2; host/cli/exit.ts maps
  // ERR_SIMULATOR_STATE the same way); with --json it is also one {"ok":false,...} object on stdout.
  const fail = (code: string, message: string): number => {
    if (argv.includes('--json')) io.stdout.write(JSON.stringify({ ok: false, code, message, exit: EXIT_USAGE }) + '\n');
    io.stderr.write(`enclavekit sim: ${message}\n`);
    return EXIT_USAGE;
  };
  try {
    return await run(argv, io);
  } catch (e) {
    if (e instanceof UsageError) return fail('ERR_USAGE', e.message);
    if (isToolkitError(e)) return fail(e.code, `${e.code}: ${e.message}`);
    const err = e as NodeJS.ErrnoException;
    if (typeof err?.code === 'string' && typeof err?.syscall === 'string')
      return fail('ERR_INPUT', typeof err.path === 'string' ? `${err.code === 'ENOENT' ? 'no such file or folder' : `cannot access (${err.code})`}: ${err.path}` : `${err.syscall} failed (${err.code})`);
    throw e;
  }
}
