/**
 * `enclavekit eif describe|build|ramdisk`: Nitro enclave images without nitro-cli.
 *
 *   eif describe FILE.eif [--json]
 *   eif build --kernel F --cmdline STR --ramdisk F [--ramdisk F]... [--metadata FILE.json] [--arch x86_64|aarch64]
 *             [--sign-cert PEM --sign-key PEM] --out FILE.eif [--json]
 *   eif ramdisk --image IMAGE.tar|DIR --out RAMDISK.cpio [--json]      (the application ramdisk)
 *   eif ramdisk --init FILE --nsm FILE --out BOOTSTRAP.cpio [--json]   (the bootstrap ramdisk)
 *
 * Exit 0 valid / written, 1 a CRC or signature that does not check, 2 usage, not an EIF, bad image, I/O.
 */
import { parseArgs } from 'node:util';
import { readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { toHex } from '../../attestation/bytes.js';
import { AttestationError, isToolkitError, type ToolkitError } from '../../attestation/errors.js';
import { nodeCrypto } from '../../attestation/crypto/node.js';
import { describeEif, parseJsonTree, pcrsHex, type EifDescription, type EifSignatureInfo, type JsonTree } from '../../attestation/eif/index.js';
import { buildEif } from '../eif/build.js';
import { FileSource, nodeCrc32, nodeSha384 } from '../eif/io.js';
import { packageRoot } from '../worker-process.js';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, UsageError, usage, type CliIO } from './io.js';

const HELP = `usage: enclavekit eif describe FILE.eif [--json]
       enclavekit eif build --kernel FILE --cmdline STR --ramdisk FILE [--ramdisk FILE]... --out FILE.eif
                            [--arch x86_64|aarch64] [--metadata FILE.json] [--sign-cert PEM --sign-key PEM]
                            [--name NAME] [--image-version V] [--build-time TIME] [--kernel-config FILE] [--json]
       enclavekit eif ramdisk --image IMAGE.tar|OCI-DIR --out RAMDISK.cpio [--platform OS/ARCH] [--tag REPO:TAG] [--json]
       enclavekit eif ramdisk --init FILE --nsm FILE --out BOOTSTRAP.cpio [--json]

Nitro Enclave images (EIF) without nitro-cli: check one, build one, or build its ramdisks from a
container image, with the PCRs a key policy pins.

describe   header (version, arch, default memory and vCPUs), sections, CRC-32, PCR0/1/2, and for a
           signed image PCR8 and the signature (COSE_Sign1 over PCR0 by the signing certificate), the
           metadata section. Exit 0 valid, 1 CRC or signature fails, 2 not an EIF.
build      an EIF version 4 laid out as AWS's eif_build / nitro-cli lay it out: kernel, cmdline,
           metadata, the ramdisks in order (the first is the bootstrap ramdisk: PCR1; the others the
           application: PCR2), then the signature. The same inputs give the same bytes.
  --kernel FILE          bzImage (x86_64) or Image (aarch64), e.g. nitro-cli's blobs
  --cmdline STR          kernel command line (nitro-cli uses its blobs' cmdline file, trimmed)
  --ramdisk FILE         repeatable, in boot order
  --arch ARCH            x86_64 (default) or aarch64 (header flag bit 0)
  --metadata FILE.json   custom metadata (at most 4096 bytes of JSON, as eif_build allows)
  --sign-cert PEM        signing certificate (EC P-256/P-384/P-521); with --sign-key: PCR8 and a
  --sign-key PEM         signature over PCR0, deterministic (RFC 6979)
  --name NAME            ImageName (default: the kernel file name, as eif_build)
  --image-version V      ImageVersion (default 1.0)
  --build-time TIME      BuildTime (default 1970-01-01T00:00:00+00:00, so builds are reproducible)
  --kernel-config FILE   OperatingSystem and KernelVersion from a kernel .config (as nitro-cli);
                         default "OS" and "kernel" (as eif_build)
  --out FILE.eif         output
ramdisk    a ramdisk laid out as nitro-cli build-enclave (linuxkit) lays it out, deterministically:
  --image PATH           \`docker save\` tarball, or an OCI image layout (tarball or directory):
                         the application ramdisk (rootfs/ from the image, cmd, env)
  --platform OS/ARCH     choose a manifest of a multi-platform OCI index (e.g. linux/amd64)
  --tag REPO:TAG         choose an image of a docker save tarball that holds several
  --init FILE, --nsm FILE  instead of --image: the bootstrap ramdisk from AWS's init and nsm.ko
  --out FILE             output
  --json                 one JSON object on standard output

Exit status: 0 ok, 1 CRC or signature failure, 2 usage, not an EIF, unreadable image, I/O error.
`;

