/**
 * `enclavekit encrypt --in FILE --fields a,b.c --id-field id --dataset ID --key-id KEY
 *   [--endpoint URL] [--region R] [--rotate-after N] [--format ndjson|csv] --out FILE|- --manifest FILE|-
 *   [--policy FILE] [--skip-invalid --rejects FILE] [--json]`
 */
import { createReadStream } from 'node:fs';
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { parseArgs } from 'node:util';
import { ToolkitError, isToolkitError } from '../../attestation/errors.js';
import { validateReleasePolicy, type KeyManifest, type ReleasePolicy } from '../../enclave/protocol/index.js';
import { detectFormat, type DatasetFormat } from '../dataset.js';
import { encryptDataset, KmsDataKeySource, type EncryptReject, type KmsDataKeySourceOptions } from '../encrypt.js';
import { createProgress } from '../progress.js';
import { EXIT_OK, UsageError, fileError, usage, writeJson, type CliIO } from './io.js';

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
  --out FILE           encrypted dataset to write (same format as the input); - for standard output
  --manifest FILE      sealed manifest (JSON) to write; - for standard output
  --policy FILE        the release policy (JSON, see schemas/release-policy.schema.json) to seal
                       into the manifest; without it the strictest default applies (DP required)
  --skip-invalid       skip records that cannot be encrypted (no usable id, a line that is not a
                       JSON object, a CSV row of the wrong width) instead of failing; needs --rejects
  --rejects FILE       where skipped records go, one JSON line each: line, reason, message and the
                       ORIGINAL RECORD IN CLEAR (created mode 0600; treat it like the input file)
  --json               print one JSON object (the summary, or {"ok":false,...}) on standard output

Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) from the environment,
else the AWS SDK's default chain (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE, instance role, ...). The
KMS simulator checks signatures too: use the data owner's credentials it gave you (README, "Creating
the KMS key"). A progress bar is drawn on standard error when it is a terminal.

