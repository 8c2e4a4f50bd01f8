/**
 * `enclavekit sim kms ...`. `enclavekit sim attest ...` issues evidence as the simulated platform
 * would, so it lives on the worker's side (enclave/cli-sim-attest.ts) and bin/enclavekit.js
 * dispatches it there: host code may not import enclave/.
 */
import { UsageError, type CliIO } from './io.js';

export async function run(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'kms':
      return (await import('./sim-kms.js')).run(rest, io);
    case 'attest':
      throw new UsageError('`sim attest` runs on the enclave side: invoke it through bin/enclavekit.js (dist/enclave/cli-sim-attest.js)');
    default:
      throw new UsageError('usage: enclavekit sim kms|attest [options] (see README)');
  }
}
