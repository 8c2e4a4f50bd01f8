/**
 * The KMS simulator's request handling (host/kms-sim/server.ts, sigv4.ts): Host check, SigV4
 * (Authorization parsing, scope, keys, session tokens, body hash, signature, clock skew), target and
 * content type, body size, JSON, every operation's field checks, key resolution, key policies,
 * Recipient documents (verified against a simulator root) and their public keys. Requests go to a
 * real server on loopback, signed with the state folder's credentials. An input is
 * `[X-Amz-Target, body, {host?, content-type?, method?, url?, as?, authorization?, x-amz-date?,
 * x-amz-security-token?, x-amz-content-sha256?}]` as JSON: a string body is sent as is, header values
 * replace the signed ones after signing (`{auth}`, `{date}`, `{port}` stand for the real values), `as:
 * "role"` signs with a role session's temporary credentials. Any other input is sent raw (and signed)
 * as the body of an operation picked by its length. A 500 answer (KMSInternalException: a throw that
 * was not a KMS error) is a finding.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, createHmac, createPrivateKey, createPublicKey, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { createNitroSimCa, issueNitroDocument } from '../../../attestation/sim/nitro.js';
import { startKmsSimulator, type KmsSimulator } from '../../../host/kms-sim/server.js';
import { buildEnclaveKeyPolicy, defaultKeyPolicy } from '../../../host/key-policy.js';
import { file, json } from '../seeds.js';
import type { FuzzTarget } from '../types.js';

const OPS = ['CreateKey', 'DescribeKey', 'ListKeys', 'CreateAlias', 'ListAliases', 'GetKeyPolicy', 'PutKeyPolicy', 'Encrypt', 'Decrypt', 'ReEncrypt', 'GenerateDataKey', 'GenerateDataKeyWithoutPlaintext', 'GenerateRandom'];
const NOW = new Date('2026-06-01T12:00:00Z');
const STATEFUL = new Set(['CreateKey', 'CreateAlias', 'PutKeyPolicy']);

interface Creds {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** `@smithy/signature-v4`'s hash interface over node:crypto. */
class NodeSha256 {
  readonly #secret: Buffer | undefined;
  #h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#secret = secret === undefined ? undefined : typeof secret === 'string' ? Buffer.from(secret) : ArrayBuffer.isView(secret) ? Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength) : Buffer.from(secret);
    this.#h = this.#fresh();
  }
  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', this.#secret);
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    if (typeof data === 'string') this.#h.update(data, 'utf8');
    else if (ArrayBuffer.isView(data)) this.#h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    else this.#h.update(new Uint8Array(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#h.digest());
  }
  reset(): void {
    this.#h = this.#fresh();
  }
}

const AMZ_DATE = NOW.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');