const iso = (d: Date) => d.toISOString();

function signatureJson(s: EifSignatureInfo): Record<string, unknown> {
  if (!s.present) return { present: false };
  if (!s.valid) return { present: true, valid: false, code: s.code, reason: s.reason, message: s.message };
  const c = s.certificate;
  return {
    present: true,
    valid: true,
    algorithm: s.algorithm,
    curve: s.curve,
    pcrIndex: s.pcrIndex,
    certificate: { subject: c.subject, issuer: c.issuer, serial: c.serial, notBefore: iso(c.notBefore), notAfter: iso(c.notAfter), sha256: toHex(nodeCrypto.sha256(s.certificateDer)) },
  };
}

export function describeJson(d: EifDescription): Record<string, unknown> {
  return {
    ok: d.ok,
    ...(d.ok ? {} : { code: d.code, reason: d.reason, message: d.message }),
    version: d.version,
    arch: d.arch,
    flags: d.flags,
    defaultMemory: d.defaultMemory,
    defaultCpus: d.defaultCpus,
    size: d.size,
    crcValid: d.crcValid,
    crc32: { header: hex32(d.crc.header), computed: hex32(d.crc.computed) },
    sections: d.sections.map((s) => ({ type: s.type, offset: s.offset, size: s.size })),
    cmdline: d.cmdline,
    pcrs: pcrsHex(d.pcrs),
    signature: signatureJson(d.signature),
    metadata: d.metadata,
  };
}

const hex32 = (n: number) => '0x' + n.toString(16).padStart(8, '0');

/** Describe the EIF at `path` (throws ERR_EIF_INVALID for what is not an EIF). */
export function describeEifFile(path: string, label = 'FILE'): EifDescription {
  const f = new FileSource(path, `${label} ${path}`);
  try {
    return describeEif(f, { crypto: nodeCrypto, hash: nodeSha384, crc32: nodeCrc32 });
  } finally {
    f.close();
  }
}

/**
 * `--pcr N=HEX` arguments for PCR0, PCR1, PCR2 (and PCR8 when signed) of a valid EIF (`policy --eif`).
 * An image whose CRC or signature does not check is refused with its code.
 */
export async function pcrArgsFromEif(path: string): Promise<string[]> {
  const d = describeEifFile(path, '--eif');
  if (!d.ok) throw new AttestationError(d.code!, `--eif ${path}: ${d.message}`, { reason: d.reason ?? 'eif' });
  return Object.entries(pcrsHex(d.pcrs)).map(([k, v]) => `${k}=${v}`);
}

function writeError(io: CliIO, json: boolean, e: ToolkitError): number {
  if (json) io.stdout.write(JSON.stringify({ ok: false, code: e.code, reason: e.reason ?? null, message: e.message }) + '\n');
  else io.stderr.write(`enclavekit eif: ${e.code}${e.reason ? ` (${e.reason})` : ''}: ${e.message}\n`);
  return EXIT_USAGE;
}

