/**
 * A local AWS KMS: a `node:http` server on loopback that speaks KMS's JSON 1.1 protocol, so the
 * unmodified `@aws-sdk/client-kms` talks to it with only `endpoint` set. Keys live in a state folder
 * (see store.ts), key policies are enforced (see ../key-policy.ts), and a request with a `Recipient`
 * gets its attestation document verified and its answer as `CiphertextForRecipient`, never as
 * `Plaintext`, exactly like AWS.
 *
 * Every request is authenticated with AWS Signature Version 4 (see sigv4.ts) against the principals
 * of the state folder (see principals.ts): the account root's key, created on first use and written to
 * `STATE/credentials` for the AWS CLI and SDKs, and any principal added since (IAM users, role
 * sessions with a token and an expiry). Key policies are evaluated for that caller: a statement naming
 * a role applies to that role's sessions only. The Host header is checked before anything else (see
 * `hostAllowed`): a web page that re-points its own DNS name at 127.0.0.1 (DNS rebinding) sends its own
 * name as Host and is refused before its body is read.
 */
import { createPublicKey, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { AttestationError, isToolkitError } from '../../attestation/errors.js';
import { verifyNitro } from '../../attestation/nitro/node.js';
import { isDebugMode } from '../../attestation/nitro/policy.js';
import { ensureSimulatorRootInState } from './sim-root.js';
import { defaultKeyPolicy, evaluateKeyPolicy, parseKeyPolicy, KeyPolicyError, type KeyPolicy } from '../key-policy.js';
import { blobKeyId, openBlob, sealBlob, type EncryptionContext } from './blob.js';
import { buildCiphertextForRecipient } from './cms.js';
import { fault, KmsFault } from './errors.js';
import { KeyStore, type KeyRecord } from './store.js';
import { addSimulatorPrincipal, ensureRootCredentials, PrincipalStore, CREDENTIALS_FILE, type AddPrincipalOptions, type SimCredentials } from './principals.js';
import { DEFAULT_MAX_SKEW_MS, verifySigV4, type Caller } from './sigv4.js';

export const DEFAULT_ACCOUNT_ID = '111122223333';
export const DEFAULT_REGION = 'us-east-1';
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** What a verified attestation document tells the key policy. */
export interface RecipientClaims {
  platform: 'nitro' | 'simulator';
  pcrs: ReadonlyMap<number, Uint8Array>;
  /** DER SubjectPublicKeyInfo from the document's `public_key`. */
  publicKey?: Uint8Array | null | undefined;
}

export interface RecipientVerifyContext {
  now: Date;
  /** Only when the simulator was started with trustSimulator; otherwise empty. */
  simulatorRoots: readonly Uint8Array[];
}

/** Verify a Recipient's attestation document or throw. */
export type RecipientVerifier = (document: Uint8Array, ctx: RecipientVerifyContext) => RecipientClaims | Promise<RecipientClaims>;

export interface KmsSimulatorOptions {
  host?: string;
  port?: number;
  stateDir: string;
  /**
   * Also trust `simulatorRoots` (the simulator CA) for Recipient documents. Off by default. Without
   * `simulatorRoots`, the Nitro simulator root of the state folder is trusted, and created there first
   * (sim-ca.json, as a simulated worker would) when the folder has none.
   */
  trustSimulator?: boolean;
  /** DER roots of the simulator CA; used only with trustSimulator. */
  simulatorRoots?: readonly Uint8Array[];
  now?: () => Date;
  verifyRecipient?: RecipientVerifier;
  accountId?: string;
  region?: string;
  maxBodyBytes?: number;
  /**
   * Extra Host header values to answer, exactly (case-insensitive), e.g. `kms.us-east-1.amazonaws.com`
   * for a TLS front end that forwards to the simulator. Only for callers that put such a front end
   * there themselves: every other Host is refused (see `hostAllowed`).
   */
  allowHosts?: readonly string[];
  /**
   * One line per request: operation, status, error type, and the caller's ARN once authenticated;
   * never a body, a secret, a session token or a signature.
   */
  log?: (line: string) => void;
}

export interface KmsSimulator {
  url: string;
  port: number;
  /**
   * The account root's credentials (`STATE/credentials`, profile `enclavekit-sim`), in the AWS SDK's
   * shape: `new KMSClient({ endpoint: sim.url, region, credentials: sim.credentials })`.
   */
  readonly credentials: SimCredentials;
  /** Path of the shared-credentials file (AWS_SHARED_CREDENTIALS_FILE, with AWS_PROFILE=enclavekit-sim). */
  readonly credentialsFile: string;
  /**
   * Add a principal to the state folder and return its fresh credentials (what `enclavekit sim kms
   * credentials add` does); the expiry of temporary ones counts from the simulator's clock.
   */
  addPrincipal(o: AddPrincipalOptions): Promise<SimCredentials>;
  close(): Promise<void>;
}

type Json = Record<string, unknown>;
type Handler = (body: Json, caller: Caller) => Promise<Json>;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ALIAS_RE = /^alias\/[a-zA-Z0-9/_-]+$/;
const MAX_DOC_BYTES = 262144;
const INVALID_CIPHERTEXT = 'The ciphertext is not valid for this key and encryption context';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

function validation(field: string, constraint: string): KmsFault {
  return fault('ValidationException', `1 validation error detected: Value at '${field}' failed to satisfy constraint: ${constraint}`);
}

function optString(body: Json, field: string, min = 1, max = 2048): string | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw fault('SerializationException', `'${field}' must be a string`);
  if (v.length < min || v.length > max) throw validation(field, `Member must have length between ${min} and ${max}`);
  return v;
}

