/**
 * The KMS simulator's principals: who may sign requests, with which access key, as whom.
 *
 *   STATE/                          0700
 *     credentials                   0600  AWS shared-credentials file, profile `enclavekit-sim`: the
 *                                         account root's access key, created on first use
 *     kms-principals/               0700
 *       <AccessKeyId>.json          0600  one per access key: secret, session token and expiry
 *                                         (temporary credentials only), and the caller ARN
 *
 * One file per access key, created with O_EXCL and never rewritten: adding a principal (from the CLI
 * while a simulator runs, or from several processes) needs no lock, and the server sees a new key on
 * its first request. The root's `credentials` file is published like the simulator CA (temporary file,
 * fsync, hard link): two processes opening a fresh folder agree on one root key.
 *
 * Secrets are stored in the clear (the simulator must recompute HMACs with them), so the folder is
 * private like the rest of the state: files readable by anyone else are refused. Nothing here logs.
 *
 * Identities follow IAM: the account root (`arn:aws:iam::ACCT:root`) and IAM users have long-term
 * keys (`AKIA...`); a role has none, only sessions (`session: true`: `ASIA...` keys, a session token and
 * an expiry, whose caller ARN is `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`, as AssumeRole gives).
 * A user or the root may have temporary credentials too (as GetSessionToken gives); their caller ARN
 * is their own.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { lstat, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ensurePrivateDir, publishOnce, stateError } from './state-files.js';
import { ToolkitError } from '../../attestation/errors.js';

export const CREDENTIALS_FILE = 'credentials';
export const CREDENTIALS_PROFILE = 'enclavekit-sim';
export const PRINCIPALS_DIR = 'kms-principals';
/** AssumeRole's default session length. */
export const DEFAULT_SESSION_SECONDS = 3600;
/** GetSessionToken's maximum (36 hours); AssumeRole allows at most 12. */
export const MAX_SESSION_SECONDS = 129_600;
export const DEFAULT_SESSION_NAME = 'enclavekit-sim';

const FORMAT = 'enclavekit-kms-sim-principal';
const MAX_FILE = 64 * 1024;
const ACCESS_KEY_RE = /^(AKIA|ASIA)[A-Z2-7]{16}$/;
const NAME = '[\\w+=,.@-]{1,128}';
const ROOT_RE = /^arn:aws:iam::(\d{12}):root$/;
const IAM_RE = new RegExp(`^arn:aws:iam::(\\d{12}):(user|role)/(?:${NAME}/)*(${NAME})$`);
const SESSION_RE = new RegExp(`^arn:aws:sts::(\\d{12}):assumed-role/(${NAME})/([\\w+=,.@-]{2,64})$`);
const SESSION_NAME_RE = /^[\w+=,.@-]{2,64}$/;

/**
 * Credentials of one principal, in the AWS SDK's shape (`accessKeyId`, `secretAccessKey`,
 * `sessionToken`, `expiration`): pass the object as a client's `credentials`.
 */
export interface SimCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Temporary credentials only. */
  readonly sessionToken?: string;
  /** Temporary credentials only. */
  readonly expiration?: Date;
  /** The caller ARN the simulator sees for these keys (what a key policy's `Principal` is matched against). */
  readonly principal: string;
  /** The caller's account id. */
  readonly account: string;
}

export interface AddPrincipalOptions {
  /**
   * `arn:aws:iam::ACCT:root`, `arn:aws:iam::ACCT:user/NAME`, `arn:aws:iam::ACCT:role/NAME` (with
   * `session`), or `arn:aws:sts::ACCT:assumed-role/NAME/SESSION` (with `session`). Paths allowed.
   */
  principal: string;
  /** Temporary credentials: an `ASIA` key, a session token and an expiry. Required for a role. */
  session?: boolean;
  /** Session name for a role (default `enclavekit-sim`): the caller is `...:assumed-role/ROLE/NAME`. */
  sessionName?: string;
  /** Lifetime of temporary credentials, 1..129600 seconds (default 3600). Only with `session`. */
  expiresInSeconds?: number;
  /** The clock for the expiry (default: now). */
  now?: Date;
}

/** What the server knows about one access key. */
export interface StoredPrincipal extends SimCredentials {
  readonly created: Date;
}

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === code;
}