async function describe(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = usage(() => parseArgs({ args: argv, strict: true, allowPositionals: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }));
  if (values.help) return help(io);
  if (positionals.length !== 1) throw new UsageError('eif describe expects exactly one FILE.eif');
  const json = values.json === true;
  let d: EifDescription;
  try {
    d = describeEifFile(positionals[0]!);
  } catch (e) {
    if (isToolkitError(e)) return writeError(io, json, e);
    throw e;
  }
  if (json) io.stdout.write(JSON.stringify(describeJson(d)) + '\n');
  else {
    const lines = [
      `${d.ok ? 'VALID' : `INVALID: ${d.code} (${d.reason}): ${d.message}`}`,
      `EIF version ${d.version}, ${d.arch}, default ${d.defaultMemory / 1024 / 1024} MiB and ${d.defaultCpus} vCPUs, ${d.size} bytes, CRC-32 ${d.crcValid ? 'valid' : 'INVALID'}`,
      ...d.sections.map((s) => `  ${s.type.padEnd(9)} at ${String(s.offset).padStart(10)}  ${s.size} bytes`),
      `cmdline   ${d.cmdline}`,
      ...Object.entries(pcrsHex(d.pcrs)).map(([k, v]) => `PCR${k}      ${v}`),
      `signature ${!d.signature.present ? 'none' : d.signature.valid ? `valid ${d.signature.algorithm} by ${d.signature.certificate.subject} (over PCR${d.signature.pcrIndex})` : `INVALID: ${d.signature.message}`}`,
      `metadata  ${d.metadata ? JSON.stringify(d.metadata) : 'none'}`,
    ];
    io.stdout.write(lines.join('\n') + '\n');
  }
  return d.ok ? EXIT_OK : EXIT_INVALID;
}

