/** Shared by the EIF tests: an in-process CLI, temp folders, independent PCR and CRC computations. */
import { PassThrough, Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';

export async function cli(argv: string[]): Promise<{ code: number; out: string; err: string; json: () => any }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  const io: CliIO = { stdout, stderr, stdin: Readable.from([]), env: {}, now: () => new Date('2025-06-01T00:00:00Z') };
  const code = await main(argv, io);
  return { code, out, err, json: () => JSON.parse(out) };
}

export const tmp = (p = 'enclavekit-eif-') => mkdtempSync(join(tmpdir(), p));

const sha384 = (...parts: Uint8Array[]) => {
  const h = createHash('sha384');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** PCR = SHA-384(0^48 ‖ SHA-384(data)), written out here independently of attestation/eif. */
export const expectedPcr = (...data: Uint8Array[]) => sha384(Buffer.alloc(48), sha384(...data)).toString('hex');

/** The EIF CRC-32 (zlib) over every byte but the header's CRC field at 544..548. */
export function expectedCrc(file: Uint8Array): number {
  return crc32(file.subarray(548), crc32(file.subarray(0, 544)));
}

/** Header fields read with Buffer accessors, independently of decodeEifHeader. */
export function readHeader(file: Buffer) {
  const n = file.readUInt16BE(26);
  return {
    magic: file.subarray(0, 4).toString('latin1'),
    version: file.readUInt16BE(4),
    flags: file.readUInt16BE(6),
    mem: Number(file.readBigUInt64BE(8)),
    cpus: Number(file.readBigUInt64BE(16)),
    n,
    offsets: Array.from({ length: n }, (_, i) => Number(file.readBigUInt64BE(28 + 8 * i))),
    sizes: Array.from({ length: n }, (_, i) => Number(file.readBigUInt64BE(28 + 256 + 8 * i))),
    crc: file.readUInt32BE(544),
  };
}

export async function selfSigned(curve: 'P-256' | 'P-384' | 'P-521'): Promise<{ certPem: string; keyPem: string; der: Buffer }> {
  const hash = { 'P-256': 'SHA-256', 'P-384': 'SHA-384', 'P-521': 'SHA-512' }[curve];
  const alg = { name: 'ECDSA', namedCurve: curve, hash };
  const kp = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '0c',
    name: 'CN=enclavekit EIF signer, O=enclavekit tests',
    notBefore: new Date('2025-01-01T00:00:00Z'),
    notAfter: new Date('2035-01-01T00:00:00Z'),
    keys: kp,
    signingAlgorithm: alg,
  });
  const keyDer = Buffer.from(await crypto.subtle.exportKey('pkcs8', kp.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${keyDer.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
  return { certPem: cert.toString('pem'), keyPem, der: Buffer.from(cert.rawData) };
}

export const read = (p: string) => readFileSync(p);
