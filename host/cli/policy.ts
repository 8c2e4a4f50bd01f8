/**
 * `enclavekit policy`: print an AWS KMS key policy that lets only one enclave image decrypt.
 *
 *   enclavekit policy --pcr N=HEX... [--image-sha384 HEX] [--key-admin ARN] [--role ARN] [--account ID]
 */
import { parseArgs } from 'node:util';
import { buildEnclaveKeyPolicy } from '../key-policy.js';
import { EXIT_OK, UsageError, usage, type CliIO } from './io.js';

const HELP = `usage: enclavekit policy --pcr N=HEX... [--image-sha384 HEX] [--key-admin ARN] [--role ARN] [--account ID]

Print a KMS key policy (JSON) for a real AWS key or the simulator: the admin manages the key and
may create data keys; Decrypt and GenerateDataKey with a Recipient succeed only for an enclave whose
attested PCRs match; any Decrypt without attestation, and any ReEncrypt, is denied.

  --pcr N=HEX          expected PCR N (0..31), 96 hex digits (SHA-384); repeatable
  --image-sha384 HEX   expected image digest (kms:RecipientAttestation:ImageSha384, equals PCR0)
  --key-admin ARN      IAM principal that administers the key (default: the account root)
  --role ARN           IAM role of the parent instance that calls KMS (default: the account root)
  --account ID         12-digit account id (default: taken from --key-admin or --role)
`;

function hex48(v: string, label: string): Uint8Array {
  if (!/^[0-9a-fA-F]{96}$/.test(v)) throw new UsageError(`${label} expects 96 hex digits (48 bytes, SHA-384)`);
  return new Uint8Array(Buffer.from(v, 'hex'));
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = usage(() =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        pcr: { type: 'string', multiple: true },
        'image-sha384': { type: 'string' },
        'key-admin': { type: 'string' },
        role: { type: 'string' },
        account: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const pcrs = new Map<number, Uint8Array>();
  for (const p of values.pcr ?? []) {
    const m = /^(\d{1,2})=(.*)$/.exec(p);
    if (!m) throw new UsageError(`--pcr expects N=HEX, got ${JSON.stringify(p.slice(0, 40))}`);
    const n = Number(m[1]);
    if (n > 31) throw new UsageError('--pcr index must be 0..31');
    if (pcrs.has(n)) throw new UsageError(`--pcr ${n} given twice`);
    pcrs.set(n, hex48(m[2]!, `--pcr ${n}`));
  }
  const image = values['image-sha384'] === undefined ? undefined : hex48(values['image-sha384'], '--image-sha384');
  if (pcrs.size === 0 && image === undefined) throw new UsageError('give at least one --pcr N=HEX or --image-sha384 HEX');
  const pcr0 = pcrs.get(0);
  if (image !== undefined && pcr0 !== undefined && !Buffer.from(image).equals(Buffer.from(pcr0)))
    throw new UsageError('--image-sha384 is PCR0 and differs from --pcr 0');
  if (values.account === undefined && values['key-admin'] === undefined && values.role === undefined)
    throw new UsageError('give --account ID (or --key-admin / --role ARNs to take it from)');
  let text: string;
  try {
    text = buildEnclaveKeyPolicy({ pcrs, imageSha384: image, account: values.account, keyAdmin: values['key-admin'], role: values.role });
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
  io.stdout.write(text + '\n');
  return EXIT_OK;
}
