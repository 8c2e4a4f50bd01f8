/**
 * AWS KMS key policies: a strict parser for AWS's JSON grammar, an evaluator (used by the KMS
 * simulator), and a builder for the policy that releases a key only to one attested enclave image
 * (used by `enclavekit policy`, for real AWS and the simulator alike).
 *
 * Evaluation follows AWS: an explicit Deny wins, otherwise an Allow is needed, otherwise the request
 * is implicitly denied. Conditions: operators are ANDed, keys inside an operator are ANDed, the
 * values of one key are ORed. Operators and set qualifiers follow IAM (see `conditionHolds`):
 * - plain operators: a missing key makes positive operators false and negated operators true, so a
 *   Deny with `StringNotEquals` also catches a request that has no attestation at all;
 * - `ForAnyValue:` is true when at least one request value satisfies the operator (for a negated
 *   operator: matches none of the policy values), and false when the key is missing;
 * - `ForAllValues:` is true when every request value satisfies it, and true when the key is missing.
 */
import { createHash } from 'node:crypto';
import { ToolkitError } from '../attestation/errors.js';

export const MAX_POLICY_BYTES = 32 * 1024;

export class KeyPolicyError extends ToolkitError {
  constructor(message: string, reason: string) {
    super('ERR_POLICY_INVALID', message, { reason });
  }
}

type Operator =
  | 'StringEquals'
  | 'StringNotEquals'
  | 'StringEqualsIgnoreCase'
  | 'StringNotEqualsIgnoreCase'
  | 'StringLike'
  | 'StringNotLike'
  | 'Null';
const OPERATORS: readonly Operator[] = [
  'StringEquals',
  'StringNotEquals',
  'StringEqualsIgnoreCase',
  'StringNotEqualsIgnoreCase',
  'StringLike',
  'StringNotLike',
  'Null',
];
type SetQualifier = 'ForAnyValue' | 'ForAllValues' | undefined;

interface Condition {
  qualifier: SetQualifier;
  op: Operator;
  /** Lower-cased condition key (condition key names are case-insensitive in IAM). */
  key: string;
  values: string[];
}

/** One `Principal.AWS` entry: a whole account (account id or `:root` ARN) or one IAM role/user. */
type PrincipalEntry = { kind: 'account'; account: string } | { kind: 'arn'; account: string; arn: string };

interface Statement {
  sid: string | undefined;
  effect: 'Allow' | 'Deny';
  /** `null` means `*`. */
  principals: PrincipalEntry[] | null;
  actions: Matcher[];
  resources: Matcher[];
  conditions: Condition[];
}

export interface KeyPolicy {
  readonly statements: readonly Statement[];
}

/** What the evaluator knows about one request. Multi-valued keys carry several values. */
export interface RequestContext {
  /** e.g. `kms:Decrypt` */
  action: string;
  /** The key's ARN. */
  resource: string;
  /** The caller's account id. */
  account: string;
  /**
   * The caller's ARN (`arn:aws:iam::ACCT:root`, `...:role/NAME`, `...:user/NAME`, or an STS session
   * `arn:aws:sts::ACCT:assumed-role/NAME/SESSION`). When given, a statement naming a role or user
   * applies only to that principal (or a session of that role), as in AWS. When absent (the simulator:
   * it checks no signature, so every caller is "the account"), any principal of `account` matches.
   * An account id or `:root` ARN in a statement matches every principal of that account either way.
   */
  principal?: string;
  /** Condition key (any case) -> values. Absent key = not in the request. */
  keys: ReadonlyMap<string, readonly string[]>;
}

export type Decision = 'allow' | 'explicit-deny' | 'implicit-deny';

const bad = (message: string, reason: string): never => {
  throw new KeyPolicyError(message, reason);
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringList(v: unknown, what: string): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || list.length > 256 || !list.every((s) => typeof s === 'string' && s.length > 0 && s.length <= 2048))
    bad(`${what} must be a non-empty string or list of strings`, 'type');
  return list as string[];
}

