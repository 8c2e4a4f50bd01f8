/** The `enclavekit` command line: dispatch to one module per command, loaded on demand. */
import { EXIT_USAGE, UsageError, errorJson, exitCodeOf, fileErrorMessage, processIO, writeJson, type CliIO, type Command } from './io.js';
import { isToolkitError } from '../../attestation/errors.js';

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run: Command }> }> = {
  verify: { summary: 'verify Nitro attestation documents or SEV-SNP reports (one or many FILEs)', load: () => import('./verify.js') },
  policy: { summary: 'print a KMS key policy that releases a key only to one enclave image', load: () => import('./policy.js') },
  sim: { summary: 'simulators: `sim kms` (KMS server), `sim attest` (issue simulated evidence), `sim image-id` (a bundle\'s PCRs)', load: () => import('./sim.js') },
  encrypt: { summary: 'encrypt fields of an NDJSON or CSV dataset with KMS data keys', load: () => import('./encrypt.js') },
  query: { summary: '`query check`: the worker\'s verdict on a query under the sealed release policy', load: () => import('./query.js') },
  run: { summary: 'run a query job against an enclave worker and verify its attested result', load: () => import('./run.js') },
  result: { summary: '`result verify RESULT.json`: re-verify a saved result offline (evidence, binding, decoded JSON)', load: () => import('./result.js') },
  status: { summary: 'health check of a running worker: reachable, attested platform and measurements, uptime', load: () => import('./status.js') },
  proxy: { summary: '`proxy allowlist --region R [--fips]`: the KMS proxy allowlist for a region', load: () => import('./proxy.js') },
  audit: { summary: '`audit verify FILE`: re-verify an audit log: attested documents, worker and host chains', load: () => import('./audit.js') },
  demo: { summary: 'run the whole pipeline end to end in simulator mode', load: () => import('./demo.js') },
  eif: { summary: '`eif describe|build|ramdisk`: Nitro enclave images and their PCRs without nitro-cli', load: () => import('./eif.js') },
  snp: { summary: '`snp measure|id-digest`: SEV-SNP launch MEASUREMENT and ID key digests', load: () => import('./snp.js') },
};

function usage(): string {
  const lines = ['usage: enclavekit <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(9)} ${c.summary}`);
  lines.push(`  ${'enclave'.padEnd(9)} run the enclave worker (see README)`);
  lines.push('', 'Run `enclavekit <command> --help` for its options; `enclavekit --version` prints the version.');
  return lines.join('\n') + '\n';
}

export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return name === undefined ? EXIT_USAGE : 0;
  }
  const cmd = COMMANDS[name];
  // --json asks for one JSON object on stdout, for usage errors too (README, "Machine-readable output").
  const json = rest.includes('--json');
  if (!cmd) {
    const message = `unknown command "${name}"; see enclavekit --help`;
    if (json) writeJson(io.stdout, errorJson({ code: 'ERR_USAGE', message }, EXIT_USAGE));
    io.stderr.write(`enclavekit: ${message}\n\n${usage()}`);
    return EXIT_USAGE;
  }
  try {
    const mod = await cmd.load();
    return await mod.run(rest, io);
  } catch (e) {
    const failure = describeFailure(e, name, rest);
    if (failure === undefined) throw e;
    if (json) writeJson(io.stdout, errorJson(failure, failure.exit));
    io.stderr.write(`enclavekit ${name}: ${failure.text}\n`);
    return failure.exit;
  }
}

/** A command's failure as the dispatcher reports it; undefined for a bug (rethrown, with its stack). */
function describeFailure(e: unknown, name: string, rest: string[]): { code: string; reason?: string; message: string; text: string; exit: number; command: string } | undefined {
  const command = name === 'sim' && (rest[0] === 'kms' || rest[0] === 'attest' || rest[0] === 'image-id') ? `sim ${rest[0]}` : name === 'audit' || name === 'query' || name === 'result' ? `${name} ${rest[0] ?? ''}`.trim() : name;
  const exit = exitCodeOf(e);
  if (e instanceof UsageError) {
    const help = e.help === false ? '' : `; see enclavekit ${typeof e.help === 'string' ? e.help : command} --help`;
    return { code: e.code, message: e.message + help, text: e.message + help, exit, command };
  }
  if (isToolkitError(e)) {
    return { code: e.code, ...(e.reason !== undefined ? { reason: e.reason } : {}), message: e.message, text: `${e.code}${e.reason ? ` (${e.reason})` : ''}: ${e.message}`, exit, command };
  }
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code === 'string' && typeof err?.syscall === 'string') {
    // Node's text ("ENOENT: no such file or directory, open 'x'") repeats the code: say it once, with the path.
    const message = typeof err.path === 'string' ? fileErrorMessage(err, err.path) : `${err.syscall} failed (${err.code})`;
    return { code: exit === EXIT_USAGE ? 'ERR_INPUT' : 'ERR_UNREACHABLE', reason: err.code, message, text: message, exit, command };
  }
  return undefined;
}
