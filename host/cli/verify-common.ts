/**
 * Flag and input handling shared by the Nitro (verify.ts) and SEV-SNP (verify-snp.ts) sides of
 * `enclavekit verify`: bounded file reads, hex flags, `--at`, the evidence argument, policy JSON.
 * Output is verify-output.ts's.
 */
// Synchronous reads: a few small files per run, and no thread-pool round trips at start-up.
import { readFileSync, statSync } from 'node:fs';
import { fromHex } from '../../attestation/bytes.js';
import { UsageError, fileErrorMessage, readAllStdin, type CliIO } from './io.js';

/** Flags of `enclavekit verify` for Nitro documents (verify.ts). */
export const NITRO_VERIFY_OPTIONS = {
  at: { type: 'string' },
  root: { type: 'string', multiple: true },
  'simulator-root': { type: 'string', multiple: true },
  'allow-debug': { type: 'boolean' },
  pcr: { type: 'string', multiple: true },
  nonce: { type: 'string' },
  'user-data': { type: 'string' },
  'public-key': { type: 'string' },
  'max-age': { type: 'string' },
  policy: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** Flags of `enclavekit verify` for SEV-SNP reports (verify-snp.ts). */
export const SNP_VERIFY_OPTIONS = {
  cert: { type: 'string' },
  chain: { type: 'string' },
  ark: { type: 'string', multiple: true },
  'simulator-ark': { type: 'string', multiple: true },
  'cert-table': { type: 'string' },
  crl: { type: 'string', multiple: true },
  product: { type: 'string' },
  at: { type: 'string' },
  'allow-debug': { type: 'boolean' },
  measurement: { type: 'string', multiple: true },
  'report-data': { type: 'string' },
  policy: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** Every flag `enclavekit verify` knows: FILEs are told apart from flag values before any is read. */
export const VERIFY_OPTIONS = { ...NITRO_VERIFY_OPTIONS, ...SNP_VERIFY_OPTIONS } as const;

/** Parsed `enclavekit verify` flags (the union of both sides). */
export type VerifyValues = { [K in keyof typeof VERIFY_OPTIONS]?: (typeof VERIFY_OPTIONS)[K] extends { multiple: true } ? string[] : (typeof VERIFY_OPTIONS)[K] extends { type: 'boolean' } ? boolean : string };

/**
 * A flag that is wrong for the whole run (a bad value, or a flag of the other evidence format):
 * with several FILEs it stops the run instead of being reported against one file.
 */
export class FlagError extends UsageError {}

/** Whatever is wrong with a flag (or a file it names) is wrong for every FILE of the run. */
export function asFlagError(e: unknown): unknown {
  if (e instanceof FlagError) return e;
  if (e instanceof UsageError) return new FlagError(e.message, { code: e.code, help: e.help, cause: e });
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code === 'string' && typeof err?.syscall === 'string')
    return new FlagError(typeof err.path === 'string' ? fileErrorMessage(err, err.path) : `${err.syscall} failed (${err.code})`, { code: 'ERR_INPUT', cause: e });
  return e;
}

/** Flags given that `allowed` does not list, as `--name` (to refuse flags of the other format). */
export function flagsOutside(values: VerifyValues, allowed: Record<string, unknown>): string[] {
  return Object.keys(values)
    .filter((k) => (values as Record<string, unknown>)[k] !== undefined && !(k in allowed))
    .map((k) => `--${k}`);
}

/** Evidence, certificates and policies are a few KB; refuse anything absurd before reading it. */
export const MAX_INPUT = 1 << 20;

/**
 * A regular file of at most MAX_INPUT bytes. `statAsUsage`: a file that cannot be stat'ed is a usage
 * error naming the flag (SEV-SNP side); otherwise the errno error goes to the dispatcher as it is.
 */
export async function readBounded(path: string, label: string, opts: { statAsUsage?: boolean } = {}): Promise<Uint8Array> {
  let s;
  try {
    s = statSync(path);
  } catch (e) {
    if (!opts.statAsUsage) throw e;
    throw new UsageError(`${label} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'cannot read'}`);
  }
  if (!s.isFile()) throw new UsageError(`${label} ${path} is not a regular file`);
  if (s.size > MAX_INPUT) throw new UsageError(`${label} ${path} is larger than ${MAX_INPUT} bytes`);
  return new Uint8Array(readFileSync(path));
}

/** PEM (one or more CERTIFICATE blocks) or a single DER certificate; `label` names the flag and file. */
export function certificatesFrom(bytes: Uint8Array, label: string): Uint8Array[] {
  const text = new TextDecoder().decode(bytes);
  if (!text.includes('-----BEGIN')) {
    if (bytes[0] !== 0x30) throw new UsageError(`${label}: neither PEM nor DER`);
    return [bytes];
  }
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)) {
    const b64 = m[1]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new UsageError(`${label}: bad base64 in PEM`);
    out.push(new Uint8Array(Buffer.from(b64, 'base64')));
  }
  if (out.length === 0) throw new UsageError(`${label}: no CERTIFICATE block`);
  return out;
}

/** FILE or `-` (standard input), bounded either way. */
export async function readEvidenceArg(file: string, io: CliIO, label: string, opts: { statAsUsage?: boolean } = {}): Promise<Uint8Array> {
  return file === '-' ? readAllStdin(io.stdin, MAX_INPUT) : readBounded(file, label, opts);
}

export function hexFlag(v: string, label: string): Uint8Array {
  try {
    return fromHex(v.trim(), label);
  } catch {
    throw new UsageError(`${label}: expected hex, got ${JSON.stringify(v.slice(0, 20))}`);
  }
}

/** `--at ISO-TIME`, or `now` when absent. A date without a time is refused: it would mean midnight UTC silently. */
export function atFlag(at: string | undefined, now: Date): Date {
  if (at === undefined) return now;
  const t = Date.parse(at);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(at) || !Number.isFinite(t)) throw new UsageError(`--at: expected an ISO 8601 time, got ${JSON.stringify(at)}`);
  return new Date(t);
}

/** `--policy FILE.json` as strict UTF-8 JSON; what it must contain is the caller's check. */
export async function readPolicyJson(path: string, opts: { statAsUsage?: boolean } = {}): Promise<unknown> {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await readBounded(path, '--policy', opts))) as unknown;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--policy ${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** `--help`/`-h` anywhere: print `help` and report that the command is done. */
export function helpRequested(argv: readonly string[], io: CliIO, help: string): boolean {
  if (!argv.includes('--help') && !argv.includes('-h')) return false;
  io.stdout.write(help);
  return true;
}
