import { ToolkitError, type ToolkitErrorCode } from '../../attestation/errors.js';
import { expect } from 'vitest';

/** Assert `fn` throws a ToolkitError with `code` (and `reason`, if given); returns it. */
export function expectCode(fn: () => unknown, code: ToolkitErrorCode, reason?: string): ToolkitError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `expected ${code}`).toBeInstanceOf(ToolkitError);
  const e = thrown as ToolkitError;
  expect(e.code).toBe(code);
  if (reason !== undefined) expect(e.reason).toBe(reason);
  return e;
}

export async function expectCodeAsync(fn: () => Promise<unknown>, code: ToolkitErrorCode, reason?: string): Promise<ToolkitError> {
  let thrown: unknown;
  try {
    await fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `expected ${code}`).toBeInstanceOf(ToolkitError);
  const e = thrown as ToolkitError;
  expect(e.code).toBe(code);
  if (reason !== undefined) expect(e.reason).toBe(reason);
  return e;
}

/** Only our errors may escape from parsers of untrusted input. */
export function onlyProjectErrors(fn: () => unknown, codes: readonly ToolkitErrorCode[]): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof ToolkitError)) throw new Error(`non-project throw: ${String(e)}`, { cause: e });
    if (!codes.includes(e.code)) throw new Error(`unexpected code ${e.code}`);
  }
}
