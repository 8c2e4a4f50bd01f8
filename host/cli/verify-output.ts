/**
 * Printing for `enclavekit verify`, shared by the Nitro (verify.ts) and SEV-SNP (verify-snp.ts) sides:
 * one JSON object with `--json`, otherwise a readable summary. Bytes are lower-case hex, times ISO 8601.
 */
import { toHex } from '../../attestation/bytes.js';
import { AttestationPolicyError, ToolkitError } from '../../attestation/errors.js';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, type CliIO } from './io.js';

/** Uint8Array -> hex, Date -> ISO, Map -> object, recursively; drops undefined. */
export function toJsonValue(v: unknown): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), toJsonValue(x)]));
  if (Array.isArray(v)) return v.map(toJsonValue);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = toJsonValue(x);
    return out;
  }
  return v;
}

export interface VerifiedOutcome {
  format: string;
  platform: string;
  claims: Record<string, unknown>;
  /** Label/value lines for the readable summary, in order. */
  summary: [string, string][];
}

export function writeValid(io: CliIO, json: boolean, o: VerifiedOutcome): number {
  if (json) {
    io.stdout.write(JSON.stringify({ valid: true, format: o.format, platform: o.platform, claims: toJsonValue(o.claims) }) + '\n');
  } else {
    const lines = [`VALID ${o.format} evidence (platform: ${o.platform})`];
    const w = Math.max(...o.summary.map(([k]) => k.length));
    for (const [k, v] of o.summary) lines.push(`  ${k.padEnd(w)}  ${v}`);
    if (o.platform === 'simulator') lines.push('  NOTE: simulator evidence, trusted only because its root was passed explicitly');
    io.stdout.write(lines.join('\n') + '\n');
  }
  return EXIT_OK;
}

/** ERR_POLICY_INVALID and ERR_INPUT_ENCODING of a policy are the caller's mistake: exit 2. */
const USAGE_CODES = new Set(['ERR_POLICY_INVALID', 'ERR_CONFIG_INVALID']);

/** Print a verification failure; returns the exit code (1 invalid evidence/policy, 2 bad policy). */
export function writeInvalid(io: CliIO, json: boolean, e: ToolkitError): number {
  const violations = e instanceof AttestationPolicyError ? e.violations : [];
  if (json) {
    io.stdout.write(JSON.stringify({ valid: false, code: e.code, reason: e.reason ?? null, message: e.message, violations }) + '\n');
  } else {
    const head = violations.length > 0 ? `${violations.length} policy violation(s)` : e.message;
    const lines = [`INVALID: ${e.code}${e.reason ? ` (${e.reason})` : ''}: ${head}`];
    for (const v of violations) lines.push(`  ${v.field}: expected ${v.expected}, got ${v.actual}`);
    io.stdout.write(lines.join('\n') + '\n');
  }
  return USAGE_CODES.has(e.code) ? EXIT_USAGE : EXIT_INVALID;
}
