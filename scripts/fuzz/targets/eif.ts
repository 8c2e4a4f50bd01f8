/**
 * Enclave Image Format files (attestation/eif, written by another engineer at the same time as this
 * target): describeEif over the whole file (header, section table walk, section order, CRC, PCR
 * measurement, the signature section's CBOR and COSE_Sign1 with its PEM certificate, the metadata
 * JSON). Seeds are small images the project's own builder (host/eif/build.ts) writes, unsigned and
 * signed with a P-384 certificate, for x86_64 and aarch64.
 */
import 'reflect-metadata';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { nodeCrypto } from '../../../attestation/index.js';
import { bytesSource, describeEif, parseJsonTree } from '../../../attestation/eif/index.js';
import { buildEif } from '../../../host/eif/build.js';
import type { FuzzTarget } from '../types.js';

async function selfSigned(): Promise<{ certPem: string; keyPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
  const kp = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '0c',
    name: 'CN=enclavekit fuzz EIF signer',
    notBefore: new Date('2025-01-01T00:00:00Z'),
    notAfter: new Date('2035-01-01T00:00:00Z'),
    keys: kp,
    signingAlgorithm: alg,
  });
  const keyDer = Buffer.from(await crypto.subtle.exportKey('pkcs8', kp.privateKey));
  return { certPem: cert.toString('pem'), keyPem: `-----BEGIN PRIVATE KEY-----\n${keyDer.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n` };
}

const target: FuzzTarget<Uint8Array[]> = {
  name: 'eif',
  description: 'describeEif (header, section table, order, CRC, PCRs, signature section CBOR/COSE/PEM, metadata JSON) on mutated small EIFs',
  covers: ['attestation/eif/describe.ts', 'attestation/eif/format.ts', 'attestation/eif/signature.ts', 'attestation/eif/verify-signature.ts', 'attestation/eif/metadata.ts', 'attestation/eif/pcrs.ts'],
  format: 'bytes',
  maxLen: 32 * 1024,
  dict: ['.eif', 'signing_certificate', 'signature', 'register_index', 'register_value', 'ImageName', 'ImageVersion', 'BuildMetadata', 'DockerInfo', 'CustomMetadata', '-----BEGIN CERTIFICATE-----'],
  async setup() {
    const dir = mkdtempSync(join(tmpdir(), 'enclavekit-fuzz-eif-'));
    try {
      writeFileSync(join(dir, 'k'), Buffer.alloc(300, 7));
      writeFileSync(join(dir, 'r0'), Buffer.alloc(100, 1));
      writeFileSync(join(dir, 'r1'), Buffer.alloc(200, 2));
      const { certPem, keyPem } = await selfSigned();
      const metadata = {
        imageName: 'fuzz',
        imageVersion: '1.0',
        buildInfo: { buildTime: '2026-06-01T00:00:00Z', buildTool: 'enclavekit', buildToolVersion: '0.1.0', operatingSystem: 'linux', kernelVersion: '6.1' },
        dockerInfo: null,
        customMetadata: parseJsonTree('{"team":"fuzz","n":[1,2.5e10,-0.001,true,null,"é"]}'),
      };
      const out: Uint8Array[] = [];
      const build = (name: string, o: Partial<Parameters<typeof buildEif>[0]>) => {
        buildEif({ kernel: join(dir, 'k'), cmdline: 'console=ttyS0 reboot=k', ramdisks: [join(dir, 'r0'), join(dir, 'r1')], out: join(dir, name), arch: 'x86_64', metadata, ...o });
        out.push(new Uint8Array(readFileSync(join(dir, name))));
      };
      build('plain.eif', {});
      build('signed.eif', { sign: { certificatePem: Buffer.from(certPem), privateKeyPem: Buffer.from(keyPem) } });
      build('arm.eif', { arch: 'aarch64', ramdisks: [join(dir, 'r0')], cmdline: '' });
      return out;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  seeds: (eifs) => eifs,
  run(input) {
    describeEif(bytesSource(input), { crypto: nodeCrypto, chunkSize: 4096 });
  },
};
export default target;
