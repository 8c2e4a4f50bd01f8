// The verified-certificate cache must not hold views into the caller's buffer. parseCertificate
// returned `spki`, `tbs` and the names as subarrays of the document the caller passed, and the cache
// kept them: a caller that reuses (or wipes) its read buffer after a verification changed what the
// cache believed a certified key to be. With attacker bytes landing where a genuine AWS leaf key had
// been, a document signed by the attacker's own key verified under the real AWS root.
import { describe, expect, it } from 'vitest';
import { generateKeyPairSync, sign } from 'node:crypto';
import { verifyNitro, BoundedChainCache } from '../../attestation/index.js';
import { parseNitroDocument } from '../../attestation/nitro/parse.js';
import { parseCertificate } from '../../attestation/x509/cert.js';
import { PROTECTED_ES384, sigStructure } from '../../attestation/nitro/cose.js';
import { encodeCoseSign1, encodeNitroPayload } from '../../attestation/sim/nitro.js';
import { AttestationError } from '../../attestation/errors.js';
import { loadDoc } from '../nitro/helpers.js';

const FILE = 'evervault-1.cose';
const NOW = new Date('2022-10-13T09:00:00Z');

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

describe('Nitro chain cache and caller buffers', () => {
  it('a reused read buffer cannot swap the cached leaf key for an attacker key', () => {
    const genuine = loadDoc(FILE);
    const buf = new Uint8Array(genuine); // the caller's read buffer
    const cache = new BoundedChainCache(16);
    expect(verifyNitro(buf, { now: NOW, cache, allowDebug: true }).platform).toBe('nitro');

    // The caller reads the next request into the same buffer; the attacker's key lands where the
    // genuine leaf's SubjectPublicKeyInfo was.
    const p = parseNitroDocument(genuine);
    const leafSpki = parseCertificate(new Uint8Array(p.certificate)).spki;
    const at = indexOf(buf, leafSpki);
    expect(at).toBeGreaterThan(0);
    const attacker = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const attackerSpki = new Uint8Array(attacker.publicKey.export({ type: 'spki', format: 'der' }));
    expect(attackerSpki.length).toBe(leafSpki.length);
    buf.set(attackerSpki, at);

    // A forged document: the genuine AWS chain, attacker-chosen PCRs, signed by the attacker's key.
    const payload = encodeNitroPayload(
      { moduleId: p.moduleId, timestamp: new Date(p.timestamp), pcrs: new Map([[0, new Uint8Array(48).fill(0x41)], [1, new Uint8Array(48).fill(0x42)], [2, new Uint8Array(48).fill(0x43)]]) },
      new Uint8Array(p.certificate),
      p.cabundle.map((c) => new Uint8Array(c)),
    );
    const sig = new Uint8Array(sign('sha384', sigStructure(PROTECTED_ES384, payload), { key: attacker.privateKey, dsaEncoding: 'ieee-p1363' }));
    const forged = encodeCoseSign1(PROTECTED_ES384, payload, sig);

    let err: unknown;
    try {
      verifyNitro(forged, { now: NOW, cache });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AttestationError);
    expect((err as AttestationError).code).toBe('ERR_NITRO_SIGNATURE_INVALID');
  });

  it('a caller wiping its buffer after verification does not break later verifications', () => {
    const buf = new Uint8Array(loadDoc(FILE));
    const cache = new BoundedChainCache(16);
    verifyNitro(buf, { now: NOW, cache, allowDebug: true });
    buf.fill(0);
    expect(verifyNitro(loadDoc(FILE), { now: NOW, cache, allowDebug: true }).platform).toBe('nitro');
  });

  it('parseCertificate results do not alias the input', () => {
    const p = parseNitroDocument(loadDoc(FILE));
    const der = new Uint8Array(p.certificate);
    const c = parseCertificate(der);
    const spki = new Uint8Array(c.spki);
    der.fill(0);
    expect(c.spki).toEqual(spki);
  });
});
