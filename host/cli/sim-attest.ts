import { UsageError, type CliIO } from './io.js';

export async function run(_argv: string[], _io: CliIO): Promise<number> {
  throw new UsageError('sim-attest: not implemented yet');
}
