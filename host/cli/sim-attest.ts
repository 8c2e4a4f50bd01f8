/**
 * `enclavekit sim attest`: issue simulated evidence from a simulator state folder, for scripts and
 * tests. A Nitro document (default) or, with `--platform sev-snp`, an SNP report followed by its
 * certificate table.
 *
 *   enclavekit sim attest --state DIR --public-key SPKI.der [--pcr N=HEX]... [--nonce HEX]
 *     [--user-data HEX] [--platform nitro|sev-snp] [--image FILE]... | [--image-id HEX]
 *     [--instance-id ID] [--measurement HEX] --out DOC.cose
 *
 * host/ may not import the worker's modules (only its protocol), so this command reads the state
 * folder and derives the image PCRs itself. The formats are the ones written down in
 * enclave/sim-state.ts and enclave/platform/sim-image.ts, and test/platform checks that both sides
 * agree byte for byte (same PCRs, same REPORT_DATA, one folder readable by both).
 */
import { createHash, randomBytes } from 'node:crypto';
import { link, lstat, mkdir, open, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sha512 } from '@noble/hashes/sha2.js';
import { fromHex, toHex } from '../../attestation/bytes.js';
import { ToolkitError } from '../../attestation/errors.js';
import { buildSnpCertTable } from '../../attestation/sevsnp/certtable.js';
import { createNitroSimCa, exportNitroSimCa, importNitroSimCa, issueNitroDocument } from '../../attestation/sim/nitro.js';
import { createSnpSimChain, exportSnpSimChain, importSnpSimChain, issueSnpReport } from '../../attestation/sim/snp.js';
import { EXIT_OK, UsageError, usage, type CliIO } from './io.js';

const HELP = `usage: enclavekit sim attest --state DIR --public-key SPKI.der --out FILE [options]

Issue a simulated attestation (signed by the simulator root in DIR, created on first use).
Simulator evidence verifies only where that root is trusted explicitly; it says platform: simulator.

  --state DIR            simulator state folder (sim-ca.json, sim-snp.json, sim-root.pem)
  --public-key FILE      DER SubjectPublicKeyInfo to bind (Nitro public_key; SNP: in REPORT_DATA)
  --out FILE             where to write the document (Nitro COSE_Sign1) or report+cert table (SNP)
  --platform P           nitro (default) or sev-snp
  --image FILE           worker bundle file(s) the simulated image consists of (repeatable)
  --image-id HEX         48-byte image id instead of --image
  --instance-id ID       parent instance id measured into PCR4 (default ${'i-0e5a51c0de0000000'})
  --pcr N=HEX            set PCR N (48 bytes) after the image PCRs; 16..31 appear as locked PCRs
  --nonce HEX            nonce (up to 512 bytes)
  --user-data HEX        user data (up to 512 bytes)
  --measurement HEX      SEV-SNP MEASUREMENT (48 bytes) instead of the one derived from the image
`;

const DEFAULT_INSTANCE_ID = 'i-0e5a51c0de0000000';
const ZERO48 = new Uint8Array(48);
const INTERMEDIATE_LIFETIME_MS = 5 * 365 * 24 * 3_600_000;
const MAX_STATE_FILE = 1 << 20;