/** A private regular file's text, or undefined when it does not exist. */
async function readPrivate(path: string): Promise<string | undefined> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return undefined;
    throw stateError(`cannot read ${path}`, 'read', e);
  }
  if (!st.isFile()) throw stateError(`${path} is not a regular file`, 'not_file');
  if ((st.mode & 0o077) !== 0) throw stateError(`${path} holds secrets but is accessible to other users (it must be mode 0600)`, 'permissions');
  if (st.size > MAX_FILE) throw stateError(`${path} is too large`, 'too_large');
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return undefined;
    throw stateError(`cannot read ${path}`, 'read', e);
  }
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function newAccessKeyId(temporary: boolean): string {
  const r = randomBytes(16);
  let s = temporary ? 'ASIA' : 'AKIA';
  for (const b of r) s += BASE32[b & 31];
  return s;
}

/** The identity a principal option names, and whether it may have long-term keys. */
function resolveIdentity(o: AddPrincipalOptions): { principal: string; account: string } {
  if (typeof o?.principal !== 'string' || o.principal.length > 2048) throw new TypeError('"principal" expected an IAM ARN string (at most 2048 characters)');
  const arn = o.principal;
  const session = o.session === true;
  if (o.sessionName !== undefined && (typeof o.sessionName !== 'string' || !SESSION_NAME_RE.test(o.sessionName)))
    throw new TypeError('"sessionName" expected 2..64 characters of [A-Za-z0-9_+=,.@-]');
  let m = ROOT_RE.exec(arn);
  if (m) return { principal: arn, account: m[1]! };
  m = IAM_RE.exec(arn);
  if (m && m[2] === 'user') return { principal: arn, account: m[1]! };
  if (m && m[2] === 'role') {
    if (!session) throw new TypeError(`"principal": a role has no long-term access keys; use session: true (--session) for an assumed-role session of ${arn}`);
    return { principal: `arn:aws:sts::${m[1]}:assumed-role/${m[3]}/${o.sessionName ?? DEFAULT_SESSION_NAME}`, account: m[1]! };
  }
  m = SESSION_RE.exec(arn);
  if (m) {
    if (!session) throw new TypeError('"principal": an assumed-role session has only temporary credentials; use session: true (--session)');
    if (o.sessionName !== undefined) throw new TypeError('"sessionName": the assumed-role ARN already names its session');
    return { principal: arn, account: m[1]! };
  }
  throw new TypeError(
    `"principal" expected arn:aws:iam::ACCOUNT:root, arn:aws:iam::ACCOUNT:user/NAME, arn:aws:iam::ACCOUNT:role/NAME or arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION, got ${JSON.stringify(arn.slice(0, 200))}`,
  );
}

function serialize(p: StoredPrincipal): string {
  return (
    JSON.stringify(
      {
        format: FORMAT,
        version: 1,
        accessKeyId: p.accessKeyId,
        secretAccessKey: p.secretAccessKey,
        ...(p.sessionToken !== undefined ? { sessionToken: p.sessionToken } : {}),
        ...(p.expiration !== undefined ? { expiration: p.expiration.toISOString() } : {}),
        principal: p.principal,
        account: p.account,
        created: p.created.toISOString(),
      },
      null,
      1,
    ) + '\n'
  );
}

function parse(text: string, path: string, accessKeyId: string): StoredPrincipal {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw stateError(`${path} is not valid JSON`, 'corrupt', e);
  }
  const o = (typeof j === 'object' && j !== null ? j : {}) as Record<string, unknown>;
  const str = (k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
  const date = (k: string): Date | undefined => {
    const s = str(k);
    const d = s === undefined ? undefined : new Date(s);
    return d !== undefined && Number.isFinite(d.getTime()) ? d : undefined;
  };
  const secret = str('secretAccessKey');
  const principal = str('principal');
  const account = str('account');
  const created = date('created');
  const token = str('sessionToken');
  const expiration = date('expiration');
  const temporary = accessKeyId.startsWith('ASIA');
  if (
    o.format !== FORMAT ||
    o.version !== 1 ||
    str('accessKeyId') !== accessKeyId ||
    secret === undefined ||
    secret.length < 16 ||
    principal === undefined ||
    account === undefined ||
    !/^\d{12}$/.test(account) ||
    created === undefined ||
    temporary !== (token !== undefined) ||
    temporary !== (expiration !== undefined) ||
    (o.expiration !== undefined && expiration === undefined)
  )
    throw stateError(`${path} is not a simulator principal this version understands`, 'corrupt');
  return Object.freeze({
    accessKeyId,
    secretAccessKey: secret,
    ...(token !== undefined ? { sessionToken: token } : {}),
    ...(expiration !== undefined ? { expiration } : {}),
    principal,
    account,
    created,
  });
}