function reqString(body: Json, field: string, min = 1, max = 2048): string {
  const v = optString(body, field, min, max);
  if (v === undefined) throw validation(field, 'Member must not be null');
  return v;
}

function optInt(body: Json, field: string, min: number, max: number): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw fault('SerializationException', `'${field}' must be an integer`);
  if (v < min || v > max) throw validation(field, `Member must have value between ${min} and ${max}`);
  return v;
}

function optBool(body: Json, field: string): boolean {
  const v = body[field];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw fault('SerializationException', `'${field}' must be a boolean`);
  return v;
}

function decodeB64(v: unknown, field: string, min: number, max: number): Uint8Array {
  if (typeof v !== 'string') throw fault('SerializationException', `'${field}' must be a base64 string`);
  // Bound before decoding: base64 is 4/3 of the bytes.
  if (v.length > Math.ceil(max / 3) * 4 + 4 || !B64_RE.test(v)) throw fault('SerializationException', `'${field}' is not valid base64`);
  const out = new Uint8Array(Buffer.from(v, 'base64'));
  if (out.length < min || out.length > max) throw validation(field, `Member must have length between ${min} and ${max}`);
  return out;
}

function reqBlob(body: Json, field: string, min: number, max: number): Uint8Array {
  if (body[field] === undefined || body[field] === null) throw validation(field, 'Member must not be null');
  return decodeB64(body[field], field, min, max);
}

function encryptionContext(body: Json, field: string): EncryptionContext {
  const v = body[field];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw fault('SerializationException', `'${field}' must be a map of strings`);
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  let n = 0;
  for (const [k, val] of Object.entries(v as Json)) {
    if (typeof val !== 'string') throw fault('SerializationException', `'${field}' must be a map of strings`);
    if (k.length === 0 || val.length === 0) throw validation(field, 'Map keys and values must not be empty');
    n += k.length + val.length;
    out[k] = val;
  }
  if (n > 8192) throw validation(field, 'Encryption context is too large');
  return out;
}

function checkGrantTokens(body: Json): void {
  const v = body.GrantTokens;
  if (v === undefined || v === null) return;
  if (!Array.isArray(v) || v.length > 10 || !v.every((t) => typeof t === 'string')) throw fault('SerializationException', "'GrantTokens' must be a list of up to 10 strings");
}

function checkAlgorithm(body: Json, field: string): void {
  const v = optString(body, field);
  if (v !== undefined && v !== 'SYMMETRIC_DEFAULT')
    throw fault('ValidationException', `${field} ${v} is not supported for a symmetric key`);
}

/** Condition-key values a request brings to the key policy. */
function contextKeys(ctx: EncryptionContext, claims: RecipientClaims | undefined): Map<string, string[]> {
  const m = new Map<string, string[]>();
  const keys = Object.keys(ctx);
  if (keys.length > 0) m.set('kms:EncryptionContextKeys', keys);
  for (const k of keys) m.set(`kms:EncryptionContext:${k}`, [ctx[k]!]);
  if (claims !== undefined) {
    const pcr0 = claims.pcrs.get(0);
    if (pcr0 !== undefined) m.set('kms:RecipientAttestation:ImageSha384', [hex(pcr0)]);
    for (const [i, v] of claims.pcrs) m.set(`kms:RecipientAttestation:PCR${i}`, [hex(v)]);
  }
  return m;
}

