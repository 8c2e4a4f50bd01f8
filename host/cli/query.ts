/**
 * `enclavekit query check --manifest M --query Q [--at TIME] [--json]`: the worker's verdict on a
 * query under the owner's sealed release policy, offline. The same function the worker runs before it
 * fetches a key (enclave/protocol/release-policy.ts), so the verdict is the worker's.
 *
 * Exit 0 allowed, 1 refused (reason given), 2 usage, an invalid query, unreadable or malformed input.
 */
import { parseArgs } from 'node:util';
import { ToolkitError } from '../../attestation/errors.js';
import { DEFAULT_RELEASE_POLICY, checkQueryAgainstPolicy, parseManifest } from '../../enclave/protocol/index.js';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, UsageError, errorJson, readInputFile, usage, writeJson, type CliIO } from './io.js';

const HELP = `usage: enclavekit query check --manifest FILE --query FILE [--at ISO-TIME] [--json]

Check a query against the release policy sealed in a dataset's manifest, exactly as the enclave
worker will before it reads a record: the fields must exist in the sealed schema, and grouping,
filters, aggregates, minimum group size, differential privacy and expiry must be allowed by the
owner's policy (the strictest default when none was sealed). The seal itself is checked only inside
the enclave, which holds the data keys.

  --manifest FILE   the sealed manifest written by \`enclavekit encrypt\`
  --query FILE      the query (JSON)
  --at ISO-TIME     judge expiry at this time (default: now)
  --json            one JSON object: {"ok":true,"allowed":true,...}, {"ok":true,"allowed":false,"code":...,"reason":...}
                    (refused), or {"ok":false,"code":...,"message":...} (usage, invalid query, unreadable file)

Exit status: 0 allowed, 1 refused, 2 usage, an invalid query or malformed input.
`;

const MAX_INPUT = 4 * 1024 * 1024;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = usage(() =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        manifest: { type: 'string' },
        query: { type: 'string' },
        at: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
    'query check',
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (positionals[0] !== 'check' || positionals.length !== 1)
    throw new UsageError(positionals[0] === undefined || positionals[0] === 'check' ? 'expected `query check --manifest FILE --query FILE`' : `unknown subcommand "${positionals[0]}": expected \`query check\``, { help: 'query check' });
  if (!values.manifest || !values.query) throw new UsageError('--manifest and --query are required', { help: 'query check' });
  let now = io.now();
  if (values.at !== undefined) {
    now = new Date(values.at);
    if (Number.isNaN(now.getTime())) throw new UsageError('--at expects an ISO 8601 time');
  }
  const manifest = parseManifest((await readInputFile(values.manifest, MAX_INPUT, '--manifest')).toString('utf8'));
  let query: unknown;
  try {
    query = JSON.parse((await readInputFile(values.query, MAX_INPUT, '--query')).toString('utf8'));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--query: ${values.query} is not JSON`, { code: 'ERR_INPUT' });
  }
  try {
    const r = checkQueryAgainstPolicy(query, manifest, now);
    const policy = manifest.policy ? 'sealed' : 'default (none sealed)';
    const out = {
      ok: true,
      allowed: true,
      policy,
      minGroupSize: r.minGroupSize,
      dp: r.dp ? { epsilon: r.dp.epsilon, delta: r.dp.delta, budget: r.budget } : null,
      clamps: Object.fromEntries(r.clamps),
      publicDomains: [...r.publicDomains.keys()],
    };
    if (values.json) io.stdout.write(JSON.stringify(out) + '\n');
    else
      io.stdout.write(
        `allowed by the ${policy} release policy: minGroupSize ${r.minGroupSize}, ${r.dp ? `differential privacy epsilon ${r.dp.epsilon} (delta ${r.dp.delta}, dataset budget ${r.budget})` : 'exact aggregates'}\n`,
      );
    return EXIT_OK;
  } catch (e) {
    if (e instanceof ToolkitError && e.code === 'ERR_QUERY_REFUSED') {
      if (values.json) writeJson(io.stdout, { ok: true, allowed: false, code: e.code, reason: e.reason ?? null, message: e.message });
      else io.stdout.write(`refused: ${e.code} (${e.reason}): ${e.message}\n`);
      return EXIT_INVALID;
    }
    // Not a verdict: the query itself is not one (its JSON path is the reason).
    if (e instanceof ToolkitError && e.code === 'ERR_QUERY_INVALID') {
      if (values.json) writeJson(io.stdout, errorJson({ code: e.code, reason: e.reason, message: e.message }, EXIT_USAGE));
      io.stderr.write(`enclavekit query check: invalid query: ${e.code} (${e.reason}): ${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
}

export { DEFAULT_RELEASE_POLICY };
