/**
 * `enclavekit enclave ...`: the worker program. It is its own entry point (host code never imports
 * it), started inside the enclave image, or by the host as a separate process in simulator mode.
 *
 *   enclavekit enclave --listen vsock:ANY:PORT|unix:PATH [--platform nitro|sev-snp|simulator]
 *     [--sim-state DIR] [--sim-evidence nitro|sev-snp] [--image-id HEX | --image FILE...]
 *     [--kms vsock:3:8000|unix:PATH|tcp:HOST:PORT] [--kms-endpoint URL] [--region R] [--fips]
 *     [--require-dp] [--max-frame BYTES]
 *
 * AWS credentials come from the host, per session, in a `credentials` message (enclave/server.ts):
 * an enclave has no environment and no instance metadata service of its own. The worker reads no
 * AWS_* credential variable and runs no credential provider chain.
 *
 * stderr carries one-line logs (no plaintext, key or ciphertext); the line `listening on ...` says
 * the worker accepts connections.
 */
import { createConnection } from 'node:net';
import { realpathSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ToolkitError } from '../attestation/errors.js';
import { fromHex, toHex } from '../attestation/bytes.js';
import { DEFAULT_MAX_FRAME, MIN_MAX_FRAME } from './protocol/index.js';
import { generateRecipientKeyPair } from './keys.js';
import { EnclaveKms } from './kms-client.js';
import { kmsEndpointUrl } from './protocol/kms-endpoint.js';
import { Worker, pickFieldDecryptor } from './worker.js';
import { listenSessions, serveSession, type ListenEndpoint } from './server.js';
import type { Platform } from './platform/types.js';

const HELP = `usage: enclavekit enclave --listen vsock:ANY:PORT|unix:PATH [options]

The enclave worker: attests, fetches data keys from KMS with a Recipient, decrypts fields,
aggregates, and returns only attested aggregates.

  --listen EP              vsock:ANY:PORT (in an enclave) or unix:PATH (simulator)
  --platform P             nitro | sev-snp | simulator (default simulator)
  --sim-state DIR          simulator state folder (required with --platform simulator)
  --sim-evidence F         nitro | sev-snp: which evidence the simulator issues (default nitro)
  --image-id HEX           48-byte simulated image id (PCR0/1/2 derive from it)
  --image FILE             worker bundle file(s) whose digest is the simulated image id (repeatable)
  --kms EP                 stream to the host's KMS proxy: vsock:3:8000 (default), unix:PATH, tcp:HOST:PORT
  --kms-endpoint URL       KMS endpoint (default https://kms.REGION.amazonaws.com, or
                           https://kms-fips.REGION.amazonaws.com with --fips)
  --region R               AWS region (default us-east-1)
  --fips                   use KMS's FIPS endpoint (also AWS_USE_FIPS_ENDPOINT=true)

AWS credentials are not flags: the host sends the parent role's short-lived credentials after its
hello (a credentials message), per session. A job that arrives without them is refused before KMS
is asked (ERR_KMS_REQUEST, reason no_credentials), on every platform, the simulator's included.
  --require-dp             answer only differentially private queries, even where the owner's
                           sealed release policy allows exact ones (the shipped image sets it)
  --max-frame BYTES        largest frame accepted (default ${DEFAULT_MAX_FRAME})
  --kms-timeout MS         bound on one KMS Decrypt, retries included (default 20000)
  --exit-with-stdin        exit when standard input closes (a host that started this worker died)
`;

class WorkerUsage extends Error {}

type KmsEndpoint = { kind: 'unix'; path: string } | { kind: 'vsock'; cid: number; port: number } | { kind: 'tcp'; host: string; port: number };

function parseListen(text: string): ListenEndpoint {
  if (text.startsWith('unix:') && text.length > 5) return { kind: 'unix', path: text.slice(5) };
  const m = /^vsock:(ANY|\d{1,10}):(\d{1,10})$/.exec(text);
  if (m) {
    const cid = m[1] === 'ANY' ? 0xffffffff : Number(m[1]);
    const port = Number(m[2]);
    if (cid <= 0xffffffff && port <= 0xffffffff) return { kind: 'vsock', cid, port };
  }
  throw new WorkerUsage(`--listen expects vsock:ANY:PORT or unix:PATH, got ${JSON.stringify(text.slice(0, 120))}`);
}

