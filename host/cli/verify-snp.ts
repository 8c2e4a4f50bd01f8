/**
 * `enclavekit verify REPORT --cert VCEK|VLEK [--chain PEM] [--ark PEM] [--product Milan|Genoa|Turin]
 *   [--at ISO-TIME] [--allow-debug] [--measurement HEX]... [--report-data HEX] [--policy FILE.json]
 *   [--cert-table FILE] [--crl FILE] [--simulator-ark PEM] [--json]`
 *
 * The SEV-SNP side of `enclavekit verify` (verify.ts delegates here when --cert is given or the input
 * is not a COSE_Sign1). Exit 0 valid, 1 invalid evidence or policy violation, 2 usage or I/O error.
 */
import { parseArgs } from 'node:util';
import { decodeEvidenceText, toHex } from '../../attestation/bytes.js';
import { AttestationError, isToolkitError, type ToolkitError } from '../../attestation/errors.js';
import { verifySevSnp } from '../../attestation/sevsnp/node.js';
import { parseSnpPolicy, type SnpPolicy } from '../../attestation/sevsnp/policy.js';
import { snpPolicyFromMeasureJson } from '../../attestation/sevsnp/measure.js';
import { certBytes, pemToDer } from '../../attestation/sevsnp/cert.js';
import { SNP_PRODUCTS, type SnpProduct, type SnpTcb } from '../../attestation/sevsnp/abi.js';
import type { VerifiedSnpReport } from '../../attestation/sevsnp/verify.js';
import { parseCertificate } from '../../attestation/x509/cert.js';
import { EXIT_OK, UsageError, usage, type CliIO } from './io.js';
import {
  FlagError,
  SNP_VERIFY_OPTIONS,
  asFlagError,
  atFlag,
  helpRequested,
  hexFlag,
  readBounded,
  readEvidenceArg,
  readPolicyJson,
  type VerifyValues,
} from './verify-common.js';
import { writeInvalid, writeValid, type OutputOptions, type ValidityWindow } from './verify-output.js';

const HELP = `usage: enclavekit verify REPORT --cert VCEK|VLEK [options]

Verify an AMD SEV-SNP attestation report offline against AMD's pinned roots.
REPORT holds the 1184-byte report as raw bytes, base64 or hex; "-" reads standard input.

  --cert FILE          the VCEK or VLEK that signed the report (DER or PEM)
  --chain PEM          AMD's cert_chain as KDS serves it: ASK (or ASVK) first, then the ARK
                       (default: the built-in ASK/ASVK; a given ARK must be a trusted one)
  --ark PEM            trusted ARK certificate(s); replaces the built-in AMD roots
  --simulator-ark PEM  trust a simulator ARK (reports then say platform "simulator")
  --cert-table FILE    extended-report certificate table (SNP_GET_EXT_REPORT / configfs-tsm auxblob)
  --crl FILE           AMD's CRL (DER or PEM) for the product; a revoked ASK/ASVK fails
  --product NAME       Milan, Genoa or Turin (must agree with the report and the certificate)
  --at ISO-TIME        verification time (default: now), e.g. 2025-08-01T00:00:00Z
  --allow-debug        accept guests whose policy allows debugging; the output marks them
  --measurement HEX    expected MEASUREMENT (48 bytes); repeat to allow several
  --report-data HEX    expected REPORT_DATA (up to 64 bytes; shorter values are zero-padded)
  --policy FILE.json   SEV-SNP policy file (strict JSON, see README); flags override it
  --json               print one JSON object instead of a summary

\`enclavekit verify --help\` lists the Nitro flags and how several FILEs are verified at once.
Exit status: 0 valid, 1 invalid or policy violation, 2 usage or I/O error.
`;

/** This side reports a file it cannot stat as a usage error naming the flag. */
const SNP_READ = { statAsUsage: true } as const;

