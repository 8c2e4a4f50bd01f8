/** What every CLI command shares: exit codes, usage errors, and an injectable terminal. */

/** 0 valid / success, 1 invalid evidence or policy violation or failed job, 2 usage or I/O error. */
export const EXIT_OK = 0;
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {
  override name = 'UsageError';
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

/**
 * Wrap a `parseArgs({ ..., strict: true })` call from node:util so that its errors become
 * UsageError (exit 2): `const { values, positionals } = usage(() => parseArgs({...}))`.
 */
export function usage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export async function readAllStdin(stream: NodeJS.ReadableStream, limit = 64 * 1024 * 1024): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c as string);
    n += b.length;
    if (n > limit) throw new UsageError(`standard input exceeds ${limit} bytes`);
    chunks.push(b);
  }
  return new Uint8Array(Buffer.concat(chunks));
}
