/**
 * AMD's certificates and CRLs (attestation/sevsnp/cert.ts, @peculiar/asn1-x509 behind a strict TBS
 * reader): parseAmdCert, parseAmdCrl, PEM/DER detection, and the CRL check inside verifySevSnp (the
 * input as the CRL of a simulated chain, verified under its ARK).
 */
import { certBytes, parseAmdCert, parseAmdCrl, pemToDer, verifySevSnp } from '../../../attestation/index.js';
import { amdCertificates, simSnp, type SimSnp } from '../seeds.js';
import type { FuzzTarget } from '../types.js';
import { runAllSync } from './_util.js';

const latin1 = new TextDecoder('latin1');

const target: FuzzTarget<SimSnp> = {
  name: 'amd-cert',
  description: 'parseAmdCert, parseAmdCrl, certBytes/pemToDer and the CRL path of verifySevSnp on mutated ARK/ASK/ASVK/VCEK/VLEK and CRLs',
  covers: ['attestation/sevsnp/cert.ts', 'attestation/sevsnp/verify.ts'],
  format: 'der',
  maxLen: 8192,
  dict: ['-----BEGIN CERTIFICATE-----', '-----END CERTIFICATE-----', '-----BEGIN X509 CRL-----', '-----END X509 CRL-----'],
  setup: () => simSnp(),
  seeds: (sim) => [...amdCertificates(), sim.chain.ark.der, sim.chain.ask.der, sim.chain.vcek.der, sim.chain.vlek.der, sim.crl, sim.revokingCrl],
  run(input, sim) {
    runAllSync([
      () => parseAmdCert(input),
      () => parseAmdCrl(input),
      () => certBytes(input, 'vcek'),
      () => pemToDer(latin1.decode(input.subarray(0, 4096)), input[0]! & 1 ? 'X509 CRL' : 'CERTIFICATE'),
      () => verifySevSnp(sim.vcekReport, { vcek: sim.chain.vcek.der, ask: sim.chain.ask.der }, { now: sim.at, cache: false, simulatorRoots: [sim.chain.ark.der], crl: input }),
    ]);
  },
};
export default target;
