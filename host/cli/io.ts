/** What every CLI command shares: exit codes, usage errors, JSON output and an injectable terminal. */
import { readFile, stat } from 'node:fs/promises';
import { EXIT_INFRA, EXIT_INVALID, EXIT_OK, EXIT_USAGE, exitCodeOf } from './exit.js';

/** 0 success, 1 a security verdict, 2 usage or input error, 3 infrastructure (see exit.ts). */
export { EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INFRA, exitCodeOf };

/**
 * Bad flags (`ERR_USAGE`) or an unreadable or malformed input file (`ERR_INPUT`): exit 2. `help`
 * asks the dispatcher to end the message with "see enclavekit <command> --help" (a string names the
 * command, e.g. `sim kms`; true: the command being run).
 */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly code: 'ERR_USAGE' | 'ERR_INPUT';
  readonly help: string | boolean;
  constructor(message: string, opts: { code?: 'ERR_USAGE' | 'ERR_INPUT'; help?: string | boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = opts.code ?? 'ERR_USAGE';
    this.help = opts.help ?? false;
  }
}

export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  /** The clock, injectable for tests. */
  now: () => Date;
}

export const processIO = (): CliIO => ({
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  now: () => new Date(),
});

export type Command = (argv: string[], io: CliIO) => Promise<number>;

/** node:util parseArgs errors in our words: `unknown option --foo`, `--out needs a value`. */
export function parseArgsMessage(e: unknown): string {
  const err = e as { code?: string; message?: string };
  const msg = String(err?.message ?? e);
  const quoted = /'([^']*)'/.exec(msg)?.[1];
  switch (err?.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${quoted ?? msg}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const flag = quoted?.split(' ')[0];
      if (/argument missing/.test(msg)) return `${flag} needs a value`;
      if (/does not take an argument/.test(msg)) return `${flag} takes no value`;
      return msg;
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${JSON.stringify(quoted ?? msg)}`;
    default:
      return msg;
  }
}

/**
 * Wrap a `parseArgs({ ..., strict: true })` call from node:util so that its errors become
 * UsageError (exit 2) that point at the command's --help:
 * `const { values, positionals } = usage(() => parseArgs({...}), 'run')`.
 */
export function usage<T>(fn: () => T, command?: string): T {
  try {
    return fn();
  } catch (e) {
    throw new UsageError(parseArgsMessage(e), { help: command ?? true, cause: e });
  }
}

/** A Node file-system error in words, naming the flag and the path: "--manifest: no such file: m.json". */
export function fileErrorMessage(e: unknown, path: string, label?: string): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  const what =
    code === 'ENOENT' ? 'no such file'
    : code === 'EACCES' || code === 'EPERM' ? 'permission denied'
    : code === 'EISDIR' ? 'is a directory, not a file'
    : code === 'ENOTDIR' ? 'a part of the path is not a directory'
    : code === 'EMFILE' || code === 'ENFILE' ? 'too many open files'
    : code === 'ENOSPC' ? 'no space left on the device'
    : code === 'EEXIST' ? 'already exists'
    : `cannot access (${code ?? 'error'})`;
  return `${label ? `${label}: ` : ''}${what}: ${path}`;
}

/** A UsageError (ERR_INPUT, exit 2) for a file that cannot be read or written. */
export function fileError(e: unknown, path: string, label?: string): UsageError {
  return new UsageError(fileErrorMessage(e, path, label), { code: 'ERR_INPUT', cause: e });
}

/** A regular input file of at most `max` bytes; every failure is a UsageError naming the flag and the file. */
export async function readInputFile(path: string, max: number, label: string): Promise<Buffer> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw fileError(e, path, label);
  }
  if (!st.isFile()) throw new UsageError(`${label}: ${path} is not a file`, { code: 'ERR_INPUT' });
  if (st.size > max) throw new UsageError(`${label}: ${path} is larger than ${max} bytes`, { code: 'ERR_INPUT' });
  try {
    return await readFile(path);
  } catch (e) {
    throw fileError(e, path, label);
  }
}

/** Write one JSON object as one line. */
export function writeJson(stream: NodeJS.WritableStream, value: unknown): void {
  stream.write(JSON.stringify(value) + '\n');
}

/** The one object a command prints with --json when it fails: `{"ok":false,"code",...}`. */
export function errorJson(e: { code: string; message: string; reason?: string | undefined }, exit: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ok: false, code: e.code, ...(e.reason !== undefined ? { reason: e.reason } : {}), message: e.message, exit, ...extra };
}

export async function readAllStdin(stream: NodeJS.ReadableStream, limit = 64 * 1024 * 1024): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c as string);
    n += b.length;
    if (n > limit) throw new UsageError(`standard input exceeds ${limit} bytes`, { code: 'ERR_INPUT' });
    chunks.push(b);
  }
  return new Uint8Array(Buffer.concat(chunks));
}
