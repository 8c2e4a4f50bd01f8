/**
 * `npm run bench -- snp-verify`: a real Genoa report (oak-2, v5) with its VCEK and the built-in AMD
 * roots, verified cold (a fresh chain cache: ARK self-signature, ASK and VCEK links re-verified),
 * warm (chain cached: only the report's ECDSA signature is checked) and the floor: the raw signature
 * checks a report needs (3 RSASSA-PSS SHA-384 links + the report's ECDSA P-384), made through the same
 * provider in the same run. Runs are interleaved one by one so machine noise hits all three alike.
 * Certificate parsing is memoised by DER hash inside the verifier in both cold and warm runs; the
 * first-ever verification (parse included) is printed separately.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nodeCrypto } from '../../attestation/crypto/node.js';
import { nobleCrypto } from '../../attestation/crypto/noble.js';
import type { CryptoProvider } from '../../attestation/crypto/provider.js';
import { verifySevSnpWith, SnpChainCache } from '../../attestation/sevsnp/verify.js';
import { parseSnpReport } from '../../attestation/sevsnp/abi.js';
import { parseAmdCert } from '../../attestation/sevsnp/cert.js';
import { amdRoots } from '../../attestation/sevsnp/roots.js';
import { fmt, median, timeEach } from './_stats.js';

const vec = (n: string) => new Uint8Array(readFileSync(fileURLToPath(new URL(`../../test/vectors/sev-snp/${n}`, import.meta.url))));
const NOW = new Date('2025-09-01T00:00:00Z');

function floorChecks(report: Uint8Array, vcekDer: Uint8Array, crypto: CryptoProvider): () => void {
  const r = parseSnpReport(report);
  const ark = parseAmdCert(amdRoots().Genoa.ark);
  const ask = parseAmdCert(amdRoots().Genoa.ask);
  const vcek = parseAmdCert(vcekDer);
  const links: [Uint8Array, Uint8Array, Uint8Array][] = [
    [ark.spki, ark.tbs, ark.signature],
    [ark.spki, ask.tbs, ask.signature],
    [ask.spki, vcek.tbs, vcek.signature],
  ];
  return () => {
    for (const [k, m, s] of links) if (!crypto.verifyRsaPssSha384(k, m, s)) throw new Error('floor link failed');
    if (!crypto.verifyEcdsaP384(vcek.spki, r.signedBytes, r.signatureP1363)) throw new Error('floor report signature failed');
  };
}

function measure(report: Uint8Array, vcek: Uint8Array, crypto: CryptoProvider, rounds: number) {
  const floor = floorChecks(report, vcek, crypto);
  const verify = (cache: SnpChainCache) => verifySevSnpWith(report, { vcek }, { now: NOW, crypto, cache }, crypto);
  const warmCache = new SnpChainCache();
  verify(warmCache);
  for (let i = 0; i < 5; i++) {
    floor();
    verify(new SnpChainCache());
    verify(warmCache);
  }
  const cold: number[] = [];
  const warm: number[] = [];
  const fl: number[] = [];
  for (let r = 0; r < rounds; r++) {
    fl.push(...timeEach(1, floor));
    cold.push(...timeEach(1, () => verify(new SnpChainCache())));
    warm.push(...timeEach(1, () => verify(warmCache)));
  }
  return { cold: median(cold), warm: median(warm), floor: median(fl), n: cold.length };
}

export async function main(): Promise<void> {
  const report = vec('oak-2.report.bin');
  const vcek = vec('oak-2.vcek.der');
  console.log(`snp-verify: oak-2 (Genoa, report v5, VCEK; ARK -> ASK -> VCEK RSA-PSS links + ECDSA P-384), at ${NOW.toISOString()}`);
  const t0 = process.hrtime.bigint();
  verifySevSnpWith(report, { vcek }, { now: NOW, cache: false }, nodeCrypto);
  console.log(`  first verification in this process (parse + chain + signature): ${fmt(Number(process.hrtime.bigint() - t0) / 1e6, 2)} ms`);
  const noble = measure(report, vcek, nobleCrypto, 12);
  console.log(`  noble (pure JS, n=${noble.n}):  cold ${fmt(noble.cold / 1000, 2)} ms   warm ${fmt(noble.warm / 1000, 2)} ms   floor ${fmt(noble.floor / 1000, 2)} ms`);
  const m = measure(report, vcek, nodeCrypto, 300);
  const coldVsFloor = m.cold / m.floor;
  const warmSpeedup = m.cold / m.warm;
  console.log(`  node:crypto (n=${m.n}):        cold ${fmt(m.cold / 1000, 3)} ms   warm ${fmt(m.warm / 1000, 3)} ms   floor ${fmt(m.floor / 1000, 3)} ms`);
  console.log(`  cold / floor = ${fmt(coldVsFloor, 2)} (target <= 1.3)   cold / warm = ${fmt(warmSpeedup, 2)} (target >= 1.25)`);
  console.log(
    `RESULT snp-verify cold_us=${fmt(m.cold, 0)} warm_us=${fmt(m.warm, 0)} floor_us=${fmt(m.floor, 0)} cold_vs_floor=${fmt(coldVsFloor, 2)} warm_speedup=${fmt(warmSpeedup, 2)}`,
  );
}
