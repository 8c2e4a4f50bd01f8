/**
 * Flag and input handling shared by the Nitro (verify.ts) and SEV-SNP (verify-snp.ts) sides of
 * `enclavekit verify`: bounded file reads, hex flags, `--at`, the evidence argument, policy JSON.
 * Output is verify-output.ts's.
 */
import { readFile, stat } from 'node:fs/promises';
import { fromHex } from '../../attestation/bytes.js';
import { UsageError, readAllStdin, type CliIO } from './io.js';

/** Evidence, certificates and policies are a few KB; refuse anything absurd before reading it. */
export const MAX_INPUT = 1 << 20;

/**
 * A regular file of at most MAX_INPUT bytes. `statAsUsage`: a file that cannot be stat'ed is a usage
 * error naming the flag (SEV-SNP side); otherwise the errno error goes to the dispatcher as it is.
 */
export async function readBounded(path: string, label: string, opts: { statAsUsage?: boolean } = {}): Promise<Uint8Array> {
  let s;
  try {
    s = await stat(path);
  } catch (e) {
    if (!opts.statAsUsage) throw e;
    throw new UsageError(`${label} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'cannot read'}`);
  }
  if (!s.isFile()) throw new UsageError(`${label} ${path} is not a regular file`);
  if (s.size > MAX_INPUT) throw new UsageError(`${label} ${path} is larger than ${MAX_INPUT} bytes`);
  return new Uint8Array(await readFile(path));
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