async function signedHeaders(creds: Creds, method: string, path: string, headers: Record<string, string>, body: Uint8Array): Promise<Record<string, string>> {
  const signer = new SignatureV4({ credentials: creds, region: 'us-east-1', service: 'kms', sha256: NodeSha256, applyChecksum: false, uriEscapePath: true });
  const [p, q] = path.split('?', 2) as [string, string | undefined];
  const query = Object.fromEntries(new URLSearchParams(q ?? ''));
  const signed = await signer.sign({ method, protocol: 'http:', hostname: 'localhost', path: p, query, headers: { ...headers, 'x-amz-date': AMZ_DATE }, body }, { signingDate: NOW });
  return Object.fromEntries(Object.entries(signed.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
}

type As = 'root' | 'role' | 'owner';

interface Ctx {
  role: Creds;
  owner: Creds;
  dir: string;
  snapshot: string;
  root: Uint8Array;
  sim: KmsSimulator;
  agent: Agent;
  stateful: number;
  internal: string[];
  seeds: Uint8Array[];
}

async function start(ctx: Pick<Ctx, 'dir' | 'root' | 'internal'>): Promise<KmsSimulator> {
  return startKmsSimulator({
    stateDir: ctx.dir,
    trustSimulator: true,
    simulatorRoots: [ctx.root],
    now: () => NOW,
    maxBodyBytes: 256 * 1024,
    log: (line) => {
      if (line.includes('internal error')) ctx.internal.push(line);
    },
  });
}

interface Answer {
  status: number;
  body: string;
}

const AUTH_HEADERS = ['authorization', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256'];

async function send(ctx: Ctx, target: string | undefined, body: Uint8Array, headers: Record<string, string> = {}, method = 'POST', path = '/', as: As = 'root'): Promise<Answer | undefined> {
  const plain: Record<string, string> = {
    host: `127.0.0.1:${ctx.sim.port}`,
    'content-type': 'application/x-amz-json-1.1',
    ...(target !== undefined ? { 'x-amz-target': target } : {}),
  };
  for (const [k, v] of Object.entries(headers)) if (!AUTH_HEADERS.includes(k)) plain[k] = v;
  let signed: Record<string, string>;
  try {
    signed = await signedHeaders(as === 'role' ? ctx.role : as === 'owner' ? ctx.owner : ctx.sim.credentials, method, path, plain, body);
  } catch {
    return undefined; // not signable (a path or header the signer refuses): not a request
  }
  for (const k of AUTH_HEADERS) {
    const v = headers[k];
    if (v !== undefined) signed[k] = v.replace(/\{auth\}/g, signed.authorization ?? '').replace(/\{date\}/g, AMZ_DATE);
  }
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = request(
        {
          host: '127.0.0.1',
          port: ctx.sim.port,
          method,
          path,
          agent: ctx.agent,
          headers: { ...signed, 'content-length': String(body.length) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
    } catch {
      resolve(undefined); // a header value node:http will not send: not a request
      return;
    }
    req.on('error', () => resolve(undefined)); // the server closed the connection (413, Host refusal)
    req.end(body);
  });
}

async function call(ctx: Ctx, op: string, body: unknown, as: As = 'root'): Promise<Record<string, unknown>> {
  const a = await send(ctx, `TrentService.${op}`, json(body), {}, 'POST', '/', as);
  if (!a || a.status !== 200) throw new Error(`setup: ${op} answered ${a?.status} ${a?.body}`);
  return JSON.parse(a.body) as Record<string, unknown>;
}

const target: FuzzTarget<Ctx> = {
  name: 'kms-server',
  description: 'KMS simulator requests over loopback HTTP: headers, JSON bodies of every operation, key policies, Recipient documents',
  covers: ['host/kms-sim/server.ts', 'host/kms-sim/sigv4.ts', 'host/kms-sim/principals.ts', 'host/kms-sim/blob.ts', 'host/kms-sim/store.ts', 'host/kms-sim/cms.ts', 'host/key-policy.ts'],
  format: 'json',
  maxLen: 64 * 1024,
  timeoutMs: 5000,
  dict: [...OPS.map((o) => `TrentService.${o}`), 'KeyId', 'Plaintext', 'CiphertextBlob', 'EncryptionContext', 'Recipient', 'KeyEncryptionAlgorithm', 'RSAES_OAEP_SHA_256', 'AttestationDocument', 'NumberOfBytes', 'KeySpec', 'AES_256', 'AES_128',
    'GrantTokens', 'DryRun', 'Policy', 'PolicyName', 'default', 'AliasName', 'TargetKeyId', 'alias/fuzz', 'Limit', 'Marker', 'SourceKeyId', 'DestinationKeyId', 'SourceEncryptionContext', 'DestinationEncryptionContext', 'EncryptionAlgorithm', 'SYMMETRIC_DEFAULT', 'Description', 'KeyUsage', 'Origin', 'MultiRegion', 'CustomKeyStoreId'],
  async setup() {
    const dir = mkdtempSync(join(tmpdir(), 'enclavekit-fuzz-kms-'));
    const ca = await createNitroSimCa({ now: NOW });
    const key = createPrivateKey({ key: Buffer.from(file('nitro/kms-cms-enclaver-1.key.pk8.der')), format: 'der', type: 'pkcs8' });
    const spki = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
    const pcr0 = new Uint8Array(48).fill(0xa0);
    const doc = await issueNitroDocument(ca, { moduleId: 'i-0123456789abcdef0-enc0123456789abcdef', timestamp: NOW, pcrs: new Map([[0, pcr0], [1, new Uint8Array(48).fill(1)], [2, new Uint8Array(48).fill(2)]]), publicKey: spki });
    const docNoKey = await issueNitroDocument(ca, { moduleId: 'm', timestamp: NOW, pcrs: new Map([[0, pcr0]]), publicKey: new Uint8Array(91).fill(4) });
    const internal: string[] = [];
    const base = { dir, root: ca.rootDer, internal };
    const sim = await start(base);
    const role = await sim.addPrincipal({ principal: 'arn:aws:iam::111122223333:role/enclave-parent', session: true, now: NOW });
    const owner = await sim.addPrincipal({ principal: 'arn:aws:iam::111122223333:role/data-owner', session: true, now: NOW });
    const ctx: Ctx = { ...base, role, owner, snapshot: '', sim, agent: new Agent({ keepAlive: true, maxSockets: 1 }), stateful: 0, seeds: [] };
    const enclavePolicy = buildEnclaveKeyPolicy({ pcrs: new Map([[0, pcr0]]), keyAdmin: 'arn:aws:iam::111122223333:role/kms-admin', dataOwner: 'arn:aws:iam::111122223333:role/data-owner', role: 'arn:aws:iam::111122223333:role/enclave-parent', account: '111122223333' });
    const k1 = ((await call(ctx, 'CreateKey', { Description: 'fuzz' })).KeyMetadata as { KeyId: string; Arn: string });
    const k2 = ((await call(ctx, 'CreateKey', { Policy: enclavePolicy })).KeyMetadata as { KeyId: string; Arn: string });
    await call(ctx, 'CreateAlias', { AliasName: 'alias/fuzz', TargetKeyId: k1.KeyId });
    const ec = { 'enclavekit:dataset': 'ds', 'enclavekit:key-ref': 'k0' };
    const blob1 = (await call(ctx, 'Encrypt', { KeyId: k1.KeyId, Plaintext: Buffer.alloc(32, 7).toString('base64'), EncryptionContext: ec })).CiphertextBlob as string;
    const blob2 = (await call(ctx, 'GenerateDataKey', { KeyId: k2.Arn, KeySpec: 'AES_256', EncryptionContext: ec }, 'owner')).CiphertextBlob as string;
    await ctx.sim.close();
    ctx.snapshot = `${dir}-snapshot`;
    cpSync(dir, ctx.snapshot, { recursive: true });
    ctx.sim = await start(ctx);
    const recipient = { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: Buffer.from(doc).toString('base64') };
    const reqs: unknown[] = [
      ['TrentService.CreateKey', { Description: 'x', KeyUsage: 'ENCRYPT_DECRYPT', KeySpec: 'SYMMETRIC_DEFAULT', Origin: 'AWS_KMS', Policy: defaultKeyPolicy('111122223333') }],
      ['TrentService.DescribeKey', { KeyId: 'alias/fuzz' }],
      ['TrentService.DescribeKey', { KeyId: k2.Arn, GrantTokens: ['t'] }],
      ['TrentService.ListKeys', { Limit: 1, Marker: '1' }],
      ['TrentService.ListAliases', { KeyId: k1.KeyId }],
      ['TrentService.CreateAlias', { AliasName: 'alias/two', TargetKeyId: k2.KeyId }],
      ['TrentService.GetKeyPolicy', { KeyId: k2.KeyId, PolicyName: 'default' }],
      ['TrentService.PutKeyPolicy', { KeyId: k1.KeyId, PolicyName: 'default', Policy: defaultKeyPolicy('111122223333') }],
      ['TrentService.Encrypt', { KeyId: 'arn:aws:kms:us-east-1:111122223333:alias/fuzz', Plaintext: 'AAEC', EncryptionContext: ec, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' }],
      ['TrentService.Decrypt', { CiphertextBlob: blob1, EncryptionContext: ec }],
      ['TrentService.Decrypt', { CiphertextBlob: blob2, EncryptionContext: ec, KeyId: k2.Arn, Recipient: recipient }],
      ['TrentService.Decrypt', { CiphertextBlob: blob1, EncryptionContext: ec, Recipient: { AttestationDocument: Buffer.from(docNoKey).toString('base64') } }],
      ['TrentService.ReEncrypt', { CiphertextBlob: blob1, SourceEncryptionContext: ec, DestinationKeyId: k1.KeyId, DestinationEncryptionContext: { a: 'b' } }],
      ['TrentService.GenerateDataKey', { KeyId: k2.KeyId, NumberOfBytes: 32, EncryptionContext: ec, Recipient: recipient }],
      ['TrentService.GenerateDataKeyWithoutPlaintext', { KeyId: k1.KeyId, KeySpec: 'AES_128', DryRun: true }],
      ['TrentService.GenerateRandom', { NumberOfBytes: 16, Recipient: recipient }],
      ['TrentService.GenerateRandom', '{"NumberOfBytes": 16}', { host: 'localhost:{port}', 'content-type': 'application/x-amz-json-1.0; charset=utf-8' }],
      ['TrentService.Decrypt', { CiphertextBlob: blob2, EncryptionContext: ec, Recipient: recipient }, { as: 'role' }],
      ['TrentService.GenerateDataKey', { KeyId: k2.Arn, NumberOfBytes: 32, EncryptionContext: ec }, { as: 'owner' }],
      ['TrentService.DescribeKey', { KeyId: k1.Arn }, { authorization: '{auth}', 'x-amz-date': '{date}', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' }],
      ['TrentService.ListKeys', {}, { authorization: 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260601/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=' + '0'.repeat(64) }],
    ];
    ctx.seeds = [...reqs.map(json), json({ NumberOfBytes: 8 })];
    return ctx;
  },
  seeds: (ctx) => ctx.seeds,
  async run(input, ctx) {
    let target: string | undefined;
    let body: Uint8Array = input;
    const headers: Record<string, string> = {};
    let method = 'POST';
    let path = '/';
    let as: As = 'root';
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(input));
    } catch {
      parsed = undefined;
    }
    if (Array.isArray(parsed) && typeof parsed[0] === 'string') {
      target = parsed[0];
      body = typeof parsed[1] === 'string' ? new TextEncoder().encode(parsed[1]) : json(parsed[1] ?? {});
      const h = parsed[2];
      if (h !== null && typeof h === 'object' && !Array.isArray(h)) {
        for (const [k, v] of Object.entries(h as Record<string, unknown>)) {
          if (typeof v !== 'string') continue;
          if (k === 'method') method = v;
          else if (k === 'url') path = v;
          else if (k === 'as') as = v === 'role' || v === 'owner' ? v : 'root';
          else if (k === 'host' || k === 'content-type' || AUTH_HEADERS.includes(k)) headers[k] = v.replace(/\{port\}/g, String(ctx.sim.port));
        }
      }
    } else target = `TrentService.${OPS[input.length % OPS.length]}`;
    ctx.internal.length = 0;
    const a = await send(ctx, target, body, headers, method, path, as);
    if (ctx.internal.length > 0 || a?.status === 500) throw new Error(`KMS simulator internal error (${ctx.internal.join('; ') || a?.body})`);
    // Keep the state small: after many successful changes, go back to the snapshot taken at setup.
    const op = target?.replace(/^TrentService\./, '');
    if (a?.status === 200 && op !== undefined && STATEFUL.has(op) && ++ctx.stateful >= 200) {
      ctx.stateful = 0;
      await ctx.sim.close();
      rmSync(ctx.dir, { recursive: true, force: true });
      cpSync(ctx.snapshot, ctx.dir, { recursive: true });
      ctx.sim = await start(ctx);
      ctx.agent.destroy();
      ctx.agent = new Agent({ keepAlive: true, maxSockets: 1 });
    }
  },
  async teardown(ctx) {
    await ctx.sim.close();
    ctx.agent.destroy();
    rmSync(ctx.dir, { recursive: true, force: true });
    rmSync(ctx.snapshot, { recursive: true, force: true });
  },
};
export default target;
