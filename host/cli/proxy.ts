/**
 * `enclavekit proxy`: the parent's KMS proxy, generated from one region setting.
 *
 *   enclavekit proxy allowlist --region R [--fips] [--out FILE]   the allowlist (vsock-proxy's YAML)
 *   enclavekit proxy serve --region R [--fips] [--listen vsock:8000]  the proxy itself, until SIGTERM
 *
 * Both derive the KMS host from the function the worker derives its endpoint from
 * (enclave/protocol/kms-endpoint.ts), so the worker, the allowlist and the proxy cannot disagree.
 */
import { parseArgs } from 'node:util';
import { readFile, writeFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { isToolkitError, ToolkitError } from '../../attestation/errors.js';
import { kmsAllowlistYaml, kmsEndpointHost } from '../../enclave/protocol/kms-endpoint.js';
import { parseAllowlistYaml, parseHostPort, startKmsProxy, type HostPort, type ListenFn, type ProxyListen } from '../kms-proxy.js';
import { EXIT_OK, UsageError, fileError, usage, writeJson, type CliIO } from './io.js';

const HELP = `usage: enclavekit proxy allowlist --region R [--fips] [--out FILE] [--json]
       enclavekit proxy serve (--region R [--fips] | --target HOST:PORT --allow-file YAML) [--listen vsock:8000]

Print the KMS proxy allowlist for a region (AWS vsock-proxy's format, also read by
\`enclavekit run --kms-allow-file\`): kms.R.amazonaws.com:443, or kms-fips.R.amazonaws.com:443 with
--fips (China: .amazonaws.com.cn). The worker image must be built for the same region and endpoint
(scripts/enclave/build-eif.sh REGION [--fips]).

  --region R   AWS region, e.g. eu-west-1
  --fips       the FIPS endpoint
  --out FILE   write the YAML there instead of standard output
  --json       print {"ok":true,"region","fips","host","port":443,"endpoint"} instead of YAML

\`proxy serve\` runs the KMS proxy (as AWS's vsock-proxy does) until SIGTERM or SIGINT: it accepts the
enclave's streams on --listen (vsock:PORT on a parent instance, default vsock:8000; unix:PATH for
tests) and forwards each, bytes untouched (TLS stays end to end), to KMS of --region, port 443, and
nowhere else. --target HOST:PORT with --allow-file YAML forwards elsewhere, if the file allows it.
Logs (stderr) say which connection opened and closed; never a byte of it.
`;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    io.stdout.write(HELP);
    return sub === undefined ? 2 : EXIT_OK;
  }
  if (sub === 'serve') return serve(rest, io);
  if (sub !== 'allowlist') throw new UsageError(`unknown subcommand "${sub}" (proxy allowlist, proxy serve)`, { help: 'proxy' });
  const { values } = usage(
    () =>
      parseArgs({
        args: rest,
        strict: true,
        allowPositionals: false,
        options: {
          region: { type: 'string' },
          fips: { type: 'boolean' },
          out: { type: 'string' },
          json: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
      }),
    'proxy',
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (!values.region) throw new UsageError('--region R is required', { help: 'proxy' });
  const fips = values.fips === true;
  let host: string;
  try {
    host = kmsEndpointHost(values.region, { fips });
  } catch (e) {
    throw new UsageError(`--region: ${(e as Error).message}`);
  }
  const yaml = kmsAllowlistYaml(values.region, { fips });
  if (values.out !== undefined) {
    try {
      await writeFile(values.out, yaml, { mode: 0o644 });
    } catch (e) {
      throw fileError(e, values.out, '--out');
    }
  }
  if (values.json) writeJson(io.stdout, { ok: true, region: values.region, fips, host, port: 443, endpoint: `https://${host}`, ...(values.out ? { out: values.out } : {}) });
  else if (values.out === undefined) io.stdout.write(yaml);
  return EXIT_OK;
}

function parseListen(text: string): ProxyListen {
  const m = /^vsock:(\d{1,10})$/.exec(text);
  if (m && Number(m[1]) <= 0xffffffff) return { kind: 'vsock', port: Number(m[1]) };
  if (text.startsWith('unix:') && text.length > 5 && text.length < 113) return { kind: 'unix', path: text.slice(5) };
  throw new UsageError('--listen expects vsock:PORT or unix:PATH', { help: 'proxy' });
}

/** vsock listeners come from the native addon (loaded only for them). */
async function vsockListen(): Promise<ListenFn> {
  const native = (await import('../../native/index.js')) as unknown as {
    listenVsock?: (port: number, o?: { allowHalfOpen?: boolean }) => import('node:events').EventEmitter & { close(cb?: () => void): unknown };
  };
  if (typeof native.listenVsock !== 'function') throw new ToolkitError('ERR_PLATFORM_UNAVAILABLE', 'listening on vsock needs the native addon', { reason: 'native' });
  const lv = native.listenVsock;
  return async (at, onConnection: (s: Duplex) => void) => {
    if (at.kind !== 'vsock') throw new TypeError('vsock listener for vsock addresses only');
    const srv = lv(at.port, { allowHalfOpen: true });
    srv.on('connection', onConnection);
    return { close: () => new Promise<void>((r) => void srv.close(() => r())) };
  };
}

async function serve(argv: string[], io: CliIO): Promise<number> {
  const { values } = usage(
    () =>
      parseArgs({
        args: argv,
        strict: true,
        allowPositionals: false,
        options: {
          region: { type: 'string' },
          fips: { type: 'boolean' },
          listen: { type: 'string' },
          target: { type: 'string' },
          'allow-file': { type: 'string' },
          'max-connections': { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      }),
    'proxy',
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const listen = parseListen(values.listen ?? 'vsock:8000');
  let target: HostPort;
  let allow: HostPort[];
  if (values.region !== undefined) {
    if (values.target !== undefined || values['allow-file'] !== undefined) throw new UsageError('give --region, or --target with --allow-file, not both', { help: 'proxy' });
    try {
      target = { host: kmsEndpointHost(values.region, { fips: values.fips === true }), port: 443 };
    } catch (e) {
      throw new UsageError(`--region: ${(e as Error).message}`);
    }
    allow = [target];
  } else {
    if (values.target === undefined || values['allow-file'] === undefined) throw new UsageError('give --region R, or --target HOST:PORT with --allow-file YAML', { help: 'proxy' });
    if (values.fips) throw new UsageError('--fips goes with --region', { help: 'proxy' });
    let text: string;
    try {
      text = await readFile(values['allow-file'], 'utf8');
    } catch (e) {
      throw fileError(e, values['allow-file'], '--allow-file');
    }
    try {
      target = parseHostPort(values.target);
      allow = parseAllowlistYaml(text);
    } catch (e) {
      if (isToolkitError(e)) throw new UsageError(e.message);
      throw e;
    }
  }
  const maxConnections = values['max-connections'] === undefined ? undefined : Number(values['max-connections']);
  if (maxConnections !== undefined && (!Number.isSafeInteger(maxConnections) || maxConnections < 1 || maxConnections > 1024))
    throw new UsageError('--max-connections must be an integer from 1 to 1024');
  const log = (l: string) => io.stderr.write(`${l}\n`);
  let proxy;
  try {
    proxy = await startKmsProxy({
      listen,
      target,
      allow,
      log,
      ...(maxConnections !== undefined ? { maxConnections } : {}),
      ...(listen.kind === 'vsock' ? { listenFn: await vsockListen() } : {}),
    });
  } catch (e) {
    if (isToolkitError(e) && e.code === 'ERR_CONFIG_INVALID') throw new UsageError(e.message);
    throw e;
  }
  io.stdout.write(`enclavekit KMS proxy listening on ${values.listen ?? 'vsock:8000'}, forwarding to ${target.host}:${target.port}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await proxy.close();
  io.stdout.write('enclavekit KMS proxy stopped\n');
  return EXIT_OK;
}