type Matcher = (s: string) => boolean;

/**
 * IAM wildcards: `*` any run, `?` one character; everything else literal. Matched by the greedy
 * last-star walk (O(pattern x text)) rather than a RegExp: `.*a.*a...b` backtracks exponentially, and
 * both the pattern (any key policy) and the text (an encryption context value) come from callers.
 */
function wildcardMatch(p: string, t: string): boolean {
  let pi = 0;
  let ti = 0;
  let star = -1;
  let mark = 0;
  while (ti < t.length) {
    if (pi < p.length && (p[pi] === '?' || p[pi] === t[ti])) {
      pi++;
      ti++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = ti;
    } else if (star >= 0) {
      pi = star + 1;
      ti = ++mark;
    } else return false;
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}

function glob(pattern: string, ignoreCase: boolean): Matcher {
  if (!ignoreCase) return (s) => wildcardMatch(pattern, s);
  const lower = pattern.toLowerCase();
  return (s) => wildcardMatch(lower, s.toLowerCase());
}

const ACCOUNT_RE = /^\d{12}$/;
const IAM_ARN_RE = /^arn:aws[a-z-]*:iam::(\d{12}):(root|(?:user|role|assumed-role|federated-user)\/[\w+=,.@\/-]+)$/;

function parsePrincipals(v: unknown): PrincipalEntry[] | null {
  if (v === '*') return null;
  if (!isRecord(v)) return bad('Principal must be "*" or {"AWS": ...}', 'principal');
  const keys = Object.keys(v);
  if (keys.length !== 1 || keys[0] !== 'AWS') bad('only AWS principals are supported', 'principal');
  const list = stringList(v.AWS, 'Principal.AWS');
  if (list.includes('*')) return null;
  return list.map((p): PrincipalEntry => {
    if (ACCOUNT_RE.test(p)) return { kind: 'account', account: p };
    const m = IAM_ARN_RE.exec(p);
    if (!m) return bad(`invalid principal ${JSON.stringify(p.slice(0, 100))}`, 'principal');
    return m[2] === 'root' ? { kind: 'account', account: m[1]! } : { kind: 'arn', account: m[1]!, arn: p };
  });
}

const STS_SESSION_RE = /^arn:aws[a-z-]*:sts::(\d{12}):assumed-role\/([\w+=,.@-]+)\/[\w+=,.@-]+$/;

/** Does the statement's principal entry name the caller? */
function principalMatches(e: PrincipalEntry, ctx: RequestContext): boolean {
  if (e.account !== ctx.account) return false;
  if (e.kind === 'account' || ctx.principal === undefined) return true;
  if (e.arn === ctx.principal) return true;
  // A role in a key policy also names its sessions: arn:aws:sts::ACCT:assumed-role/NAME/SESSION.
  const roleName = /:role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]+)$/.exec(e.arn)?.[1];
  const s = STS_SESSION_RE.exec(ctx.principal);
  return roleName !== undefined && s !== null && s[1] === e.account && s[2] === roleName;
}

function parseConditions(v: unknown): Condition[] {
  if (v === undefined) return [];
  if (!isRecord(v)) return bad('Condition must be an object', 'condition');
  const out: Condition[] = [];
  for (const [opName, block] of Object.entries(v)) {
    const parts = opName.split(':');
    let qualifier: SetQualifier;
    let op: string;
    if (parts.length === 2 && (parts[0] === 'ForAnyValue' || parts[0] === 'ForAllValues')) {
      qualifier = parts[0];
      op = parts[1]!;
    } else if (parts.length === 1) op = parts[0]!;
    else return bad(`unsupported condition operator ${JSON.stringify(opName.slice(0, 100))}`, 'condition_operator');
    if (!(OPERATORS as readonly string[]).includes(op)) bad(`unsupported condition operator ${JSON.stringify(opName.slice(0, 100))}`, 'condition_operator');
    if (op === 'Null' && qualifier !== undefined) bad('Null takes no set qualifier', 'condition_operator');
    if (!isRecord(block) || Object.keys(block).length === 0) bad(`${opName} must be a non-empty object`, 'condition');
    for (const [key, raw] of Object.entries(block as Record<string, unknown>)) {
      if (key.length === 0 || key.length > 256) bad('condition key length', 'condition_key');
      const rawList = Array.isArray(raw) ? raw : [raw];
      const values =
        op === 'Null'
          ? rawList.map((x) => (x === true || x === 'true' ? 'true' : x === false || x === 'false' ? 'false' : bad('Null takes "true" or "false"', 'condition_value')))
          : stringList(raw, `${opName}.${key}`);
      if (rawList.length === 0) bad(`${opName}.${key} has no values`, 'condition_value');
      out.push({ qualifier, op: op as Operator, key: key.toLowerCase(), values });
    }
  }
  return out;
}