interface Recipient {
  claims: RecipientClaims;
  spki: Uint8Array;
  key: KeyObject;
}

/**
 * The real verifier: AWS's pinned root always, the simulator root only when configured. Simulated
 * enclaves run like debug enclaves (their PCRs are not an AWS-built image), so a debug document is
 * accepted only when it chains to the simulator root, never to AWS's: AWS KMS refuses those too.
 */
function defaultVerifier(document: Uint8Array, ctx: RecipientVerifyContext): RecipientClaims {
  const v = verifyNitro(document, { now: ctx.now, simulatorRoots: ctx.simulatorRoots, allowDebug: ctx.simulatorRoots.length > 0 });
  if (v.platform !== 'simulator' && isDebugMode(v.pcrs))
    throw new AttestationError('ERR_ATTESTATION_POLICY', 'a debug-mode enclave document cannot be a Recipient', { reason: 'debug' });
  return { platform: v.platform, pcrs: v.pcrs, publicKey: v.publicKey };
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]']);

/**
 * The Host values the simulator answers: the loopback names and the configured host, each with the
 * bound port (no port only when that port is 80, as clients omit it). Bound to a wildcard address
 * (0.0.0.0 / ::), any IP literal with the port is accepted too: DNS rebinding needs a DNS name, and a
 * literal cannot be re-pointed. Never any other name.
 */
export function hostAllowed(hostHeader: string | undefined, configuredHost: string, port: number): boolean {
  if (typeof hostHeader !== 'string' || hostHeader.length === 0 || hostHeader.length > 300) return false;
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+)(?::(\d{1,5}))?$/.exec(hostHeader);
  if (!m) return false;
  if ((m[2] === undefined ? 80 : Number(m[2])) !== port) return false;
  const name = m[1]!.toLowerCase();
  const bracket = (h: string): string => (isIP(h) === 6 ? `[${h}]` : h);
  const configured = bracket(configuredHost.toLowerCase());
  const names = new Set(['127.0.0.1', 'localhost', '[::1]']);
  if (!WILDCARD_HOSTS.has(configured)) return names.has(name) || name === configured;
  const literal = name.startsWith('[') ? name.slice(1, -1) : name;
  return names.has(name) || (isIP(literal) !== 0 && (isIP(literal) === 6) === name.startsWith('['));
}