/** Not frozen: the AWS SDK annotates the credential objects it is given (`$source`). */
const toCredentials = (p: StoredPrincipal): SimCredentials => ({
  accessKeyId: p.accessKeyId,
  secretAccessKey: p.secretAccessKey,
  ...(p.sessionToken !== undefined ? { sessionToken: p.sessionToken } : {}),
  ...(p.expiration !== undefined ? { expiration: new Date(p.expiration) } : {}),
  principal: p.principal,
  account: p.account,
});

/** Write a fresh principal file; returns it. */
async function createPrincipal(stateDir: string, identity: { principal: string; account: string }, temporary: { expiration: Date } | undefined, now: Date): Promise<StoredPrincipal> {
  const dir = join(stateDir, PRINCIPALS_DIR);
  await ensurePrivateDir(stateDir);
  await ensurePrivateDir(dir);
  for (let attempt = 0; attempt < 4; attempt++) {
    const p: StoredPrincipal = Object.freeze({
      accessKeyId: newAccessKeyId(temporary !== undefined),
      // 40 characters of base64, like AWS's secret access keys.
      secretAccessKey: randomBytes(30).toString('base64'),
      ...(temporary !== undefined ? { sessionToken: randomBytes(120).toString('base64'), expiration: temporary.expiration } : {}),
      principal: identity.principal,
      account: identity.account,
      created: now,
    });
    try {
      if (await publishOnce(join(dir, `${p.accessKeyId}.json`), serialize(p))) return p;
    } catch (e) {
      throw e instanceof ToolkitError ? e : stateError(`cannot write a principal in ${dir}`, 'write', e);
    }
  }
  throw stateError('could not pick an unused access key id', 'race');
}

/**
 * Add a principal to a simulator state folder (created 0700 if new) and return its fresh credentials.
 * A simulator running on that folder accepts them at once. Misuse (an ARN that is not an IAM
 * identity, a role without `session`, a lifetime out of range) throws TypeError / RangeError.
 */
export async function addSimulatorPrincipal(stateDir: string, o: AddPrincipalOptions): Promise<SimCredentials> {
  if (typeof stateDir !== 'string' || stateDir.length === 0) throw new TypeError('"stateDir" expected a non-empty path');
  const identity = resolveIdentity(o);
  const now = o.now ?? new Date();
  if (!(now instanceof Date) || !Number.isFinite(now.getTime())) throw new TypeError('"now" expected a valid Date');
  let temporary: { expiration: Date } | undefined;
  if (o.session === true) {
    const s = o.expiresInSeconds ?? DEFAULT_SESSION_SECONDS;
    if (!Number.isSafeInteger(s) || s < 1 || s > MAX_SESSION_SECONDS) throw new RangeError(`"expiresInSeconds" expected an integer from 1 to ${MAX_SESSION_SECONDS}, got ${String(s)}`);
    temporary = { expiration: new Date(Math.floor(now.getTime() / 1000) * 1000 + s * 1000) };
  } else if (o.expiresInSeconds !== undefined) throw new TypeError('"expiresInSeconds" applies to temporary credentials only (session: true)');
  return toCredentials(await createPrincipal(stateDir, identity, temporary, now));
}

/** Shared-credentials text for one profile. Secrets never contain `#`, `;` or spaces (base64). */
export function credentialsFileText(c: Pick<SimCredentials, 'accessKeyId' | 'secretAccessKey' | 'sessionToken' | 'principal'>, profile = CREDENTIALS_PROFILE): string {
  return (
    `# enclavekit KMS simulator: ${c.principal}\n` +
    `# AWS_SHARED_CREDENTIALS_FILE=<this file> AWS_PROFILE=${profile}; valid only against this simulator\n` +
    `[${profile}]\n` +
    `aws_access_key_id = ${c.accessKeyId}\n` +
    `aws_secret_access_key = ${c.secretAccessKey}\n` +
    (c.sessionToken !== undefined ? `aws_session_token = ${c.sessionToken}\n` : '')
  );
}

