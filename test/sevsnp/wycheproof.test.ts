/**
 * Wycheproof RSA-PSS 4096 SHA-384 (MGF1-SHA-384, salt 48: AMD's ARK/ASK/VCEK links) and ECDSA P-384
 * P1363 (the report signature) through the CryptoProvider functions the SEV-SNP verifier calls, on both
 * backends. Valid must verify, invalid must not; anything else is a harness error.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nodeCrypto } from '../../attestation/crypto/node.js';
import { nobleCrypto } from '../../attestation/crypto/noble.js';
import { fromHex } from '../../attestation/bytes.js';
import type { CryptoProvider } from '../../attestation/crypto/provider.js';

interface Case { tcId: number; comment: string; msg: string; sig: string; result: string; flags: string[] }
interface Group { publicKeyDer: string; sha?: string; mgfSha?: string; sLen?: number; tests: Case[] }
const load = (name: string) =>
  JSON.parse(readFileSync(fileURLToPath(new URL(`../vectors/wycheproof/${name}`, import.meta.url)), 'utf8')) as {
    testGroups: Group[];
    numberOfTests: number;
  };

function run(file: string, verify: (c: CryptoProvider, spki: Uint8Array, msg: Uint8Array, sig: Uint8Array) => boolean, c: CryptoProvider) {
  const data = load(file);
  let n = 0;
  for (const g of data.testGroups) {
    const spki = fromHex(g.publicKeyDer);
    for (const t of g.tests) {
      let got: boolean;
      try {
        got = verify(c, spki, fromHex(t.msg), fromHex(t.sig));
      } catch (e) {
        // Only key-import failures may throw, and only as our error; Wycheproof keys are all valid.
        throw new Error(`tcId ${t.tcId} (${t.comment}) threw ${(e as Error).message}`);
      }
      if (t.result === 'valid') expect(got, `tcId ${t.tcId} ${t.comment}`).toBe(true);
      else if (t.result === 'invalid') expect(got, `tcId ${t.tcId} ${t.comment}`).toBe(false);
      else if (t.result !== 'acceptable') throw new Error(`unknown test result ${t.result}`);
      n++;
    }
  }
  expect(n).toBe(data.numberOfTests);
}

describe.each([nodeCrypto, nobleCrypto])('Wycheproof on $name', (c) => {
  it('rsa_pss_4096_sha384_mgf1_48 via verifyRsaPssSha384', () => {
    const g = load('rsa_pss_4096_sha384_mgf1_48_test.json').testGroups[0]!;
    expect([g.sha, g.mgfSha, g.sLen]).toEqual(['SHA-384', 'SHA-384', 48]);
    run('rsa_pss_4096_sha384_mgf1_48_test.json', (p, k, m, s) => p.verifyRsaPssSha384(k, m, s), c);
  });
  it('ecdsa_secp384r1_sha384_p1363 via verifyEcdsaP384 (high-S accepted)', () => {
    run('ecdsa_secp384r1_sha384_p1363_test.json', (p, k, m, s) => p.verifyEcdsaP384(k, m, s), c);
  });
});