function parseStatement(s: unknown, i: number): Statement {
  if (!isRecord(s)) return bad(`Statement ${i} must be an object`, 'statement');
  for (const k of Object.keys(s))
    if (!['Sid', 'Effect', 'Principal', 'Action', 'Resource', 'Condition'].includes(k))
      bad(`Statement ${i}: unsupported element ${JSON.stringify(k.slice(0, 50))}`, 'statement_element');
  if (s.Sid !== undefined && typeof s.Sid !== 'string') bad(`Statement ${i}: Sid must be a string`, 'type');
  if (s.Effect !== 'Allow' && s.Effect !== 'Deny') bad(`Statement ${i}: Effect must be Allow or Deny`, 'effect');
  if (s.Principal === undefined) bad(`Statement ${i}: a key policy statement needs a Principal`, 'principal');
  const actions = stringList(s.Action, `Statement ${i}: Action`).map((a) => {
    if (a !== '*' && !/^kms:[A-Za-z*?]+$/.test(a)) bad(`Statement ${i}: invalid action ${JSON.stringify(a.slice(0, 100))}`, 'action');
    return glob(a, true);
  });
  const resources = stringList(s.Resource ?? '*', `Statement ${i}: Resource`).map((r) => glob(r, false));
  return {
    sid: s.Sid as string | undefined,
    effect: s.Effect as 'Allow' | 'Deny',
    principals: parsePrincipals(s.Principal),
    actions,
    resources,
    conditions: parseConditions(s.Condition),
  };
}

/** Parse and check a key policy document. Throws KeyPolicyError (`ERR_POLICY_INVALID`). */
export function parseKeyPolicy(text: string): KeyPolicy {
  if (typeof text !== 'string') throw new TypeError('"policy" expected a string');
  if (text.length === 0 || Buffer.byteLength(text, 'utf8') > MAX_POLICY_BYTES) bad(`policy must be 1..${MAX_POLICY_BYTES} bytes`, 'size');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return bad('policy is not valid JSON', 'json');
  }
  if (!isRecord(doc)) return bad('policy must be a JSON object', 'type');
  for (const k of Object.keys(doc)) if (!['Version', 'Id', 'Statement'].includes(k)) bad(`unsupported policy element ${JSON.stringify(k.slice(0, 50))}`, 'element');
  if (doc.Version !== undefined && doc.Version !== '2012-10-17' && doc.Version !== '2008-10-17') bad('Version must be 2012-10-17', 'version');
  if (doc.Id !== undefined && typeof doc.Id !== 'string') bad('Id must be a string', 'type');
  const raw = Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
  if (doc.Statement === undefined || raw.length === 0 || raw.length > 100) bad('Statement must hold 1..100 statements', 'statement');
  return Object.freeze({ statements: Object.freeze(raw.map(parseStatement)) });
}

/**
 * Condition keys by lower-cased name, first spelling wins. Built once per evaluation: a scan per
 * condition cost conditions x request keys (~800 x 8192 with a 32 KiB policy and an 8 KiB context).
 */
