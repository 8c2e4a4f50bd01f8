/**
 * How a worker binds its public key, user data and nonce into an SEV-SNP report, and how a verifier
 * recomputes the binding. Both sides call this one function.
 *
 * A Nitro document has three separate fields; an SNP report has one 64-byte REPORT_DATA. So:
 *
 *   REPORT_DATA = SHA-512( "enclavekit-snp-report-data-v1" || 0x00
 *                          || u32be(len(public_key)) || public_key
 *                          || u32be(len(user_data))  || user_data
 *                          || u32be(len(nonce))      || nonce )
 *
 * An absent value is the same as an empty one (length 0). The length prefixes stop bytes from
 * sliding between fields ("ab"+"c" vs "a"+"bc"); the domain string stops this digest from being
 * confused with any other use of REPORT_DATA. A verifier recomputes it from the values it expects
 * and compares it with REPORT_DATA (policy field `reportData`).
 */
import { sha512 } from '@noble/hashes/sha2.js';

export const SNP_REPORT_DATA_DOMAIN = 'enclavekit-snp-report-data-v1\0';

export interface SnpBindingInput {
  publicKey?: Uint8Array | null;
  userData?: Uint8Array | null;
  nonce?: Uint8Array | null;
}

function u32be(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

export function snpReportData(input: SnpBindingInput): Uint8Array {
  const h = sha512.create();
  h.update(new TextEncoder().encode(SNP_REPORT_DATA_DOMAIN));
  for (const v of [input.publicKey, input.userData, input.nonce]) {
    const b = v ?? new Uint8Array(0);
    if (!(b instanceof Uint8Array)) throw new TypeError('binding values expected Uint8Array');
    h.update(u32be(b.length));
    h.update(b);
  }
  return h.digest();
}
