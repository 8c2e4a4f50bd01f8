/**
 * `enclavekit sim kms`: run the KMS simulator in the foreground until SIGINT/SIGTERM, or manage its
 * principals.
 *
 *   enclavekit sim kms --port N --state DIR [--host 127.0.0.1] [--trust-simulator] [--sim-root PEM]
 *   enclavekit sim kms credentials add --state DIR --principal ARN [--session] [--session-name NAME]
 *     [--expires-in SECONDS] [--json]
 */
import { parseArgs } from 'node:util';
import { startKmsSimulator, DEFAULT_ACCOUNT_ID } from '../kms-sim/server.js';
import { ensureSimulatorRootInState, readRootsPem, SIM_CA_FILE } from '../kms-sim/sim-root.js';
import {
  addSimulatorPrincipal,
  ensureRootCredentials,
  CREDENTIALS_FILE,
  CREDENTIALS_PROFILE,
  DEFAULT_SESSION_NAME,
  DEFAULT_SESSION_SECONDS,
  MAX_SESSION_SECONDS,
  type SimCredentials,
} from '../kms-sim/principals.js';
import { join } from 'node:path';
import { rename, rm, writeFile } from 'node:fs/promises';
import { EXIT_OK, UsageError, fileError, usage, writeJson, type CliIO } from './io.js';

const HELP = `usage: enclavekit sim kms --state DIR [--port N] [--host 127.0.0.1] [--trust-simulator] [--sim-root PEM]
         [--port-file FILE] [--json]
       enclavekit sim kms credentials add --state DIR --principal ARN [--session] [--expires-in S] [--json]

Run a local AWS KMS (JSON 1.1 protocol, SigV4) for the real @aws-sdk/client-kms and the AWS CLI:
point the client's endpoint at the printed URL. Keys are kept, sealed, in DIR and survive a restart.
Every request must be signed (SigV4) with a principal's access key: on first use DIR gets one for the
account root, in DIR/${CREDENTIALS_FILE} (AWS shared-credentials format, profile ${CREDENTIALS_PROFILE}):

  AWS_SHARED_CREDENTIALS_FILE=DIR/${CREDENTIALS_FILE} AWS_PROFILE=${CREDENTIALS_PROFILE} AWS_REGION=us-east-1 \\
    aws kms list-keys --endpoint-url http://127.0.0.1:PORT

  --state DIR          state folder (created 0700 on first use)
  --port N             TCP port on the loopback interface (default 0: any free port)
  --host ADDR          loopback address to bind (default 127.0.0.1; only loopback is allowed)
  --trust-simulator    also accept Recipient documents signed by the simulator root, read from
                       DIR/${SIM_CA_FILE} (created there, as a simulated worker would, if DIR has
                       none) or from --sim-root. Never trusted otherwise.
  --sim-root PEM       simulator root certificate(s) (implies nothing without --trust-simulator)
  --port-file FILE     once listening, write the port (one line) to FILE, atomically; removed on stop
  --json               print one ready line {"ok":true,"ready":true,"url","host","port","state",...}
                       on standard output once listening (everything else goes to standard error)

\`enclavekit sim kms credentials --help\` describes adding principals (a role, a data owner, ...).
`;

const CREDENTIALS_HELP = `usage: enclavekit sim kms credentials add --state DIR --principal ARN [--session]
         [--session-name NAME] [--expires-in SECONDS] [--json]

Add a principal to the KMS simulator's state folder and print its new access key. A simulator running
on DIR accepts it at once; key policies naming the principal apply to requests signed with it.

  --state DIR          the simulator's state folder (created 0700 if new)
  --principal ARN      arn:aws:iam::ACCOUNT:user/NAME or arn:aws:iam::ACCOUNT:root (long-term keys), or
                       arn:aws:iam::ACCOUNT:role/NAME (needs --session: a role has no long-term keys)
  --session            temporary credentials (ASIA... key, session token, expiry), as AssumeRole gives
                       for a role (caller arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION) and
                       GetSessionToken for a user
  --session-name NAME  the role session's name (default ${DEFAULT_SESSION_NAME})
  --expires-in S       lifetime of temporary credentials in seconds, 1..${MAX_SESSION_SECONDS} (default ${DEFAULT_SESSION_SECONDS})
  --json               print {"ok":true,"Version":1,"AccessKeyId","SecretAccessKey","SessionToken",
                       "Expiration","Principal","AccountId"} (also the AWS credential_process format)

Without --json the output is shell: eval "$(enclavekit sim kms credentials add ...)" sets
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. The secrets are printed only here,
and kept only in DIR (mode 0600 files in a 0700 folder).

Exit status: 0 added, 2 usage error (bad ARN, a role without --session) or state folder error.
`;

