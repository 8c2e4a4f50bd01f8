/** Shared by the CLI behaviour tests: an injected terminal for `main(argv, io)`. */
import { PassThrough } from 'node:stream';
import type { CliIO } from '../../host/cli/io.js';

export interface TestIO extends CliIO {
  out(): string;
  err(): string;
  /** The one JSON object on stdout (fails the test if stdout is not exactly one). */
  json(): Record<string, unknown>;
}

export function testIO(opts: { env?: NodeJS.ProcessEnv; tty?: boolean; columns?: number } = {}): TestIO {
  const stdout = new PassThrough();
  const stderr = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  if (opts.tty) {
    stderr.isTTY = true;
    stderr.columns = opts.columns ?? 100;
  }
  let o = '';
  let e = '';
  stdout.on('data', (c) => (o += c));
  stderr.on('data', (c) => (e += c));
  return {
    stdout,
    stderr,
    stdin: new PassThrough(),
    env: opts.env ?? {},
    now: () => new Date(),
    out: () => o,
    err: () => e,
    json: () => {
      const lines = o.split('\n').filter((l) => l.length > 0);
      if (lines.length !== 1) throw new Error(`expected one JSON line on stdout, got ${lines.length}: ${o.slice(0, 500)}`);
      return JSON.parse(lines[0]!) as Record<string, unknown>;
    },
  };
}