Exit status: 0 done, 1 KMS denied the key, 2 usage, unreadable or invalid dataset (the line is
named), unknown key, 3 KMS unreachable or failing.
`;

/** A folder that must exist before anything is encrypted (a missing one would fail only at the end). */
async function requireDir(path: string, label: string): Promise<void> {
  const dir = dirname(resolve(path));
  let st;
  try {
    st = await stat(dir);
  } catch (e) {
    throw fileError(e, dir, `${label} folder`);
  }
  if (!st.isDirectory()) throw new UsageError(`${label}: ${dir} is not a folder`, { code: 'ERR_INPUT' });
}

/** The KMS failure in words a data owner can act on, with the key and the endpoint named. */
function kmsFailure(e: ToolkitError, keyId: string, where: string): ToolkitError {
  const name = e.reason ?? 'error';
  const net = (e.cause as { code?: string; name?: string } | undefined)?.code ?? (e.cause as { name?: string } | undefined)?.name;
  let message: string;
  if (e.code === 'ERR_KMS_UNREACHABLE')
    message = `cannot reach KMS at ${where}${net ? ` (${net})` : ''}: is it running (\`enclavekit sim kms\` for the simulator)? Check --endpoint and the network`;
  else if (name === 'NotFoundException')
    message = `KMS key "${keyId}" does not exist at ${where}: create it first (README: "Creating the KMS key") or check --key-id and --region`;
  else if (name === 'CredentialsProviderError')
    message = `no AWS credentials for KMS at ${where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE); for the simulator, the data owner's keys from \`enclavekit sim kms credentials add\``;
  else if (name === 'UnrecognizedClientException' || name === 'InvalidSignatureException')
    message = `KMS at ${where} does not accept these credentials (${name}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)`;
  else if (name === 'AccessDeniedException')
    message = `KMS denied GenerateDataKey on key "${keyId}" at ${where}: its key policy must let these credentials (the data owner) call kms:GenerateDataKey`;
  else message = `KMS GenerateDataKey on key "${keyId}" at ${where} failed: ${name}${e.message.includes(name) ? '' : ` (${e.message})`}`;
  return new ToolkitError(e.code, message, { ...(e.reason !== undefined ? { reason: e.reason } : {}), cause: e });
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = usage(
    () =>
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
          'skip-invalid': { type: 'boolean' },
          rejects: { type: 'string' },
          json: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
      }),
    'encrypt',
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const missing = (['in', 'fields', 'id-field', 'dataset', 'key-id', 'out', 'manifest'] as const).filter((k) => !values[k]);
  if (missing.length > 0) throw new UsageError(`${missing.map((k) => `--${k}`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} required`, { help: 'encrypt' });
  const input = values.in!;
  const outPath = values.out!;
  const manifestPath = values.manifest!;
  const json = values.json === true;
  const toStdout = outPath === '-' || manifestPath === '-';
  if (outPath === '-' && manifestPath === '-') throw new UsageError('--out - and --manifest - cannot both use standard output');
  if (json && toStdout) throw new UsageError('--json prints the summary on standard output: give --out and --manifest files');
  if (values['skip-invalid'] && values.rejects === undefined) throw new UsageError('--skip-invalid needs --rejects FILE (skipped records are kept there, never dropped silently)');
  if (values.rejects !== undefined && !values['skip-invalid']) throw new UsageError('--rejects FILE goes with --skip-invalid');
  if (values.rejects === '-') throw new UsageError('--rejects needs a file: it holds records in clear');
  let format: DatasetFormat | undefined;
  if (values.format !== undefined) {
    if (values.format !== 'ndjson' && values.format !== 'csv') throw new UsageError('--format must be ndjson or csv');
    format = values.format;
  } else format = detectFormat(input);
  if (!format) throw new UsageError(`cannot tell the format of ${input} from its extension; pass --format ndjson or --format csv`);
  const fields = values.fields!.split(',').map((s) => s.trim()).filter(Boolean);
  let rotateAfter: number | undefined;
  if (values['rotate-after'] !== undefined) {
    if (!/^[1-9]\d{0,9}$/.test(values['rotate-after'])) throw new UsageError('--rotate-after must be a positive integer');
    rotateAfter = Number(values['rotate-after']);
  }
  const others = [outPath, manifestPath, values.rejects].filter((p): p is string => p !== undefined && p !== '-').map((p) => resolve(p));
  if (others.includes(resolve(input))) throw new UsageError('--out, --manifest and --rejects must differ from --in');
  if (new Set(others).size !== others.length) throw new UsageError('--out, --manifest and --rejects must be different files');
  const kmsOpts: KmsDataKeySourceOptions = {};
  if (values.endpoint) {
    try {
      new URL(values.endpoint);
    } catch {
      throw new UsageError(`--endpoint must be a URL such as http://127.0.0.1:4566, got ${JSON.stringify(values.endpoint)}`);
    }
    kmsOpts.endpoint = values.endpoint;
  }
  // Keys in the (injectable) environment are used as given; otherwise the SDK's default chain.
  const { AWS_ACCESS_KEY_ID: akid, AWS_SECRET_ACCESS_KEY: secret, AWS_SESSION_TOKEN: token } = io.env;
  if (akid && secret) kmsOpts.credentials = { accessKeyId: akid, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) };
  else if (akid || secret) throw new UsageError('set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (to use the SDK\'s default credential chain)');
  let policy: ReleasePolicy | null = null;
  if (values.policy !== undefined) {
    let text: string;
    try {
      text = await readFile(values.policy, 'utf8');
    } catch (e) {
      throw fileError(e, values.policy, '--policy');
    }
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new UsageError(`--policy: ${values.policy} is not JSON`, { code: 'ERR_INPUT' });
    }
    try {
      policy = validateReleasePolicy(v);
    } catch (e) {
      throw new UsageError(`--policy: ${(e as Error).message}`, { code: 'ERR_INPUT' });
    }
  }
  // Every input and output folder is checked before the first KMS call.
  let totalBytes: number;
  try {
    const st = await stat(input);
    if (!st.isFile()) throw new UsageError(`--in: ${input} is not a file`, { code: 'ERR_INPUT' });
    totalBytes = st.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw fileError(e, input, '--in');
  }
  if (outPath !== '-') await requireDir(outPath, '--out');
  if (manifestPath !== '-') await requireDir(manifestPath, '--manifest');
  if (values.rejects !== undefined) await requireDir(values.rejects, '--rejects');

  const region = values.region ?? io.env.AWS_REGION;
  if (region) kmsOpts.region = region;
  const where = values.endpoint ?? `AWS KMS in ${region ?? 'us-east-1'}`;
  const kms = new KmsDataKeySource(kmsOpts);
  // Human-readable lines go to stderr whenever stdout carries data or JSON.
  const say = (s: string) => (json || toStdout ? io.stderr : io.stdout).write(`${s}\n`);

  let rejects: { handle: FileHandle; partial: string; path: string; count: number } | undefined;
  let bytesRead = 0;
  const progress = createProgress({ stream: io.stderr as NodeJS.WritableStream & { isTTY?: boolean }, totalBytes });
  try {
    if (values.rejects !== undefined) {
      const partial = `${values.rejects}.partial`;
      await rm(partial, { force: true });
      let handle: FileHandle;
      try {
        // Records in clear: readable by the owner only, whatever the umask.
        handle = await open(partial, 'wx', 0o600);
        await handle.chmod(0o600);
      } catch (e) {
        throw fileError(e, partial, '--rejects');
      }
      rejects = { handle, partial, path: values.rejects, count: 0 };
    }
    const source = createReadStream(input, { highWaterMark: 256 * 1024 });
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytesRead += chunk.length;
        cb(null, chunk);
      },
    });
    source.on('error', (e) => counter.destroy(e));
    counter.on('close', () => source.destroy());
    source.pipe(counter);

    let manifest: KeyManifest;
    try {
      manifest = await encryptDataset({
        input: counter,
        format,
        fields,
        idField: values['id-field']!,
        datasetId: values.dataset!,
        keyId: values['key-id']!,
        kms,
        output: outPath === '-' ? (io.stdout as NodeJS.WritableStream as import('node:stream').Writable) : outPath,
        policy,
        ...(rotateAfter ? { rotateAfter } : {}),
        onProgress: (records) => progress.update(records, bytesRead),
        ...(rejects
          ? {
              onReject: async (r: EncryptReject) => {
                const line = { line: r.line, reason: r.reason, message: r.message, ...(r.record !== undefined ? { record: r.record } : { raw: r.raw ?? '' }) };
                await rejects!.handle.write(JSON.stringify(line) + '\n');
                rejects!.count++;
              },
            }
          : {}),
      });
    } catch (e) {
      if (e instanceof TypeError || e instanceof RangeError) throw new UsageError(e.message);
      if (isToolkitError(e) && (e.code === 'ERR_KMS_REQUEST' || e.code === 'ERR_KMS_UNREACHABLE')) throw kmsFailure(e, values['key-id']!, where);
      const errno = e as NodeJS.ErrnoException;
      if (typeof errno?.code === 'string' && typeof errno.syscall === 'string' && typeof errno.path === 'string') throw fileError(e, errno.path);
      throw e;
    } finally {
      progress.done();
    }
    if (rejects) {
      await rejects.handle.close();
      await rename(rejects.partial, rejects.path);
    }
    const text = JSON.stringify(manifest, null, 2) + '\n';
    if (manifestPath === '-') io.stdout.write(text);
    else {
      const tmp = `${manifestPath}.partial`;
      await writeFile(tmp, text, { mode: 0o644 });
      await rename(tmp, manifestPath);
    }
    const keys = Object.keys(manifest.keys).length;
    const rejected = rejects?.count ?? 0;
    if (json) {
      writeJson(io.stdout, {
        ok: true,
        datasetId: manifest.datasetId,
        records: manifest.records,
        rejected,
        fields,
        dataKeys: keys,
        policy: manifest.policy ? 'sealed' : 'default',
        in: input,
        out: outPath,
        manifest: manifestPath,
        rejects: rejects?.path ?? null,
      });
    } else {
      say(
        `encrypted ${fields.length} field(s) (${fields.join(', ')}) of ${input} -> ${outPath === '-' ? 'standard output' : outPath} with ${keys} data key(s); ` +
          `${manifest.records} records sealed with ${manifest.policy ? 'the given' : 'the default'} release policy in ${manifestPath === '-' ? 'standard output' : manifestPath}` +
          (rejects ? `; ${rejected} record(s) rejected${rejected > 0 ? `, written in clear to ${rejects.path}` : ''}` : ''),
      );
    }
    return EXIT_OK;
  } catch (e) {
    if (rejects) {
      await rejects.handle.close().catch(() => undefined);
      await rm(rejects.partial, { force: true });
    }
    throw e;
  } finally {
    kms.destroy();
  }
}