/** One or more certificates from a PEM file (CRLF allowed) or a single DER certificate. */
function certsFrom(bytes: Uint8Array, label: string): Uint8Array[] {
  if (bytes[0] === 0x30) return [bytes];
  let blocks: Uint8Array[];
  try {
    blocks = pemToDer(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new UsageError(`${label}: ${(e as Error).message}`);
  }
  if (blocks.length === 0) throw new UsageError(`${label}: neither DER nor PEM with a CERTIFICATE block`);
  return blocks;
}

async function loadPolicy(path: string): Promise<SnpPolicy> {
  const raw = await readPolicyJson(path, SNP_READ);
  try {
    // `enclavekit snp measure --json` output (or a list of them) is accepted as the policy file.
    return parseSnpPolicy(snpPolicyFromMeasureJson(raw));
  } catch (e) {
    if (isToolkitError(e)) throw new UsageError(`--policy ${path}: ${e.message}`);
    throw e;
  }
}

const tcbJson = (t: SnpTcb) => ({
  ...(t.fmc !== undefined ? { fmc: t.fmc } : {}),
  bootloader: t.bootloader,
  tee: t.tee,
  snp: t.snp,
  microcode: t.microcode,
  raw: toHex(t.raw),
});

export function snpClaims(r: VerifiedSnpReport): Record<string, unknown> {
  const ver = (v: { major: number; minor: number; build: number }) => `${v.major}.${v.minor}.${v.build}`;
  return {
    product: r.product,
    version: r.version,
    measurement: r.measurement,
    report_data: r.reportData,
    host_data: r.hostData,
    chip_id: r.chipId,
    family_id: r.report.familyId,
    image_id: r.report.imageId,
    report_id: r.report.reportId,
    id_key_digest: r.report.idKeyDigest,
    author_key_digest: r.report.authorKeyEn ? r.report.authorKeyDigest : null,
    guest_svn: r.guestSvn,
    vmpl: r.vmpl,
    policy: `0x${r.policy.toString(16)}`,
    policy_flags: r.policyFlags,
    platform_info: `0x${r.platformInfo.toString(16)}`,
    platform_info_flags: r.platformInfoFlags,
    reported_tcb: tcbJson(r.tcb.reported),
    current_tcb: tcbJson(r.tcb.current),
    committed_tcb: tcbJson(r.tcb.committed),
    launch_tcb: tcbJson(r.tcb.launch),
    current_firmware: ver(r.currentVersion),
    committed_firmware: ver(r.committedVersion),
    signing_key: r.signingKey,
    ...(r.cspId !== undefined ? { csp_id: r.cspId } : {}),
    valid_until: r.validUntil,
  };
}

function summarize(r: VerifiedSnpReport): [string, string][] {
  const tcb = (t: SnpTcb) =>
    `${t.fmc !== undefined ? `fmc=${t.fmc} ` : ''}bl=${t.bootloader} tee=${t.tee} snp=${t.snp} ucode=${t.microcode}`;
  const flags = Object.entries(r.policyFlags)
    .filter(([, v]) => v === true)
    .map(([k]) => k);
  return [
    ['product', `${r.product} (report v${r.version}, signed by ${r.signingKey}${r.cspId ? `, ${r.cspId}` : ''})`],
    ['MEASUREMENT', toHex(r.measurement)],
    ['REPORT_DATA', toHex(r.reportData)],
    ['HOST_DATA', toHex(r.hostData)],
    ['CHIP_ID', toHex(r.chipId)],
    ['VMPL', String(r.vmpl)],
    ['POLICY', `0x${r.policy.toString(16)} (${flags.join(', ') || 'no flags'})`],
    ['REPORTED_TCB', tcb(r.tcb.reported)],
    ['firmware', `${r.currentVersion.major}.${r.currentVersion.minor}.${r.currentVersion.build}`],
    ['valid until', r.validUntil.toISOString()],
  ];
}

interface SnpSettings {
  now: Date;
  product: SnpProduct | undefined;
  policy: SnpPolicy;
  certInputs: { leaf?: Uint8Array; chain?: Uint8Array[]; table?: Uint8Array; crls?: Uint8Array[] };
  roots: Uint8Array[] | undefined;
  simulatorRoots: Uint8Array[] | undefined;
}

/** SEV-SNP flags -> verifier inputs, once per run (certificates, CRLs and policy are read once). */
async function snpSettings(values: VerifyValues, io: CliIO): Promise<SnpSettings> {
  if (values.cert === undefined && values['cert-table'] === undefined)
    throw new FlagError('an SEV-SNP report needs --cert VCEK|VLEK (or --cert-table)\n\n' + HELP);
  const now = atFlag(values.at, io.now());
  let product: SnpProduct | undefined;
  if (values.product !== undefined) {
    const p = SNP_PRODUCTS.find((x) => x.toLowerCase() === values.product!.toLowerCase());
    if (!p) throw new UsageError(`--product: expected one of ${SNP_PRODUCTS.join(', ')}`);
    product = p;
  }

  let policy: SnpPolicy = values.policy !== undefined ? await loadPolicy(values.policy) : {};
  if (values['allow-debug']) policy = { ...policy, guestPolicy: { ...policy.guestPolicy, allowDebug: true } };
  if (values.measurement !== undefined)
    policy = { ...policy, measurement: values.measurement.map((m) => toHex(hexFlag(m, '--measurement'))) };
  if (values['report-data'] !== undefined) policy = { ...policy, reportData: toHex(hexFlag(values['report-data'], '--report-data')) };
  try {
    parseSnpPolicy(policy);
  } catch (e) {
    if (isToolkitError(e)) throw new UsageError(e.message);
    throw e;
  }

  const certInputs: SnpSettings['certInputs'] = {};
  if (values.cert !== undefined) certInputs.leaf = await readBounded(values.cert, '--cert', SNP_READ);
  if (values.chain !== undefined) {
    certInputs.chain = certsFrom(await readBounded(values.chain, '--chain', SNP_READ), `--chain ${values.chain}`);
    if (certInputs.chain.length > 2) throw new UsageError('--chain: expected the intermediate, then optionally the ARK');
  }
  if (values['cert-table'] !== undefined) certInputs.table = await readBounded(values['cert-table'], '--cert-table', SNP_READ);
  let roots: Uint8Array[] | undefined;
  if (values.ark !== undefined) {
    roots = [];
    for (const p of values.ark) roots.push(...certsFrom(await readBounded(p, '--ark', SNP_READ), `--ark ${p}`));
  }
  let simulatorRoots: Uint8Array[] | undefined;
  if (values['simulator-ark'] !== undefined) {
    simulatorRoots = [];
    for (const p of values['simulator-ark']) simulatorRoots.push(...certsFrom(await readBounded(p, '--simulator-ark', SNP_READ), `--simulator-ark ${p}`));
  }
  if (values.crl !== undefined) {
    certInputs.crls = [];
    for (const p of values.crl) {
      const b = await readBounded(p, '--crl', SNP_READ);
      if (b[0] === 0x30) certInputs.crls.push(b);
      else {
        const blocks = (() => {
          try {
            return pemToDer(new TextDecoder().decode(b), 'X509 CRL');
          } catch (e) {
            throw new UsageError(`--crl ${p}: ${(e as Error).message}`);
          }
        })();
        if (blocks.length === 0) throw new UsageError(`--crl ${p}: neither DER nor PEM with an X509 CRL block`);
        certInputs.crls.push(...blocks);
      }
    }
  }
  return { now, product, policy, certInputs, roots, simulatorRoots };
}

/** The window in which the given VCEK/VLEK (and --chain) are valid, for the message under an expired chain. */
function snpWindow(e: ToolkitError, s: SnpSettings): ValidityWindow | undefined {
  if (e.code !== 'ERR_SNP_CHAIN_INVALID' || (e.reason !== 'expired' && e.reason !== 'not_yet_valid')) return undefined;
  const ders = [...(s.certInputs.leaf ? [s.certInputs.leaf] : []), ...(s.certInputs.chain ?? [])];
  if (ders.length === 0) return undefined;
  try {
    const certs = ders.map((d, i) => parseCertificate(i === 0 ? certBytes(d, '--cert') : d));
    return {
      notBefore: new Date(Math.max(...certs.map((c) => c.notBefore.getTime()))),
      notAfter: new Date(Math.min(...certs.map((c) => c.notAfter.getTime()))),
    };
  } catch {
    return undefined;
  }
}

/**
 * Verify one SEV-SNP report (raw, base64 or hex bytes) with the run's flags. `cache` holds the
 * settings derived from the flags, shared by every FILE of one run.
 */
export interface SnpSettingsCache {
  snp?: Promise<SnpSettings>;
}

export async function verifySnpInput(input: Uint8Array, values: VerifyValues, io: CliIO, out: OutputOptions, cache: SnpSettingsCache = {}): Promise<number> {
  const s = await (cache.snp ??= snpSettings(values, io).catch((e: unknown) => {
    throw asFlagError(e);
  }));
  try {
    const report = decodeEvidenceText(input);
    const leaf = s.certInputs.leaf !== undefined ? certBytes(s.certInputs.leaf, '--cert') : undefined;
    const [inter, ark] = s.certInputs.chain ?? [];
    // The report says which key signed it; the same file serves as VCEK or VLEK accordingly.
    const r = verifySevSnp(
      report,
      {
        ...(leaf ? { vcek: leaf, vlek: leaf } : {}),
        ...(inter ? { ask: inter, asvk: inter } : {}),
        ...(ark ? { ark } : {}),
        ...(s.certInputs.table ? { certTable: s.certInputs.table } : {}),
      },
      {
        now: s.now,
        ...(s.roots ? { roots: s.roots } : {}),
        ...(s.simulatorRoots ? { simulatorRoots: s.simulatorRoots } : {}),
        ...(s.product ? { product: s.product } : {}),
        ...(s.certInputs.crls ? { crl: s.certInputs.crls } : {}),
        policy: s.policy,
      },
    );
    return writeValid(io, out, { format: r.format, platform: r.platform, claims: snpClaims(r), summary: summarize(r), debug: r.policyFlags.DEBUG === true });
  } catch (e) {
    if (e instanceof AttestationError) {
      const window = snpWindow(e, s);
      return writeInvalid(io, out, e, window ? { window, atGiven: values.at !== undefined } : {});
    }
    throw e;
  }
}

/** `enclavekit verify REPORT --cert ...` on its own: one REPORT, SEV-SNP flags only. */
export async function runSnp(argv: string[], io: CliIO): Promise<number> {
  if (helpRequested(argv, io, HELP)) return EXIT_OK;
  const { values, positionals } = usage(() => parseArgs({ args: argv, strict: true, allowPositionals: true, options: SNP_VERIFY_OPTIONS }));
  if (positionals.length !== 1) throw new UsageError('expected exactly one REPORT (or - for standard input)\n\n' + HELP);
  if (values.cert === undefined && values['cert-table'] === undefined)
    throw new UsageError('an SEV-SNP report needs --cert VCEK|VLEK (or --cert-table)\n\n' + HELP);
  const input = await readEvidenceArg(positionals[0]!, io, 'REPORT', SNP_READ);
  return verifySnpInput(input, values as VerifyValues, io, { json: values.json === true });
}

/** Also usable on its own (e.g. a future `enclavekit verify-snp`). */
export const run = runSnp;
