/** Shared by the test/cli suites: an in-memory terminal for main(), and paths. */
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const NITRO_VEC = ROOT + 'test/vectors/nitro/';
export const SNP_VEC = ROOT + 'test/vectors/sev-snp/';

export interface Ran {
  code: number;
  out: string;
  err: string;
  /** stdout as JSON lines. */
  lines: () => Record<string, unknown>[];
  json: () => Record<string, unknown>;
}

/** `enclavekit ARGV` in-process through the dispatcher (host/cli/main.ts), as bin/enclavekit.js runs it. */
export async function cli(argv: string[], opts: { stdin?: Uint8Array | string; now?: Date } = {}): Promise<Ran> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  const io: CliIO = {
    stdout,
    stderr,
    stdin: Readable.from([Buffer.from(opts.stdin ?? '')]),
    env: {},
    now: () => opts.now ?? new Date('2030-01-01T00:00:00Z'),
  };
  const code = await main(argv, io);
  await new Promise((r) => setImmediate(r));
  const lines = () =>
    out
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code, out, err, lines, json: () => JSON.parse(out) as Record<string, unknown> };
}
