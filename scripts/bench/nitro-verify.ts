/**
 * `npm run bench -- nitro-verify`: a real AWS document (blocky-1) verified cold (empty certificate
 * cache), warm (chain cached: only the COSE signature is checked), and the floor: the five raw
 * ECDSA P-384 checks the document needs (four certificate links + COSE), made through the same
 * provider in the same run. Runs are interleaved one by one so machine noise hits all three alike.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { decodeEvidenceText } from '../../attestation/bytes.js';
import { nodeCrypto } from '../../attestation/crypto/node.js';
import { nobleCrypto } from '../../attestation/crypto/noble.js';
import type { CryptoProvider } from '../../attestation/crypto/provider.js';
import { verifyNitro } from '../../attestation/index.js';
import { parseNitroDocument } from '../../attestation/nitro/parse.js';
import { sigStructure } from '../../attestation/nitro/cose.js';
import { BoundedChainCache } from '../../attestation/nitro/verify.js';
import { parseCertificate } from '../../attestation/x509/cert.js';
import { derEcdsaToP1363 } from '../../attestation/x509/der.js';
import { fmt, median, timeEach } from './_stats.js';

const FILE = fileURLToPath(new URL('../../test/vectors/nitro/blocky-1.cose', import.meta.url));
const NOW = new Date('2024-09-07T15:00:00Z');

function floorChecks(doc: Uint8Array, crypto: CryptoProvider): () => void {
  const p = parseNitroDocument(doc);
  const path = [...p.cabundle, p.certificate].map(parseCertificate);
  const checks: [Uint8Array, Uint8Array, Uint8Array][] = [];
  for (let i = 1; i < path.length; i++) checks.push([path[i - 1]!.spki, path[i]!.tbs, derEcdsaToP1363(path[i]!.signature!)!]);
  checks.push([path[path.length - 1]!.spki, sigStructure(p.protectedHeader, p.payload), p.signature]);
  return () => {
    for (const [k, m, s] of checks) if (!crypto.verifyEcdsaP384(k, m, s)) throw new Error('floor check failed');
  };
}

function measure(doc: Uint8Array, crypto: CryptoProvider, rounds: number, per: number) {
  const floor = floorChecks(doc, crypto);
  const warmCache = new BoundedChainCache();
  verifyNitro(doc, { now: NOW, crypto, cache: warmCache });
  const cold: number[] = [];
  const warm: number[] = [];
  const fl: number[] = [];
  // Warm-up for the JIT and the provider's key import cache, not recorded.
  for (let i = 0; i < 3; i++) {
    floor();
    verifyNitro(doc, { now: NOW, crypto, cache: new BoundedChainCache() });
  }
  for (let r = 0; r < rounds; r++) {
    fl.push(...timeEach(per, floor));
    cold.push(...timeEach(per, () => verifyNitro(doc, { now: NOW, crypto, cache: new BoundedChainCache() })));
    warm.push(...timeEach(per, () => verifyNitro(doc, { now: NOW, crypto, cache: warmCache })));
  }
  return { cold: median(cold), warm: median(warm), floor: median(fl), n: cold.length };
}

export async function main(): Promise<void> {
  const doc = decodeEvidenceText(new Uint8Array(readFileSync(FILE)));
  console.log(`nitro-verify: blocky-1.cose (${doc.length} bytes, 4 certificate links + COSE ES384), at ${NOW.toISOString()}`);
  const noble = measure(doc, nobleCrypto, 12, 1);
  console.log(`  noble (pure JS, n=${noble.n}):  cold ${fmt(noble.cold / 1000, 2)} ms   warm ${fmt(noble.warm / 1000, 2)} ms   floor ${fmt(noble.floor / 1000, 2)} ms`);
  const m = measure(doc, nodeCrypto, 300, 1);
  const coldVsFloor = m.cold / m.floor;
  const warmSpeedup = m.cold / m.warm;
  console.log(`  node:crypto (n=${m.n}):        cold ${fmt(m.cold / 1000, 2)} ms   warm ${fmt(m.warm / 1000, 2)} ms   floor ${fmt(m.floor / 1000, 2)} ms`);
  console.log(`  cold / floor = ${fmt(coldVsFloor, 2)} (target <= 1.3)   cold / warm = ${fmt(warmSpeedup, 2)} (target >= 4)`);
  console.log(
    `RESULT nitro-verify cold_us=${fmt(m.cold, 0)} warm_us=${fmt(m.warm, 0)} floor_us=${fmt(m.floor, 0)} cold_vs_floor=${fmt(coldVsFloor, 2)} warm_speedup=${fmt(warmSpeedup, 2)}`,
  );
}
