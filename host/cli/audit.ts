/** `enclavekit audit verify FILE`: check an audit log's hash chain. Exit 0 intact, 1 broken, 2 usage. */
import { parseArgs } from 'node:util';
import { EXIT_INVALID, EXIT_OK, UsageError, usage, type CliIO } from './io.js';
import { verifyAuditLog } from '../audit.js';

const HELP = `usage: enclavekit audit verify FILE [--json]

Check an audit log's hash chain (see README, "Audit log") and name the first broken entry.

Exit status: 0 intact, 1 broken, 2 usage or I/O error.
`;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = usage(() =>
    parseArgs({ args: argv, strict: true, allowPositionals: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }),
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const [sub, file, ...extra] = positionals;
  if (sub !== 'verify') throw new UsageError('expected `audit verify FILE` (see --help)');
  if (!file || extra.length > 0) throw new UsageError('expected exactly one FILE');
  const r = await verifyAuditLog(file);
  if (values.json) io.stdout.write(JSON.stringify(r) + '\n');
  else if (r.ok) io.stdout.write(`audit log intact: ${r.entries} entries\n`);
  else io.stdout.write(`audit log BROKEN at line ${r.firstBroken!.line} (${r.firstBroken!.reason}); ${r.entries} entries before it verify\n`);
  return r.ok ? EXIT_OK : EXIT_INVALID;
}