export async function startKmsSimulator(options: KmsSimulatorOptions): Promise<KmsSimulator> {
  const host = options.host ?? '127.0.0.1';
  const account = options.accountId ?? DEFAULT_ACCOUNT_ID;
  const region = options.region ?? DEFAULT_REGION;
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const now = options.now ?? (() => new Date());
  const verify = options.verifyRecipient ?? defaultVerifier;
  const simulatorRoots = options.trustSimulator ? [...(options.simulatorRoots ?? [])] : [];
  if (!/^\d{12}$/.test(account)) throw new TypeError('"accountId" expected 12 digits');
  if (typeof options.stateDir !== 'string' || options.stateDir.length === 0) throw new TypeError('"stateDir" expected a non-empty path');
  if (options.trustSimulator && simulatorRoots.length === 0) simulatorRoots.push((await ensureSimulatorRootInState(options.stateDir, now())).rootDer);
  const log = options.log ?? (() => undefined);
  const extraHosts = new Set((options.allowHosts ?? []).map((h) => h.toLowerCase()));
  const store = await KeyStore.open(options.stateDir);
  const rootCredentials = await ensureRootCredentials(options.stateDir, { accountId: account, now: now() });
  const principals = new PrincipalStore(options.stateDir);
  const policies = new Map<string, { text: string; parsed: KeyPolicy }>();
  const keyArn = (id: string): string => `arn:aws:kms:${region}:${account}:key/${id}`;
  const aliasArn = (name: string): string => `arn:aws:kms:${region}:${account}:${name}`;

  function policyOf(k: KeyRecord): KeyPolicy {
    const c = policies.get(k.keyId);
    if (c !== undefined && c.text === k.policy) return c.parsed;
    const parsed = parseKeyPolicy(k.policy);
    policies.set(k.keyId, { text: k.policy, parsed });
    return parsed;
  }

  function authorize(k: KeyRecord, action: string, keys: ReadonlyMap<string, readonly string[]>, c: Caller): void {
    const d = evaluateKeyPolicy(policyOf(k), { action, resource: k.arn, account: c.account, principal: c.principal, keys });
    if (d === 'allow') return;
    const why = d === 'explicit-deny' ? 'with an explicit deny in a resource-based policy' : `because no resource-based policy allows the ${action} action`;
    throw fault('AccessDeniedException', `User: ${c.principal} is not authorized to perform: ${action} on resource: ${k.arn} ${why}`);
  }

  /**
   * Operations on the account itself (CreateKey, ListKeys, ListAliases) need no key policy: IAM
   * policies, which the simulator does not have, would decide. Only principals of the simulator's
   * account may call them, since the simulator holds no other account's keys.
   */
  function sameAccount(c: Caller, action: string): void {
    if (c.account !== account)
      throw fault('AccessDeniedException', `User: ${c.principal} is not authorized to perform: ${action} (this simulator holds the keys of account ${account} only)`);
  }

  /**
   * AWS's four spellings: key id, key ARN, alias name, alias ARN (ARNs only of this account and region).
   * A caller of another account must name the key by ARN, as in AWS (a bare id or alias name is looked up
   * in the caller's own account).
   */
  function resolveKey(c: Caller, id: string, allowAlias = true): KeyRecord {
    const notFound = (): KmsFault => fault('NotFoundException', `Invalid keyId '${id.slice(0, 300)}'`);
    if (c.account !== account && !id.startsWith('arn:')) throw notFound();
    let keyId: string | undefined;
    let alias: string | undefined;
    const arn = /^arn:aws:kms:([^:]+):(\d{12}):(key|alias)\/(.+)$/.exec(id);
    if (arn) {
      if (arn[1] !== region || arn[2] !== account) throw notFound();
      if (arn[3] === 'key') keyId = arn[4];
      else alias = `alias/${arn[4]}`;
    } else if (id.startsWith('alias/')) alias = id;
    else keyId = id;
    if (alias !== undefined) {
      if (!allowAlias) throw notFound();
      keyId = store.aliases.get(alias)?.targetKeyId;
      if (keyId === undefined) throw fault('NotFoundException', `Alias ${aliasArn(alias)} is not found.`);
    }
    if (keyId === undefined || !UUID_RE.test(keyId)) throw notFound();
    const k = store.keys.get(keyId);
    if (k === undefined) throw fault('NotFoundException', `Key '${keyArn(keyId)}' does not exist`);
    return k;
  }

  async function recipient(body: Json): Promise<Recipient | undefined> {
    const r = body.Recipient;
    if (r === undefined || r === null) return undefined;
    if (typeof r !== 'object' || Array.isArray(r)) throw fault('SerializationException', "'Recipient' must be an object");
    const rj = r as Json;
    const alg = optString(rj, 'KeyEncryptionAlgorithm');
    if (alg !== undefined && alg !== 'RSAES_OAEP_SHA_256') throw validation('recipient.keyEncryptionAlgorithm', 'Member must satisfy enum value set: [RSAES_OAEP_SHA_256]');
    const doc = reqBlob(rj, 'AttestationDocument', 1, MAX_DOC_BYTES);
    let claims: RecipientClaims;
    try {
      claims = await verify(doc, { now: now(), simulatorRoots });
    } catch (e) {
      const code = isToolkitError(e) ? e.code : 'verification failed';
      throw fault('ValidationException', `The attestation document in the Recipient is not valid (${code})`);
    }
    const spki = claims.publicKey;
    if (!(spki instanceof Uint8Array) || spki.length === 0) throw fault('ValidationException', 'The attestation document has no public_key');
    let key: KeyObject;
    try {
      key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    } catch {
      throw fault('ValidationException', 'The attestation document public_key is not a DER SubjectPublicKeyInfo');
    }
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (key.asymmetricKeyType !== 'rsa' || bits < 2048 || bits > 4096)
      throw fault('ValidationException', 'The attestation document public_key must be an RSA key of 2048 to 4096 bits');
    return { claims, spki, key };
  }

  function dryRun(body: Json): void {
    if (optBool(body, 'DryRun')) throw fault('DryRunOperationException', 'The request would have succeeded, but the DryRun option is set.');
  }

  function keyMetadata(k: KeyRecord): Json {
    return {
      AWSAccountId: account,
      KeyId: k.keyId,
      Arn: k.arn,
      CreationDate: k.creationDate,
      Enabled: true,
      Description: k.description,
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeyState: 'Enabled',
      Origin: 'AWS_KMS',
      KeyManager: 'CUSTOMER',
      CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
      KeySpec: 'SYMMETRIC_DEFAULT',
      EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
      MultiRegion: false,
    };
  }

  function checkPolicyText(text: string): void {
    try {
      parseKeyPolicy(text);
    } catch (e) {
      if (e instanceof KeyPolicyError) throw fault('MalformedPolicyDocumentException', e.message);
      throw e;
    }
  }

  function listPage<T>(items: T[], body: Json): { page: T[]; next: string | undefined } {
    const limit = optInt(body, 'Limit', 1, 1000) ?? 100;
    const marker = optString(body, 'Marker', 1, 1024);
    let start = 0;
    if (marker !== undefined) {
      if (!/^\d{1,9}$/.test(marker) || Number(marker) > items.length) throw fault('InvalidMarkerException', 'Invalid marker');
      start = Number(marker);
    }
    const page = items.slice(start, start + limit);
    return { page, next: start + limit < items.length ? String(start + limit) : undefined };
  }

  function dataKeyLength(body: Json): number {
    const spec = optString(body, 'KeySpec');
    const n = optInt(body, 'NumberOfBytes', 1, 1024);
    if (spec !== undefined && n !== undefined) throw fault('ValidationException', 'KeySpec and NumberOfBytes are mutually exclusive');
    if (spec === undefined && n === undefined) throw fault('ValidationException', 'Either KeySpec or NumberOfBytes is required');
    if (spec !== undefined && spec !== 'AES_256' && spec !== 'AES_128') throw validation('keySpec', 'Member must satisfy enum value set: [AES_256, AES_128]');
    return n ?? (spec === 'AES_128' ? 16 : 32);
  }

  const ops: Record<string, Handler> = {
    async CreateKey(body, c) {
      sameAccount(c, 'kms:CreateKey');
      const policy = optString(body, 'Policy', 1, 32768) ?? defaultKeyPolicy(account);
      const description = optString(body, 'Description', 0, 8192) ?? '';
      const usage = optString(body, 'KeyUsage');
      if (usage !== undefined && usage !== 'ENCRYPT_DECRYPT') throw fault('UnsupportedOperationException', `KeyUsage ${usage} is not supported by the simulator`);
      for (const f of ['KeySpec', 'CustomerMasterKeySpec']) {
        const s = optString(body, f);
        if (s !== undefined && s !== 'SYMMETRIC_DEFAULT') throw fault('UnsupportedOperationException', `${f} ${s} is not supported by the simulator`);
      }
      const origin = optString(body, 'Origin');
      if (origin !== undefined && origin !== 'AWS_KMS') throw fault('UnsupportedOperationException', `Origin ${origin} is not supported by the simulator`);
      if (optBool(body, 'MultiRegion')) throw fault('UnsupportedOperationException', 'multi-Region keys are not supported by the simulator');
      optBool(body, 'BypassPolicyLockoutSafetyCheck');
      checkPolicyText(policy);
      const keyId = randomUUID();
      const rec: KeyRecord = {
        keyId,
        arn: keyArn(keyId),
        creationDate: Math.floor(now().getTime() / 1000),
        description,
        policy,
        material: new Uint8Array(randomBytes(32)),
      };
      await store.update(() => {
        store.keys.set(keyId, rec);
        return { result: undefined, undo: () => store.keys.delete(keyId) };
      });
      return { KeyMetadata: keyMetadata(rec) };
    },

    async DescribeKey(body, c) {
      checkGrantTokens(body);
      const k = resolveKey(c, reqString(body, 'KeyId'));
      authorize(k, 'kms:DescribeKey', new Map(), c);
      return { KeyMetadata: keyMetadata(k) };
    },

    async ListKeys(body, c) {
      sameAccount(c, 'kms:ListKeys');
      const { page, next } = listPage([...store.keys.values()], body);
      return { Keys: page.map((k) => ({ KeyId: k.keyId, KeyArn: k.arn })), Truncated: next !== undefined, ...(next ? { NextMarker: next } : {}) };
    },

    async CreateAlias(body, c) {
      const name = reqString(body, 'AliasName', 1, 256);
      if (!ALIAS_RE.test(name)) throw fault('ValidationException', `Alias must start with the prefix "alias/" and use only letters, digits, /, _ and -`);
      if (name.startsWith('alias/aws/')) throw fault('InvalidAliasNameException', 'Aliases starting with alias/aws/ are reserved for AWS managed keys');
      const k = resolveKey(c, reqString(body, 'TargetKeyId'), false);
      authorize(k, 'kms:CreateAlias', new Map(), c);
      await store.update(() => {
        if (store.aliases.has(name)) throw fault('AlreadyExistsException', `An alias with the name ${aliasArn(name)} already exists`);
        store.aliases.set(name, { name, targetKeyId: k.keyId, creationDate: Math.floor(now().getTime() / 1000) });
        return { result: undefined, undo: () => store.aliases.delete(name) };
      });
      return {};
    },

    async ListAliases(body, c) {
      sameAccount(c, 'kms:ListAliases');
      const keyId = optString(body, 'KeyId');
      const target = keyId === undefined ? undefined : resolveKey(c, keyId, false).keyId;
      const all = [...store.aliases.values()].filter((a) => target === undefined || a.targetKeyId === target);
      const { page, next } = listPage(all, body);
      return {
        Aliases: page.map((a) => ({ AliasName: a.name, AliasArn: aliasArn(a.name), TargetKeyId: a.targetKeyId, CreationDate: a.creationDate })),
        Truncated: next !== undefined,
        ...(next ? { NextMarker: next } : {}),
      };
    },

    async GetKeyPolicy(body, c) {
      const k = resolveKey(c, reqString(body, 'KeyId'), false);
      const name = optString(body, 'PolicyName', 1, 128) ?? 'default';
      if (name !== 'default') throw fault('NotFoundException', `No such policy exists: ${name}`);
      authorize(k, 'kms:GetKeyPolicy', new Map(), c);
      return { Policy: k.policy, PolicyName: 'default' };
    },

    async PutKeyPolicy(body, c) {
      const k = resolveKey(c, reqString(body, 'KeyId'), false);
      const name = optString(body, 'PolicyName', 1, 128) ?? 'default';
      if (name !== 'default') throw fault('NotFoundException', `No such policy exists: ${name}`);
      const policy = reqString(body, 'Policy', 1, 32768);
      optBool(body, 'BypassPolicyLockoutSafetyCheck');
      // Who may change the policy first: a caller who may not learns nothing about the new text.
      authorize(k, 'kms:PutKeyPolicy', new Map(), c);
      checkPolicyText(policy);
      await store.update(() => {
        const old = k.policy;
        k.policy = policy;
        return { result: undefined, undo: () => (k.policy = old) };
      });
      return {};
    },

    async Encrypt(body, c) {
      checkGrantTokens(body);
      const k = resolveKey(c, reqString(body, 'KeyId'));
      const plaintext = reqBlob(body, 'Plaintext', 1, 4096);
      const ctx = encryptionContext(body, 'EncryptionContext');
      checkAlgorithm(body, 'EncryptionAlgorithm');
      authorize(k, 'kms:Encrypt', contextKeys(ctx, undefined), c);
      dryRun(body);
      return { CiphertextBlob: b64(sealBlob(k.keyId, k.material, plaintext, ctx)), KeyId: k.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
    },

    async Decrypt(body, c) {
      checkGrantTokens(body);
      const blob = reqBlob(body, 'CiphertextBlob', 1, 6144);
      const ctx = encryptionContext(body, 'EncryptionContext');
      checkAlgorithm(body, 'EncryptionAlgorithm');
      const keyIdArg = optString(body, 'KeyId');
      const blobId = blobKeyId(blob);
      if (blobId === undefined) throw fault('InvalidCiphertextException', INVALID_CIPHERTEXT);
      const k = store.keys.get(blobId);
      if (keyIdArg !== undefined && resolveKey(c, keyIdArg).keyId !== blobId)
        throw fault('IncorrectKeyException', 'The key ID in the request does not identify a CMK that can perform this operation.');
      if (k === undefined) throw fault('InvalidCiphertextException', INVALID_CIPHERTEXT);
      const rcpt = await recipient(body);
      authorize(k, 'kms:Decrypt', contextKeys(ctx, rcpt?.claims), c);
      const plaintext = openBlob(blob, k.material, ctx);
      if (plaintext === undefined) throw fault('InvalidCiphertextException', INVALID_CIPHERTEXT);
      dryRun(body);
      const base = { KeyId: k.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
      if (rcpt) return { ...base, CiphertextForRecipient: b64(buildCiphertextForRecipient(plaintext, rcpt.spki, rcpt.key)) };
      return { ...base, Plaintext: b64(plaintext) };
    },

    async ReEncrypt(body, c) {
      checkGrantTokens(body);
      const blob = reqBlob(body, 'CiphertextBlob', 1, 6144);
      const srcCtx = encryptionContext(body, 'SourceEncryptionContext');
      const dstCtx = encryptionContext(body, 'DestinationEncryptionContext');
      checkAlgorithm(body, 'SourceEncryptionAlgorithm');
      checkAlgorithm(body, 'DestinationEncryptionAlgorithm');
      const dst = resolveKey(c, reqString(body, 'DestinationKeyId'));
      const srcArg = optString(body, 'SourceKeyId');
      const blobId = blobKeyId(blob);
      if (blobId === undefined) throw fault('InvalidCiphertextException', INVALID_CIPHERTEXT);
      if (srcArg !== undefined && resolveKey(c, srcArg).keyId !== blobId)
        throw fault('IncorrectKeyException', 'The key ID in the request does not identify a CMK that can perform this operation.');
      const src = store.keys.get(blobId);
      if (src === undefined) throw fault('InvalidCiphertextException', INVALID_CIPHERTEXT);
      authorize(src, 'kms:ReEncryptFrom', contextKeys(srcCtx, undefined), c);
      authorize(dst, 'kms:ReEncryptTo', contextKeys(dstCtx, undefined), c);
      const plaintext = openBlob(blob, src.material, srcCtx);
      if (plaintext === undefined) throw fault('InvalidCiphertextException', INVALID_CIPHERTEXT);
      try {
        dryRun(body);
        return {
          CiphertextBlob: b64(sealBlob(dst.keyId, dst.material, plaintext, dstCtx)),
          SourceKeyId: src.arn,
          KeyId: dst.arn,
          SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
          DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
        };
      } finally {
        plaintext.fill(0);
      }
    },

    async GenerateDataKey(body, c) {
      checkGrantTokens(body);
      const k = resolveKey(c, reqString(body, 'KeyId'));
      const n = dataKeyLength(body);
      const ctx = encryptionContext(body, 'EncryptionContext');
      const rcpt = await recipient(body);
      authorize(k, 'kms:GenerateDataKey', contextKeys(ctx, rcpt?.claims), c);
      dryRun(body);
      const dataKey = new Uint8Array(randomBytes(n));
      try {
        const base = { KeyId: k.arn, CiphertextBlob: b64(sealBlob(k.keyId, k.material, dataKey, ctx)) };
        if (rcpt) return { ...base, CiphertextForRecipient: b64(buildCiphertextForRecipient(dataKey, rcpt.spki, rcpt.key)) };
        return { ...base, Plaintext: b64(dataKey) };
      } finally {
        dataKey.fill(0);
      }
    },

    async GenerateDataKeyWithoutPlaintext(body, c) {
      checkGrantTokens(body);
      const k = resolveKey(c, reqString(body, 'KeyId'));
      const n = dataKeyLength(body);
      const ctx = encryptionContext(body, 'EncryptionContext');
      authorize(k, 'kms:GenerateDataKeyWithoutPlaintext', contextKeys(ctx, undefined), c);
      dryRun(body);
      const dataKey = new Uint8Array(randomBytes(n));
      try {
        return { KeyId: k.arn, CiphertextBlob: b64(sealBlob(k.keyId, k.material, dataKey, ctx)) };
      } finally {
        dataKey.fill(0);
      }
    },

    async GenerateRandom(body, c) {
      const n = optInt(body, 'NumberOfBytes', 1, 1024);
      if (n === undefined) throw validation('numberOfBytes', 'Member must not be null');
      if (optString(body, 'CustomKeyStoreId') !== undefined) throw fault('UnsupportedOperationException', 'custom key stores are not supported by the simulator');
      const rcpt = await recipient(body);
      const bytes = new Uint8Array(randomBytes(n));
      if (rcpt) return { CiphertextForRecipient: b64(buildCiphertextForRecipient(bytes, rcpt.spki, rcpt.key)) };
      return { Plaintext: b64(bytes) };
    },
  };

  function send(res: ServerResponse, status: number, body: Json, extra: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': randomUUID(),
      // The simulator's clock, as AWS sends its own: SDKs correct their clock skew from it.
      date: now().toUTCString(),
      ...extra,
    });
    res.end(text);
  }

  function sendFault(res: ServerResponse, f: KmsFault, close = false): void {
    send(res, f.status, { __type: f.type, message: f.message }, { 'x-amzn-errortype': f.type, ...(close ? { connection: 'close' } : {}) });
  }

  function readBody(req: IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const declared = Number(req.headers['content-length'] ?? '0');
      if (declared > maxBody) {
        reject(fault('SerializationException', `Request body exceeds ${maxBody} bytes`, 413));
        return;
      }
      const chunks: Buffer[] = [];
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        if (n > maxBody) {
          req.removeAllListeners('data');
          req.pause();
          reject(fault('SerializationException', `Request body exceeds ${maxBody} bytes`, 413));
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  let boundPort = 0;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let op = '-';
    const hostHeader = req.headers.host;
    if (!hostAllowed(hostHeader, host, boundPort) && !(typeof hostHeader === 'string' && extraHosts.has(hostHeader.toLowerCase()))) {
      // Refused before the body is read. 403 (not KMS's usual 400) because the request is refused
      // for where it is addressed, not for its content or a key policy; AccessDeniedException because
      // that is the name AWS clients already treat as "not allowed". The Host value is not logged: it
      // is the caller's text.
      sendFault(res, fault('AccessDeniedException', 'The Host header does not name this KMS simulator (expected its loopback address and port)', 403), true);
      res.on('finish', () => req.socket.destroy());
      log('- 403 AccessDeniedException host');
      return;
    }
    let who = '';
    try {
      const target = req.headers['x-amz-target'];
      const m = typeof target === 'string' ? /^TrentService\.([A-Za-z]{1,64})$/.exec(target) : null;
      const handler = m && Object.hasOwn(ops, m[1]!) ? ops[m[1]!] : undefined;
      op = m?.[1] ?? '-';
      const ct = req.headers['content-type'] ?? '';
      // The body is part of what is signed, so it is read (bounded) before anything is answered.
      const raw = await readBody(req);
      const caller = await verifySigV4(
        { method: req.method ?? '', url: req.url ?? '', headers: req.headersDistinct, body: raw },
        { region, service: 'kms', now: now(), maxSkewMs: DEFAULT_MAX_SKEW_MS, lookup: (id) => principals.lookup(id) },
      );
      who = ` ${caller.principal}`;
      if (req.method !== 'POST' || req.url !== '/') throw fault('UnknownOperationException', 'Only POST / is supported', 404);
      if (!handler) throw fault('UnknownOperationException', '');
      if (!/^application\/x-amz-json-1\.[01](?:\s*;.*)?$/i.test(ct)) throw fault('SerializationException', 'content-type must be application/x-amz-json-1.1');
      let body: unknown;
      try {
        body = raw.length === 0 ? {} : JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
      } catch {
        throw fault('SerializationException', 'Start of structure or map found where not expected, or malformed JSON');
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw fault('SerializationException', 'The request body must be a JSON object');
      const out = await handler(body as Json, caller);
      send(res, 200, out);
      log(`${op} 200${who}`);
    } catch (e) {
      let f: KmsFault;
      if (e instanceof KmsFault) f = e;
      else {
        // Only the error code goes to the log: a message might quote request data.
        f = fault('KMSInternalException', 'The request was rejected because an internal exception occurred.');
        log(`${op} internal error ${isToolkitError(e) ? e.code : (e as Error)?.name ?? 'unknown'}`);
      }
      const close = f.status === 413;
      if (!res.headersSent) sendFault(res, f, close);
      if (close) res.on('finish', () => req.socket.destroy());
      log(`${op} ${f.status} ${f.type}${who}`);
    }
  }

  // requireHostHeader off: a request without Host gets our own JSON refusal (hostAllowed) rather than
  // Node's bare 400.
  const server: Server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000, maxHeaderSize: 16 * 1024, requireHostHeader: false }, (req, res) => {
    void handle(req, res);
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  boundPort = addr.port;
  const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${addr.port}`,
    port: addr.port,
    get credentials() {
      return { ...rootCredentials };
    },
    credentialsFile: join(options.stateDir, CREDENTIALS_FILE),
    addPrincipal: (o) => addSimulatorPrincipal(options.stateDir, { ...o, now: o.now ?? now() }),
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => store.flush());
      return closing;
    },
  };
}
