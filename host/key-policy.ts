/**
 * AWS KMS key policies: a strict parser for AWS's JSON grammar, an evaluator (used by the KMS
 * simulator), and a builder for the policy that releases a key only to one attested enclave image
 * (used by `enclavekit policy`, for real AWS and the simulator alike).
 *
 * Evaluation follows AWS: an explicit Deny wins, otherwise an Allow is needed, otherwise the request
 * is implicitly denied. Conditions: operators are ANDed, keys inside an operator are ANDed, the
 * values of one key are ORed. A missing condition key makes positive operators false and negated
 * operators true, exactly as IAM does, so a Deny with `StringNotEquals` also catches a request that
 * has no attestation at all.
 */
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

interface Statement {
  sid: string | undefined;
  effect: 'Allow' | 'Deny';
  /** `null` means `*`; otherwise the account ids the principals belong to. */
  principalAccounts: string[] | null;
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

function principalAccounts(v: unknown): string[] | null {
  if (v === '*') return null;
  if (!isRecord(v)) return bad('Principal must be "*" or {"AWS": ...}', 'principal');
  const keys = Object.keys(v);
  if (keys.length !== 1 || keys[0] !== 'AWS') bad('only AWS principals are supported', 'principal');
  const list = stringList(v.AWS, 'Principal.AWS');
  if (list.includes('*')) return null;
  return list.map((p) => {
    if (ACCOUNT_RE.test(p)) return p;
    const m = IAM_ARN_RE.exec(p);
    if (!m) return bad(`invalid principal ${JSON.stringify(p.slice(0, 100))}`, 'principal');
    return m[1]!;
  });
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
    principalAccounts: principalAccounts(s.Principal),
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
  if (c.op === 'Null') {
    const absent = actual === undefined || actual.length === 0;
    return c.values.some((v) => (v === 'true') === absent);
  }
  const positive = NEGATION[c.op];
  const op = positive ?? c.op;
  const matchesAny = (a: string): boolean => c.values.some((e) => matchOne(op, a, e));
  if (c.qualifier === 'ForAllValues') {
    // IAM: true for an empty or missing set.
    const vals = actual ?? [];
    return positive ? vals.every((a) => !matchesAny(a)) : vals.every(matchesAny);
  }
  if (actual === undefined || actual.length === 0) return positive !== undefined;
  // Plain operators on a single-valued key and ForAnyValue both ask "does some value match".
  return positive ? !actual.some(matchesAny) : actual.some(matchesAny);
}

function applies(s: Statement, ctx: RequestContext, keys: ReadonlyMap<string, readonly string[]>): boolean {
  if (s.principalAccounts !== null && !s.principalAccounts.includes(ctx.account)) return false;
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
  /** PCR index -> expected value (48 bytes, SHA-384). */
  pcrs: ReadonlyMap<number, Uint8Array>;
  /** Expected image digest (= PCR0), 48 bytes. */
  imageSha384?: Uint8Array;
  /** 12-digit account id; default: taken from keyAdmin or role. */
  account?: string;
  /** Who manages the key; default the account root. */
  keyAdmin?: string;
  /** The enclave's parent-instance role; default the account root. */
  role?: string;
}

const ADMIN_ACTIONS = [
  'kms:Create*',
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

/**
 * The key policy for "only this enclave image may decrypt": the admin manages the key and may create
 * data keys (the data owner's side), the role may Decrypt / GenerateDataKey only with a Recipient whose
 * attested PCRs match, and an explicit Deny refuses any Decrypt that carries no attestation, so an IAM
 * policy cannot widen it either.
 */
export function buildEnclaveKeyPolicy(o: EnclavePolicyOptions): string {
  const accountOf = (arn: string | undefined): string | undefined => (arn === undefined ? undefined : IAM_ARN_RE.exec(arn)?.[1]);
  for (const [label, arn] of [
    ['keyAdmin', o.keyAdmin],
    ['role', o.role],
  ] as const)
    if (arn !== undefined && !IAM_ARN_RE.test(arn)) throw new TypeError(`"${label}" expected an IAM ARN like arn:aws:iam::111122223333:role/name`);
  const account = o.account ?? accountOf(o.keyAdmin) ?? accountOf(o.role);
  if (account === undefined) throw new TypeError('"account" is required when neither keyAdmin nor role is given');
  if (!ACCOUNT_RE.test(account)) throw new TypeError('"account" expected a 12-digit AWS account id');
  if (o.pcrs.size === 0 && o.imageSha384 === undefined) throw new TypeError('at least one PCR or the image digest is required');
  const attestation: Record<string, string> = {};
  if (o.imageSha384 !== undefined) {
    if (o.imageSha384.length !== 48) throw new RangeError('"imageSha384" expected 48 bytes');
    attestation['kms:RecipientAttestation:ImageSha384'] = hex(o.imageSha384);
  }
  for (const [i, v] of [...o.pcrs].sort((a, b) => a[0] - b[0])) {
    if (!Number.isInteger(i) || i < 0 || i > 31) throw new RangeError(`PCR index ${i} out of range 0..31`);
    if (v.length !== 48) throw new RangeError(`"PCR${i}" expected 48 bytes, got ${v.length}`);
    attestation[`kms:RecipientAttestation:PCR${i}`] = hex(v);
  }
  const root = `arn:aws:iam::${account}:root`;
  return JSON.stringify(
    {
      Version: '2012-10-17',
      Id: 'enclavekit-enclave-key-policy',
      Statement: [
        { Sid: 'KeyAdministration', Effect: 'Allow', Principal: { AWS: o.keyAdmin ?? root }, Action: ADMIN_ACTIONS, Resource: '*' },
        {
          Sid: 'DataOwnerCreatesDataKeys',
          Effect: 'Allow',
          Principal: { AWS: o.keyAdmin ?? root },
          Action: ['kms:Encrypt', 'kms:GenerateDataKey', 'kms:GenerateDataKeyWithoutPlaintext'],
          Resource: '*',
          // Without a Recipient only: an attested request must match the image statement below.
          Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } },
        },
        {
          Sid: 'EnclaveImageDecrypts',
          Effect: 'Allow',
          Principal: { AWS: o.role ?? root },
          Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
          Resource: '*',
          Condition: { StringEqualsIgnoreCase: attestation },
        },
        {
          Sid: 'DenyDecryptWithoutAttestation',
          Effect: 'Deny',
          Principal: '*',
          Action: ['kms:Decrypt', 'kms:ReEncryptFrom'],
          Resource: '*',
          Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } },
        },
      ],
    },
    null,
    2,
  );
}
