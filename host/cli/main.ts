/** The `enclavekit` command line: dispatch to one module per command, loaded on demand. */
import { EXIT_USAGE, UsageError, processIO, type CliIO, type Command } from './io.js';
import { isToolkitError } from '../../attestation/errors.js';

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run: Command }> }> = {
  verify: { summary: 'verify a Nitro attestation document or an SEV-SNP report', load: () => import('./verify.js') },
  policy: { summary: 'print a KMS key policy that releases a key only to one enclave image', load: () => import('./policy.js') },
  sim: { summary: 'simulators: `sim kms` (KMS server), `sim attest` (issue simulated evidence)', load: () => import('./sim.js') },
  encrypt: { summary: 'encrypt fields of an NDJSON or CSV dataset with KMS data keys', load: () => import('./encrypt.js') },
  query: { summary: '`query check`: the worker\'s verdict on a query under the sealed release policy', load: () => import('./query.js') },
  run: { summary: 'run a query job against an enclave worker and verify its attested result', load: () => import('./run.js') },
  audit: { summary: '`audit verify FILE`: re-verify an audit log: attested documents, worker and host chains', load: () => import('./audit.js') },
  demo: { summary: 'run the whole pipeline end to end in simulator mode', load: () => import('./demo.js') },
};

function usage(): string {
  const lines = ['usage: enclavekit <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(9)} ${c.summary}`);
  lines.push(`  ${'enclave'.padEnd(9)} run the enclave worker (see README)`);
  lines.push('', 'Run `enclavekit <command> --help` for its options.');
  return lines.join('\n') + '\n';
}

export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return name === undefined ? EXIT_USAGE : 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    io.stderr.write(`enclavekit: unknown command "${name}"\n\n${usage()}`);
    return EXIT_USAGE;
  }
  try {
    const mod = await cmd.load();
    return await mod.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`enclavekit ${name}: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (isToolkitError(e)) {
      io.stderr.write(`enclavekit ${name}: ${e.code}: ${e.message}\n`);
      return EXIT_USAGE;
    }
    const err = e as NodeJS.ErrnoException;
    if (typeof err?.code === 'string' && typeof err?.syscall === 'string') {
      io.stderr.write(`enclavekit ${name}: ${err.code}: ${err.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
}
