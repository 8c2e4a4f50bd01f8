/**
 * The whole Nitro verifier: parse, chain to a pinned root (AWS's, or a simulator root passed in),
 * the leaf's ES384 signature, then a policy. Each input is verified at its own timestamp, so mutations
 * that keep the document parseable reach the chain and signature checks.
 */
import { KeyObject, sign } from 'node:crypto';
import { equalBytes, parseNitroDocument, toHex, verifyNitro, type NitroPolicy } from '../../../attestation/index.js';
import { sigStructure } from '../../../attestation/nitro/cose.js';
import { createNitroSimCa, issueNitroDocument } from '../../../attestation/sim/nitro.js';
import { dedupe, nitroVectors } from '../seeds.js';
import type { FuzzTarget } from '../types.js';
import { runAllSync } from './_util.js';

interface Ctx {
  simRoot: Uint8Array;
  leafDer: Uint8Array;
  leafKey: KeyObject;
  docs: Uint8Array[];
  policies: (NitroPolicy | undefined)[];
}

const target: FuzzTarget<Ctx> = {
  name: 'nitro-verify',
  description: 'verifyNitro (parse, chain, ES384 signature, policy) at each document\'s own time',
  covers: ['attestation/nitro/verify.ts', 'attestation/nitro/policy.ts', 'attestation/nitro/cose.ts', 'attestation/x509/path.ts', 'attestation/x509/cert.ts', 'attestation/x509/der.ts', 'attestation/crypto/node.ts'],
  format: 'cbor',
  maxLen: 40 * 1024,
  dict: ['module_id', 'digest', 'SHA384', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce'],
  async setup() {
    const at = new Date('2026-06-01T12:00:00Z');
    const ca = await createNitroSimCa({ now: at });
    const pcrs = new Map([[0, new Uint8Array(48).fill(1)], [1, new Uint8Array(48).fill(2)], [2, new Uint8Array(48).fill(3)], [4, new Uint8Array(48).fill(4)]]);
    const docs = [
      await issueNitroDocument(ca, { moduleId: 'i-0123456789abcdef0-enc0123456789abcdef', timestamp: at, pcrs, publicKey: new Uint8Array(294).fill(5), userData: new Uint8Array(48).fill(6), nonce: new Uint8Array(16).fill(7) }),
      await issueNitroDocument(ca, { moduleId: 'm', timestamp: at, pcrs: new Map([[0, new Uint8Array(48)], [1, new Uint8Array(48)], [2, new Uint8Array(48)]]) }, { tagged: true, indefiniteMap: true }),
    ];
    const real = nitroVectors()[0]!.bytes;
    const pcr0 = toHex(parseNitroDocument(real).pcrs.get(0)!);
    const policies: (NitroPolicy | undefined)[] = [
      undefined,
      { pcrs: { 0: pcr0, PCR1: [pcr0, '00'.repeat(48)] }, maxAgeSeconds: 300 },
      { pcrs: { 0: toHex(pcrs.get(0)!) }, nonce: '07'.repeat(16), userData: '06'.repeat(48), publicKey: '05'.repeat(294) },
    ];
    return {
      simRoot: ca.rootDer,
      leafDer: ca.leaf!.der,
      leafKey: KeyObject.from(ca.leaf!.keys.privateKey),
      docs,
      policies,
    };
  },
  seeds: (ctx) => dedupe([...nitroVectors().map((v) => v.bytes), ...ctx.docs]),
  run(input, ctx) {
    // Verify at the document's own time; a document that does not parse is refused right here.
    const p = parseNitroDocument(input);
    const opts = { now: new Date(p.timestamp), simulatorRoots: [ctx.simRoot], allowDebug: (input.length & 1) === 0, cache: false as const, policy: ctx.policies[input.length % 3] };
    const steps = [() => verifyNitro(input, opts)];
    // A document of the simulated leaf is also checked signed again (the signature is the last 96
    // bytes), so mutated claims reach the chain, validity and policy checks.
    if (equalBytes(p.certificate, ctx.leafDer)) {
      const again = input.slice();
      again.set(sign('sha384', sigStructure(p.protectedHeader, p.payload), { key: ctx.leafKey, dsaEncoding: 'ieee-p1363' }), again.length - 96);
      steps.push(() => verifyNitro(again, opts));
    }
    runAllSync(steps);
  },
};
export default target;