const sha384 = (...parts: (Uint8Array | string)[]): Uint8Array => {
  const h = createHash('sha384');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

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

// --- the state folder (format: enclave/sim-state.ts) ---------------------------------------------

function stateError(message: string, reason: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_SIMULATOR_STATE', message, cause === undefined ? { reason } : { reason, cause });
}

async function publishOnce(path: string, data: string): Promise<boolean> {
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw stateError(`cannot write ${path}`, 'write', e);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

async function loadOrCreate<T>(path: string, importer: (j: unknown) => Promise<T>, create: () => Promise<unknown>): Promise<T> {
  for (let attempt = 0; attempt < 2; attempt++) {
    let text: string | undefined;
    try {
      const st = await stat(path);
      if ((st.mode & 0o077) !== 0) throw stateError(`${path} holds private keys but is accessible to other users`, 'permissions');
      if (st.size > MAX_STATE_FILE) throw stateError(`${path} is too large`, 'too_large');
      text = await readFile(path, 'utf8');
    } catch (e) {
      if (e instanceof ToolkitError) throw e;
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw stateError(`cannot read ${path}`, 'read', e);
    }
    if (text !== undefined) {
      try {
        return await importer(JSON.parse(text) as unknown);
      } catch (e) {
        throw stateError(`${path} is not a simulator state file this version understands`, 'corrupt', e);
      }
    }
    const json = await create();
    if (await publishOnce(path, JSON.stringify(json, null, 1) + '\n')) return importer(json);
  }
  throw stateError(`${path} appeared and vanished while opening the state`, 'race');
}

async function openState(dir: string, now: Date) {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw stateError(`${dir} is not a directory`, 'not_directory');
  const until = new Date(now.getTime() + INTERMEDIATE_LIFETIME_MS);
  const ca = await loadOrCreate(join(dir, 'sim-ca.json'), importNitroSimCa, async () =>
    exportNitroSimCa(
      await createNitroSimCa({ now, overrides: { regional: { notAfter: until }, zonal: { notAfter: until }, instance: { notAfter: until } } }),
    ),
  );
  const snp = await loadOrCreate(join(dir, 'sim-snp.json'), async (j) => importSnpSimChain(j), async () =>
    exportSnpSimChain(await createSnpSimChain({ now, product: 'Genoa' })),
  );
  const pemPath = join(dir, 'sim-root.pem');
  const b64 = Buffer.from(ca.rootDer).toString('base64').match(/.{1,64}/g)!.join('\n');
  const pem = `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
  const cur = await readFile(pemPath, 'utf8').catch(() => undefined);
  if (cur !== pem) {
    if (cur !== undefined) await unlink(pemPath).catch(() => undefined);
    await publishOnce(pemPath, pem);
  }
  return { ca, snp };
}

// --- image identity (formulas: enclave/platform/sim-image.ts) --------------------------------------

async function imageIdFromFiles(paths: readonly string[]): Promise<Uint8Array> {
  const digests: Uint8Array[] = [];
  for (const p of paths) {
    const h = createHash('sha384');
    const fh = await open(p, 'r');
    try {
      for await (const c of fh.createReadStream({ highWaterMark: 1 << 20 })) h.update(c as Buffer);
    } finally {
      await fh.close();
    }
    digests.push(new Uint8Array(h.digest()));
  }
  return sha384('enclavekit-sim-image-v1\0', ...digests);
}

function bootPcrs(imageId: Uint8Array, instanceId: string): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  for (let i = 0; i < 16; i++) m.set(i, new Uint8Array(48));
  for (const k of [0, 1, 2]) m.set(k, sha384(ZERO48, sha384(`enclavekit-sim-pcr${k}-v1\0`, imageId)));
  m.set(4, sha384(ZERO48, instanceId));
  return m;
}

/** REPORT_DATA binding (enclave/platform/sev-snp-binding.ts). */
function snpReportData(publicKey: Uint8Array, userData: Uint8Array, nonce: Uint8Array): Uint8Array {
  const h = sha512.create();
  h.update(new TextEncoder().encode('enclavekit-snp-report-data-v1\0'));
  for (const b of [publicKey, userData, nonce]) {
    h.update(Uint8Array.of(b.length >>> 24, (b.length >>> 16) & 0xff, (b.length >>> 8) & 0xff, b.length & 0xff));
    h.update(b);
  }
  return h.digest();
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = usage(() =>
    parseArgs({
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
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
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
      : sha384('enclavekit-sim-image-v1\0'); // an image of no files: stable, and distinct from any real bundle
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
  const state = await openState(values.state, now);

  let evidence: Uint8Array;
  const summary: string[] = [];
  if (platform === 'nitro') {
    const pcrs = bootPcrs(imageId, values['instance-id'] ?? DEFAULT_INSTANCE_ID);
    for (const [i, v] of pcrOverrides) pcrs.set(i, v);
    const moduleId = `${values['instance-id'] ?? DEFAULT_INSTANCE_ID}-enc${randomBytes(8).toString('hex')}`;
    evidence = await issueNitroDocument(state.ca, { moduleId, timestamp: now, pcrs, publicKey, userData: userData ?? null, nonce: nonce ?? null });
    summary.push(`PCR0 ${toHex(pcrs.get(0)!)}`);
  } else {
    const measurement = explicitMeasurement ?? sha384('enclavekit-sim-snp-measurement-v1\0', imageId);
    const report = await issueSnpReport(state.snp, {
      version: 5,
      measurement,
      reportData: snpReportData(publicKey, userData ?? new Uint8Array(0), nonce ?? new Uint8Array(0)),
    });
    const table = buildSnpCertTable({ vcek: state.snp.vcek.der, ask: state.snp.ask.der, ark: state.snp.ark.der });
    evidence = new Uint8Array(report.length + table.length);
    evidence.set(report, 0);
    evidence.set(table, report.length);
    summary.push(`MEASUREMENT ${toHex(measurement)}`);
  }
  await writeFile(values.out, evidence);
  io.stdout.write(`wrote ${values.out} (${evidence.length} bytes, ${platform}, platform: simulator)\n${summary.join('\n')}\n`);
  return EXIT_OK;
}
