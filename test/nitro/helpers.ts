import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { decodeEvidenceText } from '../../attestation/bytes.js';
import { AttestationError } from '../../attestation/errors.js';

export const VEC = fileURLToPath(new URL('../vectors/nitro/', import.meta.url));
export const WYCHEPROOF = fileURLToPath(new URL('../vectors/wycheproof/', import.meta.url));

export interface IndexEntry {
  file: string;
  kind: string;
  timestamp: string | null;
  verifies: boolean;
  valid_until: string | null;
}

export const index: { attestation_documents: IndexEntry[] } = JSON.parse(readFileSync(VEC + 'index.json', 'utf8'));

export function loadDoc(file: string): Uint8Array {
  return decodeEvidenceText(new Uint8Array(readFileSync(VEC + file)));
}

export function sidecar(file: string): any {
  return JSON.parse(readFileSync(VEC + file.replace(/\.cose$/, '.json'), 'utf8'));
}

/** Run fn and return the AttestationError it throws (fails the test otherwise). */
export function attErr(fn: () => unknown): AttestationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationError);
    return e as AttestationError;
  }
  throw new Error('expected an AttestationError, nothing was thrown');
}

export async function attErrAsync(fn: () => Promise<unknown>): Promise<AttestationError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationError);
    return e as AttestationError;
  }
  throw new Error('expected an AttestationError, nothing was thrown');
}

export const pcr = (fill: number, len = 48) => new Uint8Array(len).fill(fill);
export const PROD_PCRS = () => new Map([[0, pcr(1)], [1, pcr(2)], [2, pcr(3)], [3, pcr(0)], [4, pcr(4)], [8, pcr(0)]]);
