/**
 * Validate step: a caller's expectations over verified claims. Fails closed: an expected PCR, nonce,
 * user_data or public_key that the document lacks is a violation, a malformed policy is an error
 * (ERR_POLICY_INVALID), never a silently skipped check. Every violation is reported at once.
 */
import { AttestationError, AttestationPolicyError, type PolicyViolation } from '../errors.js';
import { equalBytes, fromHex, isAllZero, toHex } from '../bytes.js';

/** Bytes as a Uint8Array or a hex string (either case, optional 0x). */
export type NitroPolicyBytes = Uint8Array | string;

export interface NitroPolicy {
  /**
   * Expected PCRs by index (0..31; keys "0" or "PCR0"): one value, or a list of allowed values for
   * rolling deployments.
   */
  pcrs?: Readonly<Record<string | number, NitroPolicyBytes | readonly NitroPolicyBytes[]>>;
  nonce?: NitroPolicyBytes;
  userData?: NitroPolicyBytes;
  publicKey?: NitroPolicyBytes;
  /** Reject documents whose timestamp is older than this, relative to `now`. */
  maxAgeSeconds?: number;
}

/** Clock skew tolerated for a timestamp ahead of `now` when maxAgeSeconds is set. */
export const NITRO_FUTURE_SKEW_MS = 60_000;

export interface NitroClaims {
  readonly timestamp: Date;
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly nonce?: Uint8Array | undefined;
  readonly userData?: Uint8Array | undefined;
  readonly publicKey?: Uint8Array | undefined;
}

function invalid(message: string): AttestationError {
  return new AttestationError('ERR_POLICY_INVALID', `Nitro policy: ${message}`, { reason: 'policy_invalid' });
}

function bytesOf(v: unknown, label: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') {
    try {
      return fromHex(v.trim(), label);
    } catch {
      throw invalid(`${label} is not hex`);
    }
  }
  throw invalid(`${label} must be hex or bytes`);
}

function pcrIndex(k: string): number {
  const m = /^(?:PCR)?(\d{1,2})$/i.exec(k);
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 0 && n < 32)) throw invalid(`PCR key ${JSON.stringify(k)} is not 0..31 or PCR0..PCR31`);
  return n;
}

/** Normalised, checked form of a policy (throws ERR_POLICY_INVALID). */
export interface CompiledNitroPolicy {
  pcrs: Map<number, Uint8Array[]>;
  nonce?: Uint8Array;
  userData?: Uint8Array;
  publicKey?: Uint8Array;
  maxAgeMs?: number;
}

const KEYS = new Set(['pcrs', 'nonce', 'userData', 'publicKey', 'maxAgeSeconds']);

/** A Map (or array, Date...) has no own enumerable entries to read: taking it would check nothing. */
function isPlainObject(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export function compileNitroPolicy(policy: NitroPolicy): CompiledNitroPolicy {
  if (!isPlainObject(policy)) throw invalid('must be a plain object');
  for (const k of Object.keys(policy)) if (!KEYS.has(k)) throw invalid(`unknown key ${JSON.stringify(k)}`);
  const out: CompiledNitroPolicy = { pcrs: new Map() };
  if (policy.pcrs !== undefined) {
    if (!isPlainObject(policy.pcrs)) throw invalid('pcrs must be a plain object of index -> hex (not a Map)');
    for (const [k, v] of Object.entries(policy.pcrs)) {
      const i = pcrIndex(k);
      if (out.pcrs.has(i)) throw invalid(`PCR${i} given twice`);
      const list = Array.isArray(v) ? (v as unknown[]) : [v];
      if (list.length === 0) throw invalid(`PCR${i} has an empty list of allowed values`);
      const vals = list.map((x) => bytesOf(x, `PCR${i}`));
      for (const x of vals) if (x.length !== 32 && x.length !== 48 && x.length !== 64) throw invalid(`PCR${i} value is ${x.length} bytes, not 32/48/64`);
      out.pcrs.set(i, vals);
    }
  }
  if (policy.nonce !== undefined) out.nonce = bytesOf(policy.nonce, 'nonce');
  if (policy.userData !== undefined) out.userData = bytesOf(policy.userData, 'userData');
  if (policy.publicKey !== undefined) out.publicKey = bytesOf(policy.publicKey, 'publicKey');
  if (policy.maxAgeSeconds !== undefined) {
    const s = policy.maxAgeSeconds;
    if (typeof s !== 'number' || !Number.isFinite(s) || s < 0) throw invalid('maxAgeSeconds must be a non-negative number');
    out.maxAgeMs = s * 1000;
  }
  return out;
}

const show = (b: Uint8Array | undefined): string => (b === undefined ? '(absent)' : toHex(b));

/** A debug-mode enclave (nitro-cli --debug-mode) reports PCR0, PCR1 and PCR2 all zero. */
export function isDebugMode(pcrs: ReadonlyMap<number, Uint8Array>): boolean {
  return [0, 1, 2].every((i) => {
    const v = pcrs.get(i);
    return v !== undefined && isAllZero(v);
  });
}

/** Collect every violation; throws AttestationPolicyError if there is any. */
export function checkNitroPolicy(claims: NitroClaims, policy: NitroPolicy | undefined, now: Date, allowDebug: boolean): void {
  const p = policy === undefined ? undefined : compileNitroPolicy(policy);
  const v: PolicyViolation[] = [];
  if (!allowDebug && isDebugMode(claims.pcrs))
    v.push({ field: 'debug_mode', expected: 'a production enclave (PCR0, PCR1, PCR2 not all zero; allowDebug / --allow-debug accepts debug mode)', actual: toHex(claims.pcrs.get(0)!) });
  if (p !== undefined) {
    for (const [i, allowed] of [...p.pcrs].sort((a, b) => a[0] - b[0])) {
      const actual = claims.pcrs.get(i);
      if (actual === undefined || !allowed.some((a) => equalBytes(a, actual)))
        v.push({ field: `PCR${i}`, expected: allowed.map(toHex).join(' | '), actual: show(actual) });
    }
    const fields: [string, Uint8Array | undefined, Uint8Array | undefined][] = [
      ['nonce', p.nonce, claims.nonce],
      ['user_data', p.userData, claims.userData],
      ['public_key', p.publicKey, claims.publicKey],
    ];
    for (const [name, want, got] of fields)
      if (want !== undefined && (got === undefined || !equalBytes(want, got))) v.push({ field: name, expected: toHex(want), actual: show(got) });
    if (p.maxAgeMs !== undefined) {
      const age = now.getTime() - claims.timestamp.getTime();
      if (age > p.maxAgeMs)
        v.push({ field: 'timestamp', expected: `at most ${p.maxAgeMs / 1000} s before ${now.toISOString()}`, actual: `${claims.timestamp.toISOString()} (${Math.round(age / 1000)} s old)` });
      else if (age < -NITRO_FUTURE_SKEW_MS)
        v.push({ field: 'timestamp', expected: `not after ${now.toISOString()}`, actual: claims.timestamp.toISOString() });
    }
  }
  if (v.length > 0) throw new AttestationPolicyError(v);
}