function parseKms(text: string): KmsEndpoint {
  if (text.startsWith('unix:') && text.length > 5) return { kind: 'unix', path: text.slice(5) };
  let m = /^vsock:(\d{1,10}):(\d{1,10})$/.exec(text);
  if (m && Number(m[1]) <= 0xffffffff && Number(m[2]) <= 0xffffffff) return { kind: 'vsock', cid: Number(m[1]), port: Number(m[2]) };
  m = /^tcp:([A-Za-z0-9.-]+|\[[0-9a-fA-F:.]+\]):(\d{1,5})$/.exec(text);
  if (m && Number(m[2]) >= 1 && Number(m[2]) <= 65535) return { kind: 'tcp', host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  throw new WorkerUsage(`--kms expects vsock:CID:PORT, unix:PATH or tcp:HOST:PORT, got ${JSON.stringify(text.slice(0, 120))}`);
}

function kmsConnector(ep: KmsEndpoint): () => Promise<Duplex> {
  if (ep.kind === 'vsock') {
    return async () => {
      const native = (await import('../native/index.js')) as unknown as { connectVsock?: (cid: number, port: number) => Promise<Duplex> };
      if (typeof native.connectVsock !== 'function')
        throw new ToolkitError('ERR_PLATFORM_UNAVAILABLE', 'vsock needs the native addon', { reason: 'native' });
      return native.connectVsock(ep.cid, ep.port);
    };
  }
  return () =>
    new Promise<Duplex>((resolve, reject) => {
      const s = ep.kind === 'unix' ? createConnection(ep.path) : createConnection({ host: ep.host, port: ep.port });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
}

async function imageIdOf(values: { 'image-id'?: string | undefined; image?: string[] | undefined }): Promise<Uint8Array> {
  const { imageIdFromFiles } = await import('./platform/sim-image.js');
  if (values['image-id'] !== undefined && values.image !== undefined) throw new WorkerUsage('give --image-id or --image, not both');
  if (values['image-id'] !== undefined) {
    let id: Uint8Array;
    try {
      id = fromHex(values['image-id'], 'image-id');
    } catch {
      throw new WorkerUsage('--image-id must be 96 hex digits');
    }
    if (id.length !== 48) throw new WorkerUsage('--image-id must be 48 bytes (96 hex digits)');
    return id;
  }
  // Default: this worker program's own file is the image.
  return imageIdFromFiles(values.image ?? [fileURLToPath(import.meta.url)]);
}

async function makePlatform(values: Record<string, string | string[] | boolean | undefined>): Promise<Platform> {
  const kind = (values.platform as string | undefined) ?? 'simulator';
  if (kind === 'nitro') {
    const { NitroPlatform } = await import('./platform/nitro.js');
    return NitroPlatform.open();
  }
  if (kind === 'sev-snp') {
    const { SevSnpPlatform } = await import('./platform/sev-snp.js');
    return SevSnpPlatform.open();
  }
  if (kind !== 'simulator') throw new WorkerUsage('--platform must be nitro, sev-snp or simulator');
  const dir = values['sim-state'] as string | undefined;
  if (!dir) throw new WorkerUsage('--platform simulator needs --sim-state DIR');
  const { openSimulatorState } = await import('./sim-state.js');
  const state = await openSimulatorState(dir, { now: new Date() });
  const imageId = await imageIdOf(values as { 'image-id'?: string; image?: string[] });
  const evidence = (values['sim-evidence'] as string | undefined) ?? 'nitro';
  if (evidence === 'nitro') {
    const { SimNitroPlatform } = await import('./platform/sim-nitro.js');
    return new SimNitroPlatform({ ca: state.nitroCa, identity: { imageId } });
  }
  if (evidence === 'sev-snp') {
    const { SimSnpPlatform, simulatedMeasurement } = await import('./platform/sim-snp.js');
    return new SimSnpPlatform({ chain: state.snpChain, measurement: simulatedMeasurement(imageId) });
  }
  throw new WorkerUsage('--sim-evidence must be nitro or sev-snp');
}

/**
 * `image PCR0 <hex>` (Nitro evidence) or `image MEASUREMENT <hex>` (SEV-SNP), logged at start so an
 * operator can write the key policy for this image; undefined when the platform cannot say.
 */
async function imageMeasurement(platform: Platform): Promise<string | undefined> {
  try {
    if (platform.evidenceFormat === 'nitro') return `image PCR0 ${toHex((await platform.describePcr(0)).value)} (platform ${platform.kind})`;
    // An SNP report's MEASUREMENT is at 0x90..0xC0 (attestation/sevsnp/abi.ts).
    const report = await platform.attest({});
    return report.length >= 0xc0 ? `image MEASUREMENT ${toHex(report.subarray(0x90, 0xc0))} (platform ${platform.kind})` : undefined;
  } catch {
    return undefined;
  }
}

export async function main(argv: string[]): Promise<number> {
  const log = (line: string) => process.stderr.write(`enclave: ${line}\n`);
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        listen: { type: 'string' },
        platform: { type: 'string' },
        'sim-state': { type: 'string' },
        'sim-evidence': { type: 'string' },
        'image-id': { type: 'string' },
        image: { type: 'string', multiple: true },
        kms: { type: 'string' },
        'kms-endpoint': { type: 'string' },
        region: { type: 'string' },
        fips: { type: 'boolean' },
        'require-dp': { type: 'boolean' },
        'max-frame': { type: 'string' },
        'kms-timeout': { type: 'string' },
        'exit-with-stdin': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`enclavekit enclave: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  try {
    if (!values.listen) throw new WorkerUsage('--listen is required');
    const listen = parseListen(values.listen);
    const kmsEp = parseKms(values.kms ?? 'vsock:3:8000');
    const maxFrame = values['max-frame'] === undefined ? DEFAULT_MAX_FRAME : Number(values['max-frame']);
    if (!Number.isSafeInteger(maxFrame) || maxFrame < MIN_MAX_FRAME || maxFrame > 0xffffffff)
      throw new WorkerUsage(`--max-frame must be an integer from ${MIN_MAX_FRAME}`);
    const region = values.region ?? 'us-east-1';
    // AWS_USE_FIPS_ENDPOINT is the SDKs' own setting (an image can set it without changing its
    // command); it applies to the default endpoint only.
    if (values['kms-endpoint'] !== undefined && values.fips === true) throw new WorkerUsage('give --kms-endpoint or --fips, not both');
    const fips = values['kms-endpoint'] === undefined && (values.fips === true || /^true$/i.test(process.env.AWS_USE_FIPS_ENDPOINT ?? ''));
    if (values['kms-endpoint'] === undefined) {
      try {
        kmsEndpointUrl(region, { fips });
      } catch (e) {
        throw new WorkerUsage(`--region: ${(e as Error).message}`);
      }
    }
    const kmsTimeout = values['kms-timeout'] === undefined ? undefined : Number(values['kms-timeout']);
    if (kmsTimeout !== undefined && (!Number.isSafeInteger(kmsTimeout) || kmsTimeout < 100 || kmsTimeout > 600_000))
      throw new WorkerUsage('--kms-timeout must be an integer from 100 to 600000 (ms)');
    const platform = await makePlatform(values);
    // What this image attests as: the value a key policy and `run --expect-pcr` need.
    const measured = await imageMeasurement(platform);
    if (measured !== undefined) log(measured);
    const keyPair = await generateRecipientKeyPair();
    const kms = new EnclaveKms({
      platform,
      keyPair,
      region,
      ...(values['kms-endpoint'] ? { endpoint: values['kms-endpoint'] } : {}),
      fips,
      // Plain http only to the loopback simulator; on nitro / sev-snp the KMS endpoint must be TLS.
      ...(platform.kind === 'simulator' ? { allowPlainHttp: true } : {}),
      // Only the host's credentials sign: the KMS simulator checks SigV4 like AWS, so no placeholder.
      simulatorPlaceholderCredentials: false,
      connect: kmsConnector(kmsEp),
      ...(kmsTimeout !== undefined ? { requestTimeoutMs: kmsTimeout, connectTimeoutMs: Math.min(kmsTimeout, 5000) } : {}),
    });
    const decryptor = await pickFieldDecryptor(log);
    const worker = new Worker({
      platform,
      keyPair,
      // Each job signs with its session's credentials (the latest the host sent).
      loadKeys: (refs, credentials) => kms.loadKeys(refs, { credentials }),
      decryptor,
      log,
      requireDp: values['require-dp'] === true,
    });
    const server = await listenSessions(listen, (stream) => serveSession(stream, worker.handler(), { maxFrame }), { log });
    log(`listening on ${values.listen} (platform ${platform.kind}, evidence ${platform.evidenceFormat}, KMS ${kms.endpoint})`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      if (values['exit-with-stdin']) {
        // The parent holds the other end of our stdin: if it dies however it dies, this ends.
        process.stdin.on('end', stop);
        process.stdin.on('close', stop);
        process.stdin.on('error', stop);
        process.stdin.resume();
      }
    });
    log('shutting down');
    await server.close();
    await kms.close();
    await platform.close();
    // Nothing may keep the event loop alive after this (the bin sets the exit code and lets it drain).
    if (values['exit-with-stdin']) process.stdin.destroy();
    return 0;
  } catch (e) {
    if (e instanceof WorkerUsage) {
      process.stderr.write(`enclavekit enclave: ${e.message}\n`);
      return 2;
    }
    if (e instanceof ToolkitError) {
      log(`fatal: ${e.code}: ${e.message}`);
      return 1;
    }
    log(`fatal: ${(e as NodeJS.ErrnoException).code ?? 'internal error'}`);
    return 1;
  }
}

// Run when started directly (`node --import tsx enclave/cli.ts`, `node dist/enclave/cli.js`).
const entry = process.argv[1];
if (entry !== undefined) {
  let self = false;
  try {
    self = pathToFileURL(realpathSync(entry)).href === import.meta.url;
  } catch {
    self = false;
  }
  if (self) {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    main(process.argv.slice(2)).then(
      (code) => process.exit(code),
      () => process.exit(1),
    );
  }
}
