/**
 * `enclavekit sim image-id [--image FILE]... [--json]`: what a simulated worker image will measure as,
 * before any worker runs, so a key policy (`enclavekit policy --pcr 0=...`) can be written first.
 *
 * The formulas are attestation/sim/image.ts's, the ones the worker uses: image id = SHA-384 over the
 * files' digests, PCR0/1/2 and the simulated SEV-SNP MEASUREMENT derived from it. Without --image the
 * image is the worker bundle (`workerBundle()`), which is also what `enclavekit enclave` measures by
 * default, what `enclavekit run --enclave sim` starts, and the demo's image A.
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { toHex } from '../../attestation/bytes.js';
import { simImagePcr, simSnpMeasurement } from '../../attestation/sim/image.js';
import { simImageIdFromFiles } from '../sim-stack.js';
import { packageRoot } from '../worker-process.js';
import { EXIT_OK, usage, type CliIO } from './io.js';

const HELP = `usage: enclavekit sim image-id [--image FILE]... [--json]

Print the simulated measurements of a worker image: its image id, PCR0, PCR1, PCR2 (simulated Nitro)
and MEASUREMENT (simulated SEV-SNP), as a worker started with the same files will attest them.

  --image FILE   a file of the image (repeatable, order matters); default: the worker bundle
                 (dist/enclave/cli.js), the image \`enclavekit enclave\` and \`run --enclave sim\` use
  --json         print one JSON object
`;

/**
 * The worker program's file: what the simulated image consists of by default. The compiled bundle as
 * users run it; the TypeScript source when this code itself runs from sources (tests, benchmarks) or
 * nothing is built, as host/worker-process.ts chooses which worker to start.
 */
export function workerBundle(): string {
  const root = packageRoot();
  const built = join(root, 'dist', 'enclave', 'cli.js');
  return import.meta.url.endsWith('.ts') || !existsSync(built) ? join(root, 'enclave', 'cli.ts') : built;
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = usage(
    () =>
      parseArgs({
        args: argv,
        strict: true,
        allowPositionals: false,
        options: { image: { type: 'string', multiple: true }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      }),
    'sim image-id',
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const files = values.image ?? [workerBundle()];
  const imageId = await simImageIdFromFiles(files);
  const pcrs = { '0': toHex(simImagePcr(0, imageId)), '1': toHex(simImagePcr(1, imageId)), '2': toHex(simImagePcr(2, imageId)) };
  const measurement = toHex(simSnpMeasurement(imageId));
  if (values.json === true) {
    io.stdout.write(JSON.stringify({ ok: true, imageId: toHex(imageId), files, default: values.image === undefined, pcrs, measurement }) + '\n');
    return EXIT_OK;
  }
  const shown = files.map((f) => {
    const r = relative(process.cwd(), f);
    return r.startsWith('..') ? f : r;
  });
  io.stdout.write(
    [
      `image id     ${toHex(imageId)}`,
      `PCR0         ${pcrs['0']}`,
      `PCR1         ${pcrs['1']}`,
      `PCR2         ${pcrs['2']}`,
      `MEASUREMENT  ${measurement}  (simulated SEV-SNP)`,
      `files        ${shown.join(', ')}${values.image === undefined ? '  (the worker bundle: the default image)' : ''}`,
    ].join('\n') + '\n',
  );
  return EXIT_OK;
}
