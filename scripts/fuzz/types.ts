/** What a fuzz target is, and what counts as a finding. */
import type { InputFormat } from './mutate.js';
import type { Verdict } from './classify.js';

export interface FuzzTarget<C = unknown> {
  name: string;
  /** One line for `--list` and the table. */
  description: string;
  /** The files whose parsers this target drives. */
  covers: readonly string[];
  /** Steers the structure-aware mutations. */
  format: InputFormat;
  /** Inputs are cut to this many bytes. */
  maxLen: number;
  /** Tokens worth inserting: field names, magic strings. */
  dict?: readonly string[];
  /** Executions slower than this are hangs (default: the runner's --timeout-ms). */
  timeoutMs?: number;
  /** Once per worker, before any input (keys, simulated CAs, servers). */
  setup?(): Promise<C> | C;
  /** The starting corpus: real vectors and valid instances of the format. */
  seeds(ctx: C): Promise<Uint8Array[]> | Uint8Array[];
  /** One execution. Throwing a ToolkitError (the project's own errors) is the expected way to refuse. */
  run(input: Uint8Array, ctx: C): void | Promise<void>;
  /**
   * Errors other than ToolkitError that this API documents for these inputs (for example the x509
   * module's own CertParseError, which the verifier wraps). Anything else that escapes is a finding.
   */
  allowed?(e: unknown): boolean;
  teardown?(ctx: C): Promise<void> | void;
}

/** Thrown by a target when a property it checks (a round trip, two parsers agreeing) does not hold. */
export class FuzzInvariantError extends Error {
  override name = 'FuzzInvariantError';
}

export type FindingKind = 'exception' | 'masked' | 'invariant' | 'hang' | 'memory' | 'crash';

export interface Finding {
  target: string;
  kind: FindingKind;
  /** Stable-ish identity for deduplication: kind, error name and where it was thrown. */
  signature: string;
  name: string;
  message: string;
  stack: string;
  input: Uint8Array;
  /** Saved here (by the runner). */
  file?: string;
  count: number;
}

export interface TargetStats {
  target: string;
  execs: number;
  seconds: number;
  execsPerSecond: number;
  /** Distinct coverage points reached in the project's own sources. */
  coverage: number;
  /** Points known (reached or not) in the functions the target entered. */
  coverageKnown: number;
  /** Points reached in the decoders the project uses (cbor-x, @peculiar/asn1-*). */
  libCoverage: number;
  corpus: number;
  seeds: number;
  findings: number;
  maxExecMs: number;
  restarts: number;
  setupMs: number;
  /** How often coverage was taken, and the seconds that cost (the fuzzer's own overhead). */
  coverageTakes: number;
  coverageSeconds: number;
}

// ---------------------------------------------------------------------------------------------
// Runner <-> worker

export interface WorkerInput {
  mode: 'fuzz' | 'replay';
  targetModule: string;
  seconds: number;
  seed: number;
  corpus: Uint8Array[];
  inputs: Uint8Array[];
  sab: SharedArrayBuffer;
  maxRssMb: number;
  maxHeapMb: number;
  /** Report the points seen but never reached (`--unreached`). */
  unreached?: boolean;
}

export type WorkerMessage =
  | { type: 'ready'; setupMs: number; seeds: number; timeoutMs: number | undefined }
  | { type: 'corpus'; input: Uint8Array }
  | { type: 'finding'; verdict: Verdict; input: Uint8Array }
  | { type: 'duplicate'; signature: string }
  | { type: 'progress'; stats: TargetStats }
  | { type: 'done'; stats: TargetStats; unreached?: { url: string; line: number; code: string }[] }
  | { type: 'replayed'; index: number; outcome: string; verdict?: Verdict };

/** Shared memory layout: [0] exec start (ms since epoch, 0 idle), [1] reserved; then u32 length, then bytes. */
export const SAB_HEADER = 16 + 4;