function lowerKeys(keys: ReadonlyMap<string, readonly string[]>): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>();
  for (const [k, v] of keys) {
    const l = k.toLowerCase();
    if (!out.has(l)) out.set(l, v);
  }
  return out;
}

function matchOne(op: Operator, actual: string, expected: string): boolean {
  switch (op) {
    case 'StringEquals':
      return actual === expected;
    case 'StringEqualsIgnoreCase':
      return actual.toLowerCase() === expected.toLowerCase();
    case 'StringLike':
      return wildcardMatch(expected, actual);
    default:
      return false;
  }
}

const NEGATION: Partial<Record<Operator, Operator>> = {
  StringNotEquals: 'StringEquals',
  StringNotEqualsIgnoreCase: 'StringEqualsIgnoreCase',
  StringNotLike: 'StringLike',
};

function conditionHolds(c: Condition, keys: ReadonlyMap<string, readonly string[]>): boolean {
  const actual = keys.get(c.key);
  const absent = actual === undefined || actual.length === 0;
  if (c.op === 'Null') return c.values.some((v) => (v === 'true') === absent);
  const positive = NEGATION[c.op];
  const op = positive ?? c.op;
  const matchesAny = (a: string): boolean => c.values.some((e) => matchOne(op, a, e));
  // One request value against the operator: positive "matches one of the policy values", negated
  // "matches none of them". The set qualifiers quantify this per-value test over the request's values.
  const satisfies = (a: string): boolean => (positive ? !matchesAny(a) : matchesAny(a));
  if (c.qualifier === 'ForAllValues') return absent || actual.every(satisfies);
  if (c.qualifier === 'ForAnyValue') return !absent && actual.some(satisfies);
  // Plain operators: a missing key makes positive operators false and negated ones true; otherwise a
  // negated operator is the negation of its positive form ("no request value matches any policy value").
  if (absent) return positive !== undefined;
  return positive ? !actual.some(matchesAny) : actual.some(matchesAny);
}

function applies(s: Statement, ctx: RequestContext, keys: ReadonlyMap<string, readonly string[]>): boolean {
  if (s.principals !== null && !s.principals.some((e) => principalMatches(e, ctx))) return false;
  if (!s.actions.some((a) => a(ctx.action))) return false;
  if (!s.resources.some((r) => r(ctx.resource))) return false;
  return s.conditions.every((c) => conditionHolds(c, keys));
}

export function evaluateKeyPolicy(policy: KeyPolicy, ctx: RequestContext): Decision {
  let allowed = false;
  const keys = lowerKeys(ctx.keys);
  for (const s of policy.statements) {
    if (!applies(s, ctx, keys)) continue;
    if (s.effect === 'Deny') return 'explicit-deny';
    allowed = true;
  }
  return allowed ? 'allow' : 'implicit-deny';
}

