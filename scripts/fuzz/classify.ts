/**
 * Is a throw a finding? The project's contract (docs/style.md 2, design "Ground rules"): parsers of
 * untrusted bytes throw only ToolkitError (and subclasses); TypeError/RangeError are for a caller's
 * misuse, which a fuzz target never commits. So:
 * - a ToolkitError (or a type the target's API documents) is a refusal, not a finding,
 * - unless it wraps a bug of our own: a TypeError/RangeError/ReferenceError/SyntaxError raised in the
 *   project's sources (not in a library or node:) and caught by a catch-all (`masked`),
 * - anything else is a finding (`exception`); a failed property check is `invariant`.
 */
import { fileURLToPath } from 'node:url';
import { ToolkitError } from '../../attestation/errors.js';
import { FuzzInvariantError, type FindingKind, type FuzzTarget } from './types.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The project's sources, and the planted-bug fixtures the engine tests fuzz as if they were. */
const PROJECT_DIRS = ['attestation', 'enclave', 'host', 'test/fuzz/fixtures'].map((d) => `${REPO_ROOT}${d}/`);

/** A source file of the project (not a test, script or dependency). */
export function isProjectFile(path: string): boolean {
  const p = path.startsWith('file://') ? fileURLToPath(path.replace(/\?.*$/, '')) : path;
  return PROJECT_DIRS.some((d) => p.startsWith(d)) && !p.includes('/node_modules/');
}

const BUG_ERRORS = new Set(['TypeError', 'RangeError', 'ReferenceError', 'SyntaxError', 'EvalError', 'URIError', 'AggregateError']);
/** Messages of engine errors that a catch-all may have turned into a project error's text. */
const ENGINE_MESSAGES =
  /Cannot read propert|Cannot set propert|Cannot destructure|is not a function|is not a constructor|is not iterable|is not defined|before initialization|Maximum call stack|Invalid array length|Invalid typed array length|Invalid string length|Invalid time value|Array buffer allocation failed|out of bounds|outside the bounds|Cannot convert|undefined is not|null is not|Cannot mix BigInt/;

/** The first stack frame's location, e.g. `/repo/attestation/x509/cert.ts:120:5`, or ''. */
export function topFrame(e: unknown): string {
  const stack = e instanceof Error && typeof e.stack === 'string' ? e.stack : '';
  for (const line of stack.split('\n')) {
    const m = /^\s+at (?:.*? \()?(.*?):(\d+):(\d+)\)?$/.exec(line);
    if (m) return `${m[1]}:${m[2]}`;
  }
  return '';
}

function firstProjectFrame(e: unknown): string {
  const stack = e instanceof Error && typeof e.stack === 'string' ? e.stack : '';
  for (const line of stack.split('\n')) {
    const m = /^\s+at (?:.*? \()?(.*?):(\d+):(\d+)\)?$/.exec(line);
    if (m && isProjectFile(m[1]!)) return `${m[1]!.replace(/^file:\/\//, '').replace(REPO_ROOT, '')}:${m[2]}`;
  }
  return '';
}

interface Frame {
  fn: string;
  /** File path or URL, or '' for a built-in (`<anonymous>`, `native`). */
  file: string;
}

function frames(e: unknown): Frame[] {
  const stack = e instanceof Error && typeof e.stack === 'string' ? e.stack : '';
  const out: Frame[] = [];
  for (const line of stack.split('\n')) {
    const m = /^\s+at (?:(.*?) \()?(.*?)\)?$/.exec(line);
    if (!m) continue;
    const loc = m[2]!;
    const file = /^(.*?):\d+:\d+$/.exec(loc)?.[1] ?? '';
    out.push({ fn: m[1] ?? '', file });
  }
  return out;
}

/** Built-ins whose throw is their documented way to refuse input (wrapped by the caller by design). */
const REFUSING_BUILTINS = /^(JSON\.parse|atob|TextDecoder\.decode|BigInt|decodeURIComponent)$/;

/**
 * An engine error raised in the project's own code: a stack overflow; an engine message (a property
 * of undefined, an invalid length) whose first frame is a project file; or any error of a built-in
 * called directly from one (`new Uint8Array(n)` with a hostile n). A TypeError the project throws on
 * purpose (`encodeCanonical`'s "value outside the model", caught and turned into a refusal by
 * `decodeCanonical`) is its documented signal, not a bug.
 */
function isOurBug(e: unknown): boolean {
  if (!(e instanceof Error) || !BUG_ERRORS.has(e.name)) return false;
  if (/Maximum call stack size exceeded/.test(e.message)) return true;
  const f = frames(e);
  const first = f[0];
  if (first === undefined) return false;
  if (first.file !== '') return isProjectFile(first.file) && ENGINE_MESSAGES.test(e.message);
  if (REFUSING_BUILTINS.test(first.fn)) return false;
  const caller = f[1];
  return caller !== undefined && caller.file !== '' && isProjectFile(caller.file);
}

export interface Verdict {
  kind: FindingKind;
  signature: string;
  name: string;
  message: string;
  stack: string;
}

/** undefined: an allowed refusal. Otherwise what kind of finding, with a deduplication signature. */
export function classify(e: unknown, target: Pick<FuzzTarget, 'allowed'>): Verdict | undefined {
  const describe = (kind: FindingKind, err: unknown): Verdict => {
    const name = err instanceof Error ? err.name : typeof err;
    const message = err instanceof Error ? err.message : String(err);
    const where = firstProjectFrame(err) || topFrame(err).replace(REPO_ROOT, '');
    return { kind, signature: `${kind}:${name}:${where}`, name, message: message.slice(0, 500), stack: err instanceof Error ? (err.stack ?? '') : '' };
  };
  if (e instanceof FuzzInvariantError) return { ...describe('invariant', e), signature: `invariant:${e.message.slice(0, 80)}` };
  if (e instanceof ToolkitError || target.allowed?.(e)) {
    // Look through the cause chain for a bug of ours that a catch-all wrapped.
    let c: unknown = e;
    for (let depth = 0; c !== undefined && c !== null && depth < 8; depth++) {
      if (isOurBug(c)) return describe('masked', c);
      c = c instanceof Error ? c.cause : undefined;
    }
    // A documented non-project error type whose catch-all copied an engine error's text (x509's CertParseError).
    if (!(e instanceof ToolkitError) && e instanceof Error && ENGINE_MESSAGES.test(e.message)) return describe('masked', e);
    return undefined;
  }
  return describe('exception', e);
}
