/**
 * Printing for `enclavekit verify`, shared by the Nitro (verify.ts) and SEV-SNP (verify-snp.ts) sides:
 * one JSON object (one line) with `--json`, otherwise a readable summary. Bytes are lower-case hex,
 * times ISO 8601. With several FILEs every object carries `file`, and every summary starts with it.
 *
 * Imports only what every verification needs anyway (errors, hex): `enclavekit verify` starts fast.
 */
import { toHex } from '../../attestation/bytes.js';
import { AttestationPolicyError, type ToolkitError } from '../../attestation/errors.js';
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

/** Where the output of one verification goes, and how it is labelled. */
export interface OutputOptions {
  json: boolean;
  /** Set when several FILEs are verified in one run: each result names its file. */
  file?: string;
}

export interface VerifiedOutcome {
  format: string;
  platform: string;
  /** Claims for `--json`; `debug` is added by writeValid. */
  claims: Record<string, unknown>;
  /** Label/value lines for the readable summary, in order. */
  summary: [string, string][];
  /** A debug-mode enclave or guest, accepted because the caller allowed it (`--allow-debug`). */
  debug: boolean;
}

export function writeValid(io: CliIO, out: OutputOptions, o: VerifiedOutcome): number {
  if (out.json) {
    const claims = toJsonValue({ ...o.claims, debug: o.debug });
    io.stdout.write(JSON.stringify({ ...(out.file !== undefined ? { file: out.file } : {}), valid: true, format: o.format, platform: o.platform, claims }) + '\n');
  } else {
    const lines = [`${out.file !== undefined ? `${out.file}: ` : ''}VALID ${o.format} evidence (platform: ${o.platform})${o.debug ? ' [DEBUG MODE]' : ''}`];
    const w = Math.max(...o.summary.map(([k]) => k.length));
    for (const [k, v] of o.summary) lines.push(`  ${k.padEnd(w)}  ${v}`);
    if (o.debug)
      lines.push(
        o.format === 'nitro'
          ? '  NOTE: a debug-mode enclave (PCR0, PCR1, PCR2 all zero): its memory can be read by the parent; accepted only because of --allow-debug'
          : '  NOTE: a debuggable guest (POLICY.DEBUG): its memory can be read by the hypervisor; accepted only because of --allow-debug',
      );
    if (o.platform === 'simulator') lines.push('  NOTE: simulator evidence, trusted only because its root was passed explicitly');
    io.stdout.write(lines.join('\n') + '\n');
  }
  return EXIT_OK;
}

/** The validity window of the certificates the evidence was checked against (for expired evidence). */
export interface ValidityWindow {
  notBefore: Date;
  notAfter: Date;
  /** When the evidence says it was made (Nitro `timestamp`), if it says so. */
  timestamp?: Date;
}

/** A time to suggest for `--at`: the document's own timestamp, else the middle of its window. */
export function suggestedAt(w: ValidityWindow): Date {
  if (w.timestamp !== undefined && w.timestamp >= w.notBefore && w.timestamp <= w.notAfter) return w.timestamp;
  return new Date(Math.floor((w.notBefore.getTime() + w.notAfter.getTime()) / 2000) * 1000);
}

/** The sentence printed under an expired (or not yet valid) chain. */
export function windowHint(w: ValidityWindow, atGiven: boolean): string {
  const at = suggestedAt(w).toISOString().replace('.000Z', 'Z');
  const issued = w.timestamp !== undefined ? `, issued ${w.timestamp.toISOString()}` : '';
  return (
    `the evidence's certificates are valid from ${w.notBefore.toISOString()} to ${w.notAfter.toISOString()}${issued}; ` +
    (atGiven ? `--at is outside that window` : `it was checked at the current time`) +
    `. To check it as of a time inside its window, pass --at (e.g. --at ${at}).`
  );
}

/** ERR_POLICY_INVALID and ERR_CONFIG_INVALID are the caller's mistake: exit 2. */
const USAGE_CODES = new Set(['ERR_POLICY_INVALID', 'ERR_CONFIG_INVALID']);

/** Print a verification failure; returns the exit code (1 invalid evidence/policy, 2 bad input). */
export function writeInvalid(io: CliIO, out: OutputOptions, e: ToolkitError, extra: { window?: ValidityWindow; atGiven?: boolean } = {}): number {
  const violations = e instanceof AttestationPolicyError ? e.violations : [];
  const hint = extra.window ? windowHint(extra.window, extra.atGiven === true) : undefined;
  if (out.json) {
    io.stdout.write(
      JSON.stringify({
        ...(out.file !== undefined ? { file: out.file } : {}),
        valid: false,
        code: e.code,
        reason: e.reason ?? null,
        message: e.message,
        violations,
        ...(extra.window ? { validity: toJsonValue(extra.window), hint } : {}),
      }) + '\n',
    );
  } else {
    const head = violations.length > 0 ? `${violations.length} policy violation(s)` : e.message;
    const lines = [`${out.file !== undefined ? `${out.file}: ` : ''}INVALID: ${e.code}${e.reason ? ` (${e.reason})` : ''}: ${head}`];
    for (const v of violations) lines.push(`  ${v.field}: expected ${v.expected}, got ${v.actual}`);
    if (hint !== undefined) lines.push(`  ${hint}`);
    io.stdout.write(lines.join('\n') + '\n');
  }
  return USAGE_CODES.has(e.code) ? EXIT_USAGE : EXIT_INVALID;
}

/**
 * A FILE that could not be read or used (several FILEs): one result for it, exit 2 for it. `code` is
 * the dispatcher's: ERR_INPUT for a file that cannot be read, ERR_USAGE otherwise.
 */
export function writeFileError(io: CliIO, out: OutputOptions, e: { code: string; reason?: string | undefined; message: string }): number {
  if (out.json) io.stdout.write(JSON.stringify({ file: out.file, valid: false, code: e.code, reason: e.reason ?? null, message: e.message, violations: [] }) + '\n');
  else io.stdout.write(`${out.file}: ERROR: ${e.message}\n`);
  return EXIT_USAGE;
}
