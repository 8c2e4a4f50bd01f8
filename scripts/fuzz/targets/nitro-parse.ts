/** The Nitro attestation document parser: COSE_Sign1 envelope, the bounded CBOR walk, the payload fields. */
import { parseNitroDocument } from '../../../attestation/index.js';
import { createNitroSimCa, issueNitroDocument } from '../../../attestation/sim/nitro.js';
import { dedupe, nitroVectors } from '../seeds.js';
import type { FuzzTarget } from '../types.js';

const target: FuzzTarget = {
  name: 'nitro-parse',
  description: 'parseNitroDocument (COSE_Sign1 + payload, structure only) on mutated real and simulated documents',
  covers: ['attestation/nitro/parse.ts'],
  format: 'cbor',
  maxLen: 40 * 1024,
  dict: ['module_id', 'digest', 'SHA384', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce'],
  async seeds() {
    const at = new Date('2026-06-01T12:00:00Z');
    const ca = await createNitroSimCa({ now: at });
    const pcrs = new Map([[0, new Uint8Array(48).fill(1)], [1, new Uint8Array(48)], [2, new Uint8Array(48)], [16, new Uint8Array(32).fill(3)], [31, new Uint8Array(64).fill(4)]]);
    const sim = [
      await issueNitroDocument(ca, { moduleId: 'i-0123456789abcdef0-enc0123456789abcdef', timestamp: at, pcrs, publicKey: new Uint8Array(294).fill(5), userData: new Uint8Array(48).fill(6), nonce: new Uint8Array(16).fill(7) }),
      await issueNitroDocument(ca, { moduleId: 'm', timestamp: at, pcrs: new Map([[0, new Uint8Array(48)]]) }, { tagged: true }),
      await issueNitroDocument(ca, { moduleId: 'm', timestamp: at, pcrs, userData: new Uint8Array(0) }, { indefiniteMap: true }),
    ];
    return dedupe([...nitroVectors().map((v) => v.bytes), ...sim]);
  },
  run(input) {
    parseNitroDocument(input);
  },
};
export default target;
