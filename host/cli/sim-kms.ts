/**
 * `enclavekit sim kms`: run the KMS simulator in the foreground until SIGINT/SIGTERM.
 *
 *   enclavekit sim kms --port N --state DIR [--host 127.0.0.1] [--trust-simulator] [--sim-root PEM]
 */
import { parseArgs } from 'node:util';
import { startKmsSimulator } from '../kms-sim/server.js';
import { readRootsPem, readSimulatorRootFromState, SIM_CA_FILE } from '../kms-sim/sim-root.js';
import { EXIT_OK, UsageError, usage, type CliIO } from './io.js';

const HELP = `usage: enclavekit sim kms --state DIR [--port N] [--host 127.0.0.1] [--trust-simulator] [--sim-root PEM]

Run a local AWS KMS (JSON 1.1 protocol) for the real @aws-sdk/client-kms: point the client's
endpoint at the printed URL. Keys are kept, sealed, in DIR and survive a restart.

  --state DIR          state folder (created 0700 on first use)
  --port N             TCP port on the loopback interface (default 0: any free port)
  --host ADDR          loopback address to bind (default 127.0.0.1; only loopback is allowed)
  --trust-simulator    also accept Recipient documents signed by the simulator root, read from
                       DIR/${SIM_CA_FILE} or from --sim-root. Never trusted otherwise.
  --sim-root PEM       simulator root certificate(s) (implies nothing without --trust-simulator)
`;

const LOOPBACK = /^(?:127(?:\.\d{1,3}){3}|::1|localhost)$/;

export async function run(argv: string[], io: CliIO): Promise<number> {
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
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (values.state === undefined) throw new UsageError('--state DIR is required');
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!/^\d{1,5}$/.test(values.port ?? '0') || port > 65535) throw new UsageError('--port expects 0..65535');
  const host = values.host ?? '127.0.0.1';
  // The simulator has no authentication: it must never be reachable from another machine.
  if (!LOOPBACK.test(host)) throw new UsageError('--host must be a loopback address');
  if (values['sim-root'] !== undefined && !values['trust-simulator']) throw new UsageError('--sim-root needs --trust-simulator');

  let simulatorRoots: Uint8Array[] = [];
  if (values['trust-simulator']) {
    // An explicit --sim-root is what the user asked to trust; the state folder's root is the fallback.
    if (values['sim-root'] !== undefined) simulatorRoots = await readRootsPem(values['sim-root']);
    else {
      const fromState = await readSimulatorRootFromState(values.state);
      if (fromState === undefined)
        throw new UsageError(`--trust-simulator: no ${SIM_CA_FILE} in ${values.state}; pass --sim-root PEM`);
      simulatorRoots.push(fromState);
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
  io.stdout.write(
    `enclavekit KMS simulator listening on ${sim.url} (state ${values.state}${values['trust-simulator'] ? ', simulator root trusted' : ''})\n`,
  );

  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await sim.close();
  io.stdout.write('enclavekit KMS simulator stopped\n');
  return EXIT_OK;
}
