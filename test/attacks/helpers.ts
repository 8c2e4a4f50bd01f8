/** What the hostile-host tests share: the e2e fixture, and ways to tamper with what the host sends. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { RunOutcome } from '../../host/run.js';

export { setUp, OPEN_POLICY, SECRET_WORDS, makeRecords, type Fixture } from '../e2e/helpers.js';

/** The encrypted records of a dataset file, parsed. */
export function readRecords(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

export function writeRecords(dir: string, name: string, records: readonly Record<string, unknown>[]): string {
  const p = join(dir, name);
  writeFileSync(p, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return p;
}

/** The job released nothing and said nothing about the data: the one constant refusal. */
export function expectConstantRefusal(out: RunOutcome): void {
  expect(out.ok).toBe(false);
  if (out.ok) return;
  expect(out.error.code).toBe('ERR_JOB_REFUSED');
  expect(out.error.message).toBe('the worker refused the job; nothing was released');
  expect(out.refusal?.doc.code).toBe('ERR_JOB_REFUSED');
  expect(out.refusal?.doc.reason).toBe('refused');
}
