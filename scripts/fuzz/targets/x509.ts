/**
 * The strict X.509 reader and path validator the Nitro verifier uses (attestation/x509/*): a mutated
 * certificate is parsed, its signature converted from DER, and then it takes the place of the
 * certificate with the same subject in a real chain, which is validated at that chain's time; in the
 * simulated chain it is also signed again by its issuer, so the path rules see the mutated fields.
 * CertParseError, DerError and PathError are this module's documented errors (the verifier turns
 * them into ERR_NITRO_CHAIN_INVALID); anything else is a finding.
 */
import { KeyObject, sign } from 'node:crypto';
import { nodeCrypto, parseNitroDocument, toHex } from '../../../attestation/index.js';
import { awsNitroRootG1 } from '../../../attestation/nitro/roots.js';
import { CertParseError, decodeOid, parseCertificate, type CertFacts } from '../../../attestation/x509/cert.js';
import { DerError, children, derEcdsaToP1363, readTlv } from '../../../attestation/x509/der.js';
import { PathError, validatePath } from '../../../attestation/x509/path.js';
import { createNitroSimCa, issueNitroDocument } from '../../../attestation/sim/nitro.js';
import { concat, dedupe, nitroVectors } from '../seeds.js';
import type { FuzzTarget } from '../types.js';
import { derHead } from '../structure.js';
import { runAllSync } from './_util.js';

interface Place {
  path: Uint8Array[];
  index: number;
  at: number;
  /** Private keys along a simulated path: its certificates are also checked re-signed by their issuer. */
  keys?: KeyObject[];
}

const ECDSA_SHA384 = Uint8Array.of(0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03);

/** The certificate with its TBS signed again: SEQUENCE { tbs, ecdsa-with-SHA384, BIT STRING }. */
function resign(tbs: Uint8Array, key: KeyObject): Uint8Array {
  const sig = sign('sha384', tbs, { key, dsaEncoding: 'der' });
  const bits = concat([derHead(0x03, sig.length + 1), Uint8Array.of(0), sig]);
  const body = concat([tbs, ECDSA_SHA384, bits]);
  return concat([derHead(0x30, body.length), body]);
}
interface Ctx {
  certs: Uint8Array[];
  bySubject: Map<string, Place>;
  /** Every position of the simulated path (for certificates whose subject no longer matches). */
  simPlaces: Place[];
}

const target: FuzzTarget<Ctx> = {
  name: 'x509',
  description: 'parseCertificate, DER TLV reader, ECDSA-Sig-Value conversion and validatePath with the certificate swapped into a real chain',
  covers: ['attestation/x509/cert.ts', 'attestation/x509/der.ts', 'attestation/x509/path.ts'],
  format: 'der',
  maxLen: 4096,
  async setup() {
    const certs: Uint8Array[] = [awsNitroRootG1()];
    const bySubject = new Map<string, Place>();
    const simPlaces: Place[] = [];
    const addPath = (path: Uint8Array[], at: number, keys?: KeyObject[]) => {
      path.forEach((der, index) => {
        certs.push(der);
        try {
          const key = toHex(parseCertificate(der).subjectDer);
          const place: Place = { path, index, at, ...(keys ? { keys } : {}) };
          if (!bySubject.has(key) || keys) bySubject.set(key, place);
          if (keys) simPlaces.push(place);
        } catch {
          // a vector with a malformed certificate is still a seed
        }
      });
    };
    for (const v of nitroVectors()) {
      try {
        const d = parseNitroDocument(v.bytes);
        addPath([...d.cabundle, d.certificate], d.timestamp);
      } catch {
        // unparseable vectors are seeds for the other targets
      }
    }
    const at = new Date('2026-06-01T12:00:00Z');
    const ca = await createNitroSimCa({ now: at });
    await issueNitroDocument(ca, { moduleId: 'm', timestamp: at, pcrs: new Map([[0, new Uint8Array(48)]]) });
    const levels = [ca.certs.root, ca.certs.regional, ca.certs.zonal, ca.certs.instance, ca.leaf!];
    addPath(levels.map((c) => c.der), at.getTime(), levels.map((c) => KeyObject.from(c.keys.privateKey)));
    return { certs: dedupe(certs), bySubject, simPlaces };
  },
  seeds: (ctx) => ctx.certs,
  allowed: (e) => e instanceof CertParseError || e instanceof DerError || e instanceof PathError,
  run(input, ctx) {
    let parsed: CertFacts | undefined;
    // Steps run in order, each even when the one before refused (runAllSync).
    const place = (): Place => (parsed && ctx.bySubject.get(toHex(parsed.subjectDer))) ?? ctx.simPlaces[input.length % ctx.simPlaces.length]!;
    runAllSync(
      [
        () => {
          // The raw TLV walk (it throws DerError).
          const top = readTlv(input, 0);
          if (top.tag & 0x20) for (const c of children(input, top)) if (c.tag === 0x06) decodeOid(input.subarray(c.valueStart, c.end));
        },
        () => {
          parsed = parseCertificate(input);
          if (parsed.signature) derEcdsaToP1363(parsed.signature);
        },
        () => {
          // In place of the certificate with the same subject in a chain; otherwise (or unparseable)
          // at some position of the simulated chain, so the path validator sees every input.
          const p = place();
          const path = p.path.slice();
          path[p.index] = input;
          validatePath(path, p.at, nodeCrypto, undefined);
        },
        () => {
          // Signed again by its issuer (the root by itself), the mutated certificate gets past the
          // signature to the name, validity, basicConstraints, keyUsage and pathLen rules.
          const p = place();
          if (parsed === undefined || p.keys === undefined) return;
          const again = p.path.slice();
          again[p.index] = resign(parsed.tbs, p.keys[Math.max(0, p.index - 1)]!);
          validatePath(again, p.at, nodeCrypto, undefined);
        },
      ],
      target.allowed,
    );
  },
};
export default target;
