/**
 * `enclavekit snp measure|id-digest`: SEV-SNP reference values without sev-snp-measure or snpguest.
 *
 *   snp measure --ovmf FILE --vcpus N --vcpu-type NAME --vmm-type QEMU|EC2|GCE [--kernel F [--initrd F] [--append STR]]
 *               [--guest-features HEX] [--ovmf-hash HEX] [--json]
 *   snp id-digest --key PEM [--json]
 *
 * Exit 0 computed, 2 usage, unreadable or unmeasurable input.
 */
import { parseArgs } from 'node:util';
import { createHash, createPublicKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { toHex } from '../../attestation/bytes.js';
import { isToolkitError } from '../../attestation/errors.js';
import { VCPU_TYPES, VMM_TYPES, snpIdKeyDigest, snpLaunchDigest, type VmmType } from '../../attestation/sevsnp/measure.js';
import { FileSource } from '../eif/io.js';
import { EXIT_OK, EXIT_USAGE, UsageError, usage, type CliIO } from './io.js';

const HELP = `usage: enclavekit snp measure --ovmf FILE --vcpus N --vcpu-type NAME [--vmm-type QEMU|EC2|GCE]
                              [--kernel FILE [--initrd FILE] [--append STR]] [--guest-features HEX]
                              [--vcpu-sig HEX] [--ovmf-hash HEX] [--json]
       enclavekit snp id-digest --key PEM [--json]

measure    the expected SEV-SNP launch MEASUREMENT of a guest booted from OVMF, as sev-snp-measure
           computes it: OVMF pages, OVMF's SEV metadata sections, the SEV hashes table of a measured
           direct boot (kernel, initrd, command line), one VMSA page per vCPU.
  --ovmf FILE            the OVMF image; it is mapped to end at 4 GiB (GPA = 2^32 - its size), as
                         QEMU maps it. A file that is only the end of OVMF is measured as if it were
                         all of it.
  --vcpus N              number of vCPUs (one VMSA each)
  --vcpu-type NAME       QEMU CPU model (${Object.keys(VCPU_TYPES).join(', ')});
                         its CPUID signature goes to RDX. Not needed with --vmm-type EC2 or GCE.
  --vcpu-sig HEX         a CPUID signature instead of --vcpu-type
  --vmm-type TYPE        QEMU (default), EC2 or GCE: initial register values and metadata pages differ
  --kernel FILE          measured direct boot: the kernel (needs an OVMF with SNP_KERNEL_HASHES, e.g.
  --initrd FILE          OvmfPkg/AmdSev); the initrd (absent: hashed as empty)
  --append STR           and the kernel command line
  --guest-features HEX   SEV_FEATURES of every VMSA (default 0x1 SNPActive; 0x21 adds DebugSwap,
                         what Linux 6.6+ KVM sets)
  --ovmf-hash HEX        a precomputed OVMF digest (sev-snp-measure --mode snp:ovmf-hash) to start from
  --json                 {"ok":true,"measurement":HEX}; an SEV-SNP policy file (verify --policy)
                         accepts this object, or a list of them, as it is
id-digest  ID_KEY_DIGEST / AUTHOR_KEY_DIGEST of an ID block key as a report carries it: SHA-384 of
           the P-384 public key in the SEV ABI format.
  --key PEM              P-384 public or private key (PEM)

Exit status: 0 computed, 2 usage, unreadable file or an OVMF that cannot be measured.
`;

function fail(io: CliIO, json: boolean, code: string, reason: string | undefined, message: string): number {
  if (json) io.stdout.write(JSON.stringify({ ok: false, code, reason: reason ?? null, message }) + '\n');
  else io.stderr.write(`enclavekit snp: ${code}${reason ? ` (${reason})` : ''}: ${message}\n`);
  return EXIT_USAGE;
}

function sha256File(path: string, label: string): Uint8Array {
  const f = new FileSource(path, `${label} ${path}`);
  try {
    const h = createHash('sha256');
    f.forEachChunk(0, f.size, (c) => h.update(c));
    return new Uint8Array(h.digest());
  } finally {
    f.close();
  }
}

/** Largest OVMF image read (OVMF builds are a few MiB). */
const MAX_OVMF = 256 * 1024 * 1024;

async function measure(argv: string[], io: CliIO): Promise<number> {
  const { values } = usage(() =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        ovmf: { type: 'string' },
        vcpus: { type: 'string' },
        'vcpu-type': { type: 'string' },
        'vcpu-sig': { type: 'string' },
        'vmm-type': { type: 'string' },
        kernel: { type: 'string' },
        initrd: { type: 'string' },
        append: { type: 'string' },
        'guest-features': { type: 'string' },
        'ovmf-hash': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (values.ovmf === undefined || values.vcpus === undefined) throw new UsageError('snp measure needs --ovmf FILE and --vcpus N');
  if (!/^[1-9][0-9]{0,3}$/.test(values.vcpus)) throw new UsageError('--vcpus expects a positive integer (at most 4096)');
  const vmmArg = values['vmm-type'] ?? 'QEMU';
  const vmm = VMM_TYPES.find((t) => t.toLowerCase() === vmmArg.toLowerCase());
  if (vmm === undefined) throw new UsageError(`--vmm-type must be one of ${VMM_TYPES.join(', ')}`);
  let vcpuSig: number;
  if (values['vcpu-sig'] !== undefined) {
    if (values['vcpu-type'] !== undefined) throw new UsageError('give --vcpu-type or --vcpu-sig, not both');
    if (!/^(0x)?[0-9a-fA-F]{1,8}$/.test(values['vcpu-sig'])) throw new UsageError('--vcpu-sig expects a 32-bit hex value');
    vcpuSig = parseInt(values['vcpu-sig'].replace(/^0x/, ''), 16);
  } else if (values['vcpu-type'] !== undefined) {
    const t = Object.keys(VCPU_TYPES).find((k) => k.toLowerCase() === values['vcpu-type']!.toLowerCase());
    if (t === undefined) throw new UsageError(`--vcpu-type: unknown CPU model; one of ${Object.keys(VCPU_TYPES).join(', ')}`);
    vcpuSig = VCPU_TYPES[t]!;
  } else if (vmm === 'QEMU') throw new UsageError('--vmm-type QEMU needs --vcpu-type NAME (or --vcpu-sig HEX)');
  else vcpuSig = 0;
  let guestFeatures = 1n;
  if (values['guest-features'] !== undefined) {
    if (!/^(0x)?[0-9a-fA-F]{1,16}$/.test(values['guest-features'])) throw new UsageError('--guest-features expects a 64-bit hex value, e.g. 0x21');
    guestFeatures = BigInt('0x' + values['guest-features'].replace(/^0x/, ''));
  }
  if (values.kernel === undefined && (values.initrd !== undefined || values.append !== undefined)) throw new UsageError('--initrd and --append need --kernel');
  let ovmfHash: Uint8Array | undefined;
  if (values['ovmf-hash'] !== undefined) {
    if (!/^[0-9a-fA-F]{96}$/.test(values['ovmf-hash'])) throw new UsageError('--ovmf-hash expects 96 hex digits');
    ovmfHash = new Uint8Array(Buffer.from(values['ovmf-hash'], 'hex'));
  }
  const json = values.json === true;
  let st;
  try {
    st = statSync(values.ovmf);
  } catch (e) {
    throw new UsageError(`--ovmf ${values.ovmf}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (!st.isFile()) throw new UsageError(`--ovmf ${values.ovmf} is not a regular file`);
  if (st.size > MAX_OVMF) throw new UsageError(`--ovmf ${values.ovmf} is larger than ${MAX_OVMF} bytes`);
  const ovmf = new Uint8Array(readFileSync(values.ovmf));
  const empty = new Uint8Array(createHash('sha256').digest());
  try {
    const ld = snpLaunchDigest({
      ovmf,
      vcpus: Number(values.vcpus),
      vcpuSig,
      vmm,
      guestFeatures,
      ...(ovmfHash ? { ovmfHash } : {}),
      ...(values.kernel !== undefined
        ? {
            kernel: {
              kernelSha256: sha256File(values.kernel, '--kernel'),
              initrdSha256: values.initrd !== undefined ? sha256File(values.initrd, '--initrd') : empty,
              ...(values.append !== undefined ? { cmdline: values.append } : {}),
            },
          }
        : {}),
    });
    if (json) io.stdout.write(JSON.stringify({ ok: true, measurement: toHex(ld) }) + '\n');
    else io.stdout.write(toHex(ld) + '\n');
    return EXIT_OK;
  } catch (e) {
    if (isToolkitError(e)) return fail(io, json, e.code, e.reason, e.message);
    throw e;
  }
}

async function idDigest(argv: string[], io: CliIO): Promise<number> {
  const { values } = usage(() =>
    parseArgs({ args: argv, strict: true, allowPositionals: false, options: { key: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }),
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (values.key === undefined) throw new UsageError('snp id-digest needs --key PEM');
  let pem: Buffer;
  try {
    if (statSync(values.key).size > 64 * 1024) throw new UsageError(`--key ${values.key} is larger than 64 KiB`);
    pem = readFileSync(values.key);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--key ${values.key}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  let jwk: { crv?: string; x?: string; y?: string };
  try {
    jwk = createPublicKey({ key: pem, format: 'pem' }).export({ format: 'jwk' }) as typeof jwk;
  } catch (e) {
    throw new UsageError(`--key ${values.key}: not a PEM public or private key (${(e as Error).message})`);
  }
  if (jwk.crv !== 'P-384' || jwk.x === undefined || jwk.y === undefined) throw new UsageError(`--key ${values.key}: an SEV-SNP ID or author key is ECDSA P-384, this is ${jwk.crv ?? 'not an EC key'}`);
  const digest = toHex(snpIdKeyDigest(new Uint8Array(Buffer.from(jwk.x, 'base64url')), new Uint8Array(Buffer.from(jwk.y, 'base64url'))));
  if (values.json === true) io.stdout.write(JSON.stringify({ ok: true, digest, curve: 'P-384' }) + '\n');
  else io.stdout.write(digest + '\n');
  return EXIT_OK;
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    io.stdout.write(HELP);
    return sub === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (sub === 'measure') return measure(rest, io);
  if (sub === 'id-digest') return idDigest(rest, io);
  throw new UsageError(`unknown snp subcommand "${sub}" (measure, id-digest)`);
}
