/**
 * The sealed privacy ledger the host hands back (enclave/protocol/seal.ts openLedger): the blob as
 * the host could forge it, and the same bytes sealed under the right key (as if the enclave had
 * sealed them), so the canonical decoding and checks behind the AES-GCM tag are reached too.
 */
import { createCipheriv, hkdfSync } from 'node:crypto';
import { openLedger, sealLedger } from '../../../enclave/protocol/seal.js';
import { encodeCanonical } from '../../../enclave/protocol/cbor.js';
import { DATA_KEYS } from '../seeds.js';
import type { FuzzTarget } from '../types.js';
import { runAllSync } from './_util.js';

const SEAL = new Uint8Array(48).fill(0x5e);
const HEX = Buffer.from(SEAL).toString('hex');

/** The ledger key exactly as seal.ts derives it (HKDF-SHA384 over the sorted data keys, salt = seal digest). */
function ledgerKey(): Buffer {
  const refs = [...DATA_KEYS.keys()].sort();
  return Buffer.from(hkdfSync('sha384', Buffer.concat(refs.map((r) => DATA_KEYS.get(r)!)), SEAL, 'enclavekit-ledger-v1', 32));
}
const KEY = ledgerKey();

function sealPlaintext(pt: Uint8Array): Uint8Array {
  const iv = new Uint8Array(12).fill(1);
  const c = createCipheriv('aes-256-gcm', KEY, iv);
  c.setAAD(Buffer.concat([Buffer.from('enclavekit-ledger-v1'), SEAL]));
  return new Uint8Array(Buffer.concat([iv, c.update(pt), c.final(), c.getAuthTag()]));
}

const target: FuzzTarget = {
  name: 'ledger',
  description: 'openLedger on forged blobs and on arbitrary plaintexts sealed under the right key',
  covers: ['enclave/protocol/seal.ts', 'enclave/protocol/cbor.ts'],
  format: 'cbor',
  maxLen: 4096,
  dict: ['dataset', 'generation', 'spent', HEX],
  seeds: () => [
    encodeCanonical({ v: 1, dataset: HEX, generation: 3, spent: 0.25 }),
    encodeCanonical({ v: 1, dataset: HEX, generation: 0, spent: 0 }),
    sealLedger({ dataset: HEX, generation: 7, spent: 1.5 }, DATA_KEYS, SEAL, (n) => new Uint8Array(n).fill(2)),
  ],
  run(input) {
    runAllSync([() => openLedger(input, DATA_KEYS, SEAL), () => (input.length <= 4096 - 28 ? openLedger(sealPlaintext(input), DATA_KEYS, SEAL) : undefined)]);
  },
};
export default target;