function readSmallFile(path: string, label: string, max: number): Uint8Array {
  let size: number;
  try {
    const s = statSync(path);
    if (!s.isFile()) throw new UsageError(`${label} ${path} is not a regular file`);
    size = s.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${label} ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (size > max) throw new UsageError(`${label} ${path} is larger than ${max} bytes`);
  return new Uint8Array(readFileSync(path));
}

/** OperatingSystem and KernelVersion from the third line of a kernel .config, as nitro-cli reads them. */
export function kernelConfigInfo(text: string): { os: string; kernel: string } {
  const line = text.split('\n')[2];
  if (line === undefined) throw new UsageError('--kernel-config: fewer than 3 lines');
  const words = line.split(/[ /-]/);
  return { os: words[1] ?? 'Unknown', kernel: words[3] ?? 'Unknown' };
}

function toolVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

async function build(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = usage(() =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        kernel: { type: 'string' },
        cmdline: { type: 'string' },
        ramdisk: { type: 'string', multiple: true },
        metadata: { type: 'string' },
        arch: { type: 'string' },
        'sign-cert': { type: 'string' },
        'sign-key': { type: 'string' },
        name: { type: 'string' },
        'image-version': { type: 'string' },
        'build-time': { type: 'string' },
        'kernel-config': { type: 'string' },
        out: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) return help(io);
  void positionals;
  const missing = (['kernel', 'cmdline', 'ramdisk', 'out'] as const).filter((k) => values[k] === undefined);
  if (missing.length) throw new UsageError(`eif build needs ${missing.map((k) => `--${k}`).join(', ')}`);
  const arch = values.arch ?? 'x86_64';
  if (arch !== 'x86_64' && arch !== 'aarch64') throw new UsageError('--arch must be x86_64 or aarch64');
  if ((values['sign-cert'] === undefined) !== (values['sign-key'] === undefined)) throw new UsageError('--sign-cert and --sign-key go together');
  let custom: JsonTree = null;
  if (values.metadata !== undefined) {
    const bytes = readSmallFile(values.metadata, '--metadata', 4096);
    try {
      custom = parseJsonTree(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch (e) {
      throw new UsageError(`--metadata ${values.metadata}: ${(e as Error).message}`);
    }
  }
  let os = 'OS';
  let kernelVersion = 'kernel';
  if (values['kernel-config'] !== undefined) {
    const k = kernelConfigInfo(new TextDecoder().decode(readSmallFile(values['kernel-config'], '--kernel-config', 4 << 20)));
    os = k.os;
    kernelVersion = k.kernel;
  }
  const json = values.json === true;
  let built;
  try {
    built = buildEif({
      kernel: values.kernel!,
      cmdline: values.cmdline!,
      ramdisks: values.ramdisk!,
      out: values.out!,
      arch,
      metadata: {
        imageName: values.name ?? basename(values.kernel!),
        imageVersion: values['image-version'] ?? '1.0',
        buildInfo: {
          buildTime: values['build-time'] ?? '1970-01-01T00:00:00+00:00',
          buildTool: 'enclavekit',
          buildToolVersion: toolVersion(),
          operatingSystem: os,
          kernelVersion,
        },
        dockerInfo: null,
        customMetadata: custom,
      },
      ...(values['sign-cert'] !== undefined
        ? { sign: { certificatePem: readSmallFile(values['sign-cert'], '--sign-cert', 64 * 1024), privateKeyPem: readSmallFile(values['sign-key']!, '--sign-key', 64 * 1024) } }
        : {}),
    });
  } catch (e) {
    if (isToolkitError(e)) return writeError(io, json, e);
    throw e;
  }
  const out = {
    ok: true,
    out: values.out!,
    version: 4,
    arch,
    size: built.size,
    crc32: hex32(built.crc32),
    sections: built.sections,
    pcrs: pcrsHex(built.pcrs),
    signature: { present: built.pcrs[8] !== undefined },
  };
  if (json) io.stdout.write(JSON.stringify(out) + '\n');
  else io.stdout.write([`wrote ${out.out} (${out.size} bytes, EIF v4, ${arch})`, ...Object.entries(out.pcrs).map(([k, v]) => `PCR${k} ${v}`)].join('\n') + '\n');
  return EXIT_OK;
}

async function ramdisk(argv: string[], io: CliIO): Promise<number> {
  const { values } = usage(() =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        image: { type: 'string' },
        platform: { type: 'string' },
        tag: { type: 'string' },
        init: { type: 'string' },
        nsm: { type: 'string' },
        out: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) return help(io);
  if (values.out === undefined) throw new UsageError('eif ramdisk needs --out');
  const boot = values.init !== undefined || values.nsm !== undefined;
  if (boot === (values.image !== undefined)) throw new UsageError('eif ramdisk takes either --image, or --init and --nsm');
  if (boot && (values.init === undefined || values.nsm === undefined)) throw new UsageError('the bootstrap ramdisk needs both --init and --nsm');
  if (values.platform !== undefined && !/^[a-z0-9]+\/[a-z0-9_]+$/.test(values.platform)) throw new UsageError('--platform expects OS/ARCH, e.g. linux/amd64');
  const json = values.json === true;
  const { buildAppRamdisk, buildBootstrapRamdisk } = await import('../eif/ramdisk.js');
  let out: Record<string, unknown>;
  try {
    if (boot) out = { ok: true, kind: 'bootstrap', out: values.out, ...buildBootstrapRamdisk(values.init!, values.nsm!, values.out) };
    else {
      const r = await buildAppRamdisk(values.image!, values.out, { ...(values.platform ? { platform: values.platform } : {}), ...(values.tag ? { tag: values.tag } : {}) });
      out = { ok: true, kind: 'application', out: values.out, ...r };
    }
  } catch (e) {
    if (isToolkitError(e)) return writeError(io, json, e);
    throw e;
  }
  if (json) io.stdout.write(JSON.stringify(out) + '\n');
  else {
    io.stdout.write(`wrote ${out.out}: ${out.kind} ramdisk, ${out.entries} entries, ${out.size} bytes, SHA-384 ${out.sha384}\n`);
    for (const w of (out.warnings as { message: string }[] | undefined) ?? []) io.stderr.write(`warning: ${w.message}\n`);
  }
  return EXIT_OK;
}

function help(io: CliIO): number {
  io.stdout.write(HELP);
  return EXIT_OK;
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    io.stdout.write(HELP);
    return sub === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (sub === 'describe') return describe(rest, io);
  if (sub === 'build') return build(rest, io);
  if (sub === 'ramdisk') return ramdisk(rest, io);
  throw new UsageError(`unknown eif subcommand "${sub}" (describe, build, ramdisk)`);
}
