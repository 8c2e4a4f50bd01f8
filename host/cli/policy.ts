/**
 * `enclavekit policy`: print an AWS KMS key policy that lets only one enclave image decrypt.
 *
 *   enclavekit policy --pcr N=HEX... [--image-sha384 HEX] --key-admin ARN --data-owner ARN --role ARN [--account ID]
 */
import { parseArgs } from 'node:util';
import { buildEnclaveKeyPolicy, pcr3ForRoleArn, pcr4ForInstanceId } from '../key-policy.js';
import { EXIT_OK, UsageError, usage, writeJson, type CliIO } from './io.js';

const HELP = `usage: enclavekit policy --pcr N=HEX... [--eif FILE.eif] [--image-sha384 HEX] --key-admin ARN --data-owner ARN --role ARN [--account ID]

Print a KMS key policy (JSON) for a real AWS key or the simulator, naming three distinct IAM roles or
users (never the account root, an account id or "*"): the key admin manages the key and never uses
it; the data owner creates data keys and encrypts, without a Recipient only; the role may Decrypt and
GenerateDataKey only with a Recipient whose attested PCRs match; any Decrypt or ReEncrypt without
attestation is denied to everyone.

  --pcr N=HEX          expected PCR N (0..31), 96 hex digits (SHA-384); repeatable. Several values of
                       one PCR (--pcr 0=OLD --pcr 0=NEW, a rolling deploy) are alternatives.
  --image-sha384 HEX   expected image digest (kms:RecipientAttestation:ImageSha384, equals PCR0);
                       repeatable like --pcr
  --key-admin ARN      required: IAM role/user that administers the key (key management only)
  --data-owner ARN     required: IAM role/user that creates data keys (no Recipient, no Decrypt)
  --role ARN           required: IAM role of the parent instance whose credentials the enclave uses
  --account ID         12-digit id of the key's account: --key-admin and --data-owner must be in it
  --pcr3-role-arn ARN  add PCR3 for a parent whose instance profile has this IAM role (AWS's formula
                       SHA384(0^48 || ARN)); repeatable, values are alternatives like --pcr 3=
  --pcr4-instance-id ID  add PCR4 for this parent instance id (SHA384(0^48 || ID)); repeatable
  --eif FILE.eif       take PCR0, PCR1, PCR2 (and PCR8 when signed) from an EIF (its CRC and
                       signature must check; see \`enclavekit eif describe\`)
  --json               print {"ok":true,"policy":{...}} (or {"ok":false,...} on a usage error)

Exit status: 0 printed, 2 usage error.
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
        'image-sha384': { type: 'string', multiple: true },
        'key-admin': { type: 'string' },
        'data-owner': { type: 'string' },
        role: { type: 'string' },
        account: { type: 'string' },
        'pcr3-role-arn': { type: 'string', multiple: true },
        'pcr4-instance-id': { type: 'string', multiple: true },
        eif: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
    'policy',
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const pcrs = new Map<number, Uint8Array[]>();
  const add = (list: Uint8Array[], v: Uint8Array): void => {
    if (!list.some((x) => Buffer.from(x).equals(Buffer.from(v)))) list.push(v);
  };
  // --eif FILE.eif: PCR0/1/2 (and PCR8 when signed) of a valid image, as if given with --pcr.
  const fromEif = values.eif !== undefined ? await (await import('./eif.js')).pcrArgsFromEif(values.eif) : [];
  for (const p of [...fromEif, ...(values.pcr ?? [])]) {
    const m = /^(\d{1,2})=(.*)$/.exec(p);
    if (!m) throw new UsageError(`--pcr expects N=HEX, got ${JSON.stringify(p.slice(0, 40))}`);
    const n = Number(m[1]);
    if (n > 31) throw new UsageError('--pcr index must be 0..31');
    const list = pcrs.get(n) ?? [];
    add(list, hex48(m[2]!, `--pcr ${n}`));
    pcrs.set(n, list);
  }
  // PCR3 / PCR4 from the parent's role ARN and instance id, as AWS documents them.
  for (const [flag, index, compute] of [['pcr3-role-arn', 3, pcr3ForRoleArn], ['pcr4-instance-id', 4, pcr4ForInstanceId]] as const) {
    for (const v of values[flag] ?? []) {
      let pcr: Uint8Array;
      try {
        pcr = compute(v);
      } catch (e) {
        throw new UsageError(`--${flag}: ${(e as Error).message}`);
      }
      const list = pcrs.get(index) ?? [];
      add(list, pcr);
      pcrs.set(index, list);
    }
  }
  const images: Uint8Array[] = [];
  for (const v of values['image-sha384'] ?? []) add(images, hex48(v, '--image-sha384'));
  if (pcrs.size === 0 && images.length === 0) throw new UsageError('give at least one --pcr N=HEX or --image-sha384 HEX');
  const pcr0 = pcrs.get(0);
  const sameSet = (a: Uint8Array[], b: Uint8Array[]): boolean => a.length === b.length && a.every((x) => b.some((y) => Buffer.from(x).equals(Buffer.from(y))));
  if (images.length > 0 && pcr0 !== undefined && !sameSet(images, pcr0)) throw new UsageError('--image-sha384 is PCR0 and differs from --pcr 0');
  const missing = (['key-admin', 'data-owner', 'role'] as const).filter((k) => values[k] === undefined);
  if (missing.length > 0)
    throw new UsageError(`${missing.map((k) => `--${k} ARN`).join(', ')} required: the key admin, the data owner and the enclave's parent-instance role, three distinct IAM roles or users`);
  let text: string;
  try {
    text = buildEnclaveKeyPolicy({
      pcrs,
      ...(images.length > 0 ? { imageSha384: images } : {}),
      ...(values.account !== undefined ? { account: values.account } : {}),
      keyAdmin: values['key-admin']!,
      dataOwner: values['data-owner']!,
      role: values.role!,
    });
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
  // --json: the same policy inside one result object, like every other command's --json.
  if (values.json) writeJson(io.stdout, { ok: true, policy: JSON.parse(text) as unknown });
  else io.stdout.write(text + '\n');
  return EXIT_OK;
}