/** AWS's default key policy: the account (and so IAM) may do everything. */
export function defaultKeyPolicy(account: string): string {
  return JSON.stringify(
    {
      Version: '2012-10-17',
      Id: 'key-default-1',
      Statement: [
        { Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*' },
      ],
    },
    null,
    2,
  );
}

export interface EnclavePolicyOptions {
  /**
   * PCR index -> expected value (48 bytes, SHA-384), or several accepted values (a rolling deploy:
   * the old and the new image); the condition then lists them, and any one of them matches.
   */
  pcrs: ReadonlyMap<number, Uint8Array | readonly Uint8Array[]>;
  /** Expected image digest (= PCR0), 48 bytes; several values as for `pcrs`. */
  imageSha384?: Uint8Array | readonly Uint8Array[];
  /** 12-digit id of the key's account; when given, keyAdmin and dataOwner must belong to it. */
  account?: string;
  /** Required. IAM role or user that administers the key: key-management actions only, no data keys. */
  keyAdmin: string;
  /** Required. IAM role or user that creates data keys and encrypts, without a Recipient only. */
  dataOwner: string;
  /**
   * Required. IAM role of the enclave's parent instance (whose credentials the enclave uses): Decrypt
   * and GenerateDataKey only with a Recipient whose attested values match. May be in another account.
   */
  role: string;
}

/**
 * Key management only. Deliberately no `kms:Create*` (it includes CreateGrant, which could hand data
 * keys to anyone) and nothing that uses the key: no Encrypt, Decrypt, GenerateDataKey*, ReEncrypt*.
 */
const ADMIN_ACTIONS = [
  'kms:CreateAlias',
  'kms:Describe*',
  'kms:Enable*',
  'kms:List*',
  'kms:Put*',
  'kms:Update*',
  'kms:Revoke*',
  'kms:Disable*',
  'kms:Get*',
  'kms:Delete*',
  'kms:TagResource',
  'kms:UntagResource',
  'kms:ScheduleKeyDeletion',
  'kms:CancelKeyDeletion',
];

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A principal the builder accepts: one IAM role or user, never an account, its root, or `*`. */
const ROLE_OR_USER_RE = /^arn:aws[a-z-]*:iam::(\d{12}):(?:role|user)\/[\w+=,.@\/-]+$/;

function attestedValues(label: string, v: Uint8Array | readonly Uint8Array[]): string | string[] {
  const list = v instanceof Uint8Array ? [v] : [...v];
  if (list.length === 0) throw new RangeError(`"${label}" expected at least one value`);
  const out: string[] = [];
  for (const b of list) {
    if (!(b instanceof Uint8Array) || b.length !== 48) throw new RangeError(`"${label}" expected 48 bytes, got ${b instanceof Uint8Array ? b.length : typeof b}`);
    const h = hex(b);
    if (!out.includes(h)) out.push(h);
  }
  return out.length === 1 ? out[0]! : out;
}

/**
 * The key policy for "only this enclave image may decrypt", with three distinct principals:
 * - the key admin manages the key (never uses it);
 * - the data owner creates data keys and encrypts, only without a Recipient (never Decrypt);
 * - the parent-instance role may Decrypt / GenerateDataKey only with a Recipient whose attested values
 *   match (StringEqualsIgnoreCase; several values of one PCR are alternatives);
 * - an explicit Deny to everyone of Decrypt and ReEncrypt* without attestation, so no IAM policy or
 *   grant can widen it.
 * No statement gives Decrypt or GenerateDataKey* to `*` or to an account (root). Throws TypeError when a
 * principal is missing, is not an IAM role/user ARN (an account id, a `:root` ARN, `*`), or two of the
 * three are the same: the role must not create data keys without attestation (the host could mint
 * data keys, and seals, under the owner's key), nor administer the key.
 */
export function buildEnclaveKeyPolicy(o: EnclavePolicyOptions): string {
  const principals = [
    ['keyAdmin', o.keyAdmin],
    ['dataOwner', o.dataOwner],
    ['role', o.role],
  ] as const;
  for (const [label, arn] of principals) {
    if (typeof arn !== 'string' || arn.length === 0) throw new TypeError(`"${label}" is required: an IAM role or user ARN like arn:aws:iam::111122223333:role/name`);
    if (!ROLE_OR_USER_RE.test(arn))
      throw new TypeError(`"${label}" expected an IAM role or user ARN like arn:aws:iam::111122223333:role/name (not an account, its root, or "*")`);
  }
  for (let i = 0; i < principals.length; i++)
    for (let j = i + 1; j < principals.length; j++)
      if (principals[i]![1] === principals[j]![1]) throw new TypeError(`"${principals[i]![0]}" and "${principals[j]![0]}" must be different principals`);
  if (o.account !== undefined) {
    if (!ACCOUNT_RE.test(o.account)) throw new TypeError('"account" expected a 12-digit AWS account id');
    for (const [label, arn] of principals.slice(0, 2))
      if (ROLE_OR_USER_RE.exec(arn)![1] !== o.account) throw new TypeError(`"${label}" is not in account ${o.account}`);
  }
  if (o.pcrs.size === 0 && o.imageSha384 === undefined) throw new TypeError('at least one PCR or the image digest is required');
  const attestation: Record<string, string | string[]> = {};
  if (o.imageSha384 !== undefined) attestation['kms:RecipientAttestation:ImageSha384'] = attestedValues('imageSha384', o.imageSha384);
  for (const [i, v] of [...o.pcrs].sort((a, b) => a[0] - b[0])) {
    if (!Number.isInteger(i) || i < 0 || i > 31) throw new RangeError(`PCR index ${i} out of range 0..31`);
    attestation[`kms:RecipientAttestation:PCR${i}`] = attestedValues(`PCR${i}`, v);
  }
  const noAttestation = { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } };
  return JSON.stringify(
    {
      Version: '2012-10-17',
      Id: 'enclavekit-enclave-key-policy',
      Statement: [
        { Sid: 'KeyAdministration', Effect: 'Allow', Principal: { AWS: o.keyAdmin }, Action: ADMIN_ACTIONS, Resource: '*' },
        {
          Sid: 'DataOwnerCreatesDataKeys',
          Effect: 'Allow',
          Principal: { AWS: o.dataOwner },
          Action: ['kms:GenerateDataKey', 'kms:Encrypt', 'kms:DescribeKey'],
          Resource: '*',
          // Without a Recipient only: an attested request must match the image statement below.
          Condition: noAttestation,
        },
        {
          Sid: 'EnclaveImageDecrypts',
          Effect: 'Allow',
          Principal: { AWS: o.role },
          Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
          Resource: '*',
          Condition: { StringEqualsIgnoreCase: attestation },
        },
        {
          Sid: 'DenyDecryptWithoutAttestation',
          Effect: 'Deny',
          Principal: '*',
          Action: ['kms:Decrypt', 'kms:ReEncrypt*'],
          Resource: '*',
          Condition: noAttestation,
        },
      ],
    },
    null,
    2,
  );
}

