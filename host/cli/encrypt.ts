/**
 * `enclavekit encrypt --in FILE --fields a,b.c --id-field id --dataset ID --key-id KEY
 *   [--endpoint URL] [--region R] [--rotate-after N] [--format ndjson|csv] --out FILE --manifest FILE`
 */
import { readFile, writeFile, rename } from 'node:fs/promises';
import { validateReleasePolicy, type ReleasePolicy } from '../../enclave/protocol/index.js';
import { parseArgs } from 'node:util';
import { EXIT_OK, UsageError, usage, type CliIO } from './io.js';
import { detectFormat, type DatasetFormat } from '../dataset.js';
import { encryptDataset, KmsDataKeySource, type KmsDataKeySourceOptions } from '../encrypt.js';

const HELP = `usage: enclavekit encrypt --in FILE --fields a,b.c --id-field id --dataset ID --key-id KEY --out FILE --manifest FILE [options]

Encrypt fields of an NDJSON or CSV dataset with KMS data keys (AES-256-GCM, format ekf1; see README).

  --in FILE            dataset to read (.ndjson/.jsonl/.json or .csv, or see --format)
  --format F           ndjson or csv (default: from the --in extension)
  --fields LIST        comma-separated field paths to encrypt (CSV: column names)
  --id-field PATH      field holding each record's unique id (bound into every field's AAD)
  --dataset ID         dataset id (bound into every field's AAD and the keys' encryption context)
  --key-id KEY         KMS key id, ARN or alias that wraps the data keys
  --endpoint URL       KMS endpoint (e.g. the simulator's http://127.0.0.1:PORT)
  --region R           AWS region (default: AWS_REGION or us-east-1)
  --rotate-after N     fields per data key before a new one is generated (default 1000000)
  --out FILE           encrypted dataset to write (same format as the input)
  --manifest FILE      sealed manifest (JSON) to write
  --policy FILE        the release policy (JSON, see schemas/release-policy.schema.json) to seal
                       into the manifest; without it the strictest default applies (DP required)

Credentials come from the AWS SDK's default chain. With --endpoint on a loopback address and no
AWS_ACCESS_KEY_ID in the environment, fixed placeholder credentials are used (the simulator does
not check signatures).

Exit status: 0 done, 2 usage, I/O or KMS error, 1 invalid dataset.
`;

const LOOPBACK = /^https?:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(\/|$)/;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = usage(() =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        in: { type: 'string' },
        format: { type: 'string' },
        fields: { type: 'string' },
        'id-field': { type: 'string' },
        dataset: { type: 'string' },
        'key-id': { type: 'string' },
        endpoint: { type: 'string' },
        region: { type: 'string' },
        'rotate-after': { type: 'string' },
        out: { type: 'string' },
        manifest: { type: 'string' },
        policy: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  for (const k of ['in', 'fields', 'id-field', 'dataset', 'key-id', 'out', 'manifest'] as const)
    if (!values[k]) throw new UsageError(`--${k} is required (see --help)`);
  const input = values.in!;
  let format: DatasetFormat | undefined;
  if (values.format !== undefined) {
    if (values.format !== 'ndjson' && values.format !== 'csv') throw new UsageError('--format must be ndjson or csv');
    format = values.format;
  } else format = detectFormat(input);
  if (!format) throw new UsageError(`cannot tell the format of ${input} from its extension; pass --format`);
  const fields = values.fields!.split(',').map((s) => s.trim()).filter(Boolean);
  let rotateAfter: number | undefined;
  if (values['rotate-after'] !== undefined) {
    if (!/^[1-9]\d{0,9}$/.test(values['rotate-after'])) throw new UsageError('--rotate-after must be a positive integer');
    rotateAfter = Number(values['rotate-after']);
  }
  if (values.out === input) throw new UsageError('--out must differ from --in');
  const kmsOpts: KmsDataKeySourceOptions = {};
  if (values.endpoint) {
    try {
      new URL(values.endpoint);
    } catch {
      throw new UsageError('--endpoint must be a URL');
    }
    kmsOpts.endpoint = values.endpoint;
    if (LOOPBACK.test(values.endpoint) && !io.env.AWS_ACCESS_KEY_ID)
      kmsOpts.credentials = { accessKeyId: 'enclavekit-simulator', secretAccessKey: 'enclavekit-simulator' };
  }
  let policy: ReleasePolicy | null = null;
  if (values.policy !== undefined) {
    let text: string;
    try {
      text = await readFile(values.policy, 'utf8');
    } catch (e) {
      throw new UsageError(`--policy: cannot read ${values.policy} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new UsageError(`--policy: ${values.policy} is not JSON`);
    }
    try {
      policy = validateReleasePolicy(v);
    } catch (e) {
      throw new UsageError(`--policy: ${(e as Error).message}`);
    }
  }
  const region = values.region ?? io.env.AWS_REGION;
  if (region) kmsOpts.region = region;
  const kms = new KmsDataKeySource(kmsOpts);
  try {
    let opts: Parameters<typeof encryptDataset>[0];
    try {
      opts = {
        input, format, fields, idField: values['id-field']!, datasetId: values.dataset!, keyId: values['key-id']!, kms, output: values.out!, policy,
        ...(rotateAfter ? { rotateAfter } : {}),
      };
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    let manifest;
    try {
      manifest = await encryptDataset(opts);
    } catch (e) {
      if (e instanceof TypeError || e instanceof RangeError) throw new UsageError(e.message);
      if ((e as { code?: string }).code === 'ERR_DATASET_INVALID') {
        io.stderr.write(`enclavekit encrypt: ${(e as Error).message}\n`);
        return 1;
      }
      throw e;
    }
    const tmp = `${values.manifest}.partial`;
    await writeFile(tmp, JSON.stringify(manifest, null, 2) + '\n', { mode: 0o644 });
    await rename(tmp, values.manifest!);
    io.stdout.write(`encrypted ${fields.length} field(s) of ${input} -> ${values.out} with ${Object.keys(manifest.keys).length} data key(s); ${manifest.records} records sealed with ${manifest.policy ? 'the given' : 'the default'} release policy in ${values.manifest}\n`);
    return EXIT_OK;
  } finally {
    kms.destroy();
  }
}