const LOOPBACK = /^(?:127(?:\.\d{1,3}){3}|::1|localhost)$/;

export async function run(argv: string[], io: CliIO): Promise<number> {
  if (argv[0] === 'credentials') return credentials(argv.slice(1), io);
  const { values } = usage(() =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        state: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'trust-simulator': { type: 'boolean' },
        'sim-root': { type: 'string' },
        'port-file': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
    'sim kms',
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (values.state === undefined) throw new UsageError('--state DIR is required');
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!/^\d{1,5}$/.test(values.port ?? '0') || port > 65535) throw new UsageError('--port expects 0..65535');
  const host = values.host ?? '127.0.0.1';
  // Loopback only: a simulator is for one machine's tests and demos, never a network service.
  if (!LOOPBACK.test(host)) throw new UsageError('--host must be a loopback address');
  if (values['sim-root'] !== undefined && !values['trust-simulator']) throw new UsageError('--sim-root needs --trust-simulator');

  let simulatorRoots: Uint8Array[] = [];
  let createdCa = false;
  if (values['trust-simulator']) {
    // An explicit --sim-root is what the user asked to trust; the state folder's root is the fallback,
    // created there when the folder is new (workers started on the same folder then use it).
    if (values['sim-root'] !== undefined) simulatorRoots = await readRootsPem(values['sim-root']);
    else {
      const r = await ensureSimulatorRootInState(values.state, io.now());
      simulatorRoots.push(r.rootDer);
      createdCa = r.created;
    }
  }

  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const sim = await startKmsSimulator({
    host,
    port,
    stateDir: values.state,
    trustSimulator: values['trust-simulator'] === true,
    simulatorRoots,
    now: io.now,
    log: (line) => io.stderr.write(`kms-sim: ${line}\n`),
  });
  // Stop on SIGINT/SIGTERM: installed before anything says "ready", so a caller that signals as soon as
  // it reads the ready line (or the port file) never kills the process before the handler exists.
  let stop = (): void => {};
  const stopped = new Promise<void>((resolve) => {
    stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  // The ready line: a script waits for it (or for --port-file) before it talks to the simulator.
  const portFile = values['port-file'];
  if (portFile !== undefined) {
    const tmp = `${portFile}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, `${sim.port}\n`, { mode: 0o644 });
      await rename(tmp, portFile);
    } catch (e) {
      stop();
      await sim.close();
      await rm(tmp, { force: true });
      throw fileError(e, portFile, '--port-file');
    }
  }
  if (values.json)
    writeJson(io.stdout, {
      ok: true,
      ready: true,
      url: sim.url,
      host,
      port: sim.port,
      state: values.state,
      trustSimulator: values['trust-simulator'] === true,
      credentialsFile: sim.credentialsFile,
      profile: CREDENTIALS_PROFILE,
      ...(portFile !== undefined ? { portFile } : {}),
    });
  (values.json ? io.stderr : io.stdout).write(
    `enclavekit KMS simulator listening on ${sim.url} (state ${values.state}${values['trust-simulator'] ? ', simulator root trusted' : ''})\n` +
      (createdCa ? `created the simulator CA in ${join(values.state, SIM_CA_FILE)} (start simulated workers with --sim-state ${values.state})\n` : '') +
      `credentials of ${sim.credentials.principal}: AWS_SHARED_CREDENTIALS_FILE=${sim.credentialsFile} AWS_PROFILE=${CREDENTIALS_PROFILE}\n`,
  );

  await stopped;
  await sim.close();
  if (portFile !== undefined) await rm(portFile, { force: true });
  (values.json ? io.stderr : io.stdout).write('enclavekit KMS simulator stopped\n');
  return EXIT_OK;
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** `{"ok":true, ...}` in the AWS credential_process shape (Version 1), plus the caller ARN. */
export function credentialsJson(c: SimCredentials): Record<string, unknown> {
  return {
    ok: true,
    Version: 1,
    AccessKeyId: c.accessKeyId,
    SecretAccessKey: c.secretAccessKey,
    ...(c.sessionToken !== undefined ? { SessionToken: c.sessionToken } : {}),
    ...(c.expiration !== undefined ? { Expiration: c.expiration.toISOString() } : {}),
    Principal: c.principal,
    AccountId: c.account,
  };
}

async function credentials(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout.write(CREDENTIALS_HELP);
    return sub === undefined ? 2 : EXIT_OK;
  }
  if (sub !== 'add') throw new UsageError(`unknown subcommand "credentials ${sub.slice(0, 40)}" (expected: credentials add)`, { help: 'sim kms credentials' });
  const { values } = usage(
    () =>
      parseArgs({
        args: rest,
        strict: true,
        allowPositionals: false,
        options: {
          state: { type: 'string' },
          principal: { type: 'string' },
          session: { type: 'boolean' },
          'session-name': { type: 'string' },
          'expires-in': { type: 'string' },
          json: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
      }),
    'sim kms credentials',
  );
  if (values.help) {
    io.stdout.write(CREDENTIALS_HELP);
    return EXIT_OK;
  }
  if (values.state === undefined) throw new UsageError('--state DIR is required', { help: 'sim kms credentials' });
  if (values.principal === undefined) throw new UsageError('--principal ARN is required', { help: 'sim kms credentials' });
  let expiresInSeconds: number | undefined;
  if (values['expires-in'] !== undefined) {
    if (!values.session) throw new UsageError('--expires-in applies to temporary credentials: add --session');
    if (!/^[1-9]\d{0,6}$/.test(values['expires-in']) || Number(values['expires-in']) > MAX_SESSION_SECONDS)
      throw new UsageError(`--expires-in expects seconds from 1 to ${MAX_SESSION_SECONDS}`);
    expiresInSeconds = Number(values['expires-in']);
  }
  if (values['session-name'] !== undefined && !values.session) throw new UsageError('--session-name needs --session');
  const now = io.now();
  // First use of a folder also gives it the root's key and credentials file, as the server would.
  await ensureRootCredentials(values.state, { accountId: DEFAULT_ACCOUNT_ID, now });
  let c: SimCredentials;
  try {
    c = await addSimulatorPrincipal(values.state, {
      principal: values.principal.slice(0, 2048),
      session: values.session === true,
      ...(values['session-name'] !== undefined ? { sessionName: values['session-name'] } : {}),
      ...(expiresInSeconds !== undefined ? { expiresInSeconds } : {}),
      now,
    });
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError) throw new UsageError(e.message.replace(/^"principal": |^"sessionName": /, ''), { help: 'sim kms credentials' });
    throw e;
  }
  if (values.json) {
    writeJson(io.stdout, credentialsJson(c));
    return EXIT_OK;
  }
  io.stdout.write(
    `# ${c.principal}${c.expiration ? ` (temporary credentials, expire ${c.expiration.toISOString()})` : ''}\n` +
      `export AWS_ACCESS_KEY_ID=${shellQuote(c.accessKeyId)}\n` +
      `export AWS_SECRET_ACCESS_KEY=${shellQuote(c.secretAccessKey)}\n` +
      (c.sessionToken !== undefined ? `export AWS_SESSION_TOKEN=${shellQuote(c.sessionToken)}\n` : 'unset AWS_SESSION_TOKEN\n'),
  );
  return EXIT_OK;
}
