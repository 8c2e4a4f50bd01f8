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
    case 'image-id':
      return (await import('./sim-image-id.js')).run(rest, io);
    case '--help':
    case '-h':
      io.stdout.write(
        'usage: enclavekit sim kms|attest|image-id [options]\n\n' +
          '  sim kms --state DIR ...       the local KMS simulator (AWS KMS JSON 1.1, Recipient, key policies)\n' +
          '  sim attest --state DIR ...    issue a simulated Nitro document or SEV-SNP report\n' +
          "  sim image-id [--image FILE]   a worker image's simulated PCR0/1/2 and MEASUREMENT\n\n" +
          'Run `enclavekit sim <subcommand> --help` for its options.\n',
      );
      return 0;
    default:
      throw new UsageError('usage: enclavekit sim kms|attest|image-id [options] (see README)');
  }
}