/**
 * Nitro Enclaves' PCR3 and PCR4, computed as AWS documents them ("Where to get an enclave's
 * measurements", AWS Nitro Enclaves User Guide): SHA-384 over 48 zero bytes followed by the UTF-8
 * text, i.e. one extend of a zero PCR with the raw string, no inner hash.
 *
 *   PCR3 = SHA384(0^48 || role ARN)     the IAM role of the parent's instance profile, e.g.
 *                                        arn:aws:iam::123456789012:role/Webserver (path included)
 *   PCR4 = SHA384(0^48 || instance id)  the parent instance, e.g. i-1234567890abcdef0
 *
 * AWS's published examples are test vectors (test/deploy/pcr-helpers.test.ts).
 */
const ROLE_ARN_RE = /^arn:aws(?:-[a-z]+)*:iam::\d{12}:role\/(?:[\w+=,.@-]{1,512}\/)*[\w+=,.@-]{1,64}$/;
const INSTANCE_ID_RE = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

function zeroExtend(text: string): Uint8Array {
  return new Uint8Array(createHash('sha384').update(new Uint8Array(48)).update(text, 'utf8').digest());
}

/** PCR3 for a parent instance whose instance profile has this IAM role (its ARN, not the profile's). */
export function pcr3ForRoleArn(roleArn: string): Uint8Array {
  if (typeof roleArn !== 'string' || !ROLE_ARN_RE.test(roleArn))
    throw new RangeError(`PCR3 expects an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME, as \`aws iam get-role --query Role.Arn\` prints), got ${JSON.stringify(String(roleArn).slice(0, 120))}`);
  return zeroExtend(roleArn);
}

/** PCR4 for a parent instance id (`i-` and 8 or 17 hex digits). */
export function pcr4ForInstanceId(instanceId: string): Uint8Array {
  if (typeof instanceId !== 'string' || !INSTANCE_ID_RE.test(instanceId))
    throw new RangeError(`PCR4 expects an EC2 instance id (i-0123456789abcdef0), got ${JSON.stringify(String(instanceId).slice(0, 40))}`);
  return zeroExtend(instanceId);
}
