/** Helpers for targets that drive several entry points with one input. */
import { classify } from '../classify.js';

/**
 * Run every step, even after one refuses; rethrow the first throw that would be a finding (so a
 * refusal by an earlier step cannot hide it), else the first refusal.
 */
export async function runAll(steps: readonly (() => unknown)[], allowed?: (e: unknown) => boolean): Promise<void> {
  let first: unknown;
  let failed = false;
  for (const step of steps) {
    try {
      const r = step();
      if (r instanceof Promise) await r;
    } catch (e) {
      if (classify(e, { allowed }) !== undefined) throw e;
      if (!failed) {
        failed = true;
        first = e;
      }
    }
  }
  if (failed) throw first;
}

/** The synchronous form, for targets whose steps are all synchronous (no await on the hot path). */
export function runAllSync(steps: readonly (() => unknown)[], allowed?: (e: unknown) => boolean): void {
  let first: unknown;
  let failed = false;
  for (const step of steps) {
    try {
      step();
    } catch (e) {
      if (classify(e, { allowed }) !== undefined) throw e;
      if (!failed) {
        failed = true;
        first = e;
      }
    }
  }
  if (failed) throw first;
}
