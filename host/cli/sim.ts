/** `enclavekit sim kms ...` and `enclavekit sim attest ...`. */
import { UsageError, type CliIO } from './io.js';

export async function run(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'kms':
      return (await import('./sim-kms.js')).run(rest, io);
    case 'attest':
      return (await import('./sim-attest.js')).run(rest, io);
    default:
      throw new UsageError('usage: enclavekit sim kms|attest [options] (see README)');
  }
}