/** The `enclavekit-sim` profile's access key id in a shared-credentials file, or undefined. */
function profileAccessKey(text: string, profile: string): string | undefined {
  let inProfile = false;
  for (const line of text.split(/\r?\n/)) {
    const t = line.replace(/(^|\s)[#;].*$/, '').trim();
    if (t.startsWith('[') && t.endsWith(']')) {
      inProfile = t.slice(1, -1).trim() === profile;
      continue;
    }
    const m = /^aws_access_key_id\s*=\s*(\S+)$/.exec(t);
    if (inProfile && m) return m[1];
  }
  return undefined;
}

/**
 * The account root's credentials of a state folder: read from `STATE/credentials` (profile
 * `enclavekit-sim`), or created there on first use for `accountId`'s root. The folder is created 0700
 * if it does not exist. Concurrent first uses agree on one key.
 */
export async function ensureRootCredentials(stateDir: string, options: { accountId: string; now?: Date }): Promise<SimCredentials> {
  if (typeof stateDir !== 'string' || stateDir.length === 0) throw new TypeError('"stateDir" expected a non-empty path');
  if (!/^\d{12}$/.test(options?.accountId ?? '')) throw new TypeError('"accountId" expected 12 digits');
  const path = join(stateDir, CREDENTIALS_FILE);
  await ensurePrivateDir(stateDir);
  for (let attempt = 0; attempt < 2; attempt++) {
    const existing = await readPrivate(path);
    if (existing !== undefined) {
      const id = profileAccessKey(existing, CREDENTIALS_PROFILE);
      if (id === undefined || !ACCESS_KEY_RE.test(id)) throw stateError(`${path} has no [${CREDENTIALS_PROFILE}] access key`, 'corrupt');
      const p = await readPrincipal(stateDir, id);
      if (p === undefined) throw stateError(`${path} names an access key the simulator does not know`, 'corrupt');
      return toCredentials(p);
    }
    const now = options.now ?? new Date();
    const root = await createPrincipal(stateDir, { principal: `arn:aws:iam::${options.accountId}:root`, account: options.accountId }, undefined, now);
    if (await publishOnce(path, credentialsFileText(root))) return toCredentials(root);
    // Another process published first: ours is not the root; use theirs.
    await unlink(join(stateDir, PRINCIPALS_DIR, `${root.accessKeyId}.json`)).catch(() => undefined);
  }
  throw stateError(`${path} appeared and vanished while opening the state`, 'race');
}

async function readPrincipal(stateDir: string, accessKeyId: string): Promise<StoredPrincipal | undefined> {
  if (!ACCESS_KEY_RE.test(accessKeyId)) return undefined;
  const path = join(stateDir, PRINCIPALS_DIR, `${accessKeyId}.json`);
  const text = await readPrivate(path);
  return text === undefined ? undefined : parse(text, path, accessKeyId);
}

/**
 * The server's view: access key id -> principal, read from the state folder on first sight and kept
 * (principal files are never rewritten). Unknown keys are looked up again each time, so keys added
 * while the simulator runs work at once; an id that is not AWS-shaped never touches the disk.
 */
export class PrincipalStore {
  readonly #dir: string;
  readonly #known = new Map<string, StoredPrincipal>();

  constructor(stateDir: string) {
    if (typeof stateDir !== 'string' || stateDir.length === 0) throw new TypeError('"stateDir" expected a non-empty path');
    this.#dir = stateDir;
  }

  async lookup(accessKeyId: string): Promise<StoredPrincipal | undefined> {
    const hit = this.#known.get(accessKeyId);
    if (hit !== undefined) return hit;
    const p = await readPrincipal(this.#dir, accessKeyId);
    if (p !== undefined) this.#known.set(accessKeyId, p);
    return p;
  }
}

/** Constant-time equality of two secrets of any length (compares their SHA-256). */
export function secretsEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}
