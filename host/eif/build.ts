/**
 * Write an EIF (version 4) laid out exactly as AWS's builder lays it out (aws-nitro-enclaves-image-format
 * `EifBuilder::write_to`): header, kernel, cmdline, metadata, ramdisks in the order given, then the
 * signature when a certificate and key are given. Same header fields (1 GiB, 2 vCPUs, flags from the
 * arch), same CRC, same PCRs.
 *
 * Two passes over the inputs, never holding them in memory: the first measures (PCR0 must be known
 * before the signature, whose size is in the header the CRC starts with), the second writes and
 * computes the CRC, then the header is written again with it. Deterministic: the signature is ECDSA
 * with RFC 6979 nonces (@noble/curves), so the same inputs give the same bytes.
 */
import { closeSync, openSync, renameSync, rmSync, writeSync, statSync } from 'node:fs';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import {
  EIF_HEADER_SIZE,
  EifMeasurer,
  certificatePcr,
  ecPublicKey,
  eifHeaderFor,
  eifSectionOrder,
  encodeCoseSign1,
  encodeEifHeader,
  encodeEifMetadata,
  encodeSectionHeader,
  encodeSignatureSection,
  firstPemCertificate,
  pcrSignatureToBeSigned,
  EIF_CRC_OFFSET,
  type CoseAlg,
  type EifArch,
  type EifIdentityInfo,
  type EifPcrs,
  type EifSectionName,
} from '../../attestation/eif/index.js';
import { parseCertificate } from '../../attestation/x509/cert.js';
import { equalBytes } from '../../attestation/bytes.js';
import { isToolkitError } from '../../attestation/errors.js';
import { UsageError } from '../cli/io.js';
import { FileSource, nodeCrc32, nodeSha384 } from './io.js';

export interface BuildEifOptions {
  kernel: string;
  cmdline: string;
  /** The bootstrap ramdisk first (PCR1), then the application ramdisks (PCR2). */
  ramdisks: readonly string[];
  out: string;
  arch: EifArch;
  metadata: EifIdentityInfo;
  /** PEM certificate and PEM private key (EC P-256, P-384 or P-521) to sign PCR0 with. */
  sign?: { certificatePem: Uint8Array; privateKeyPem: Uint8Array };
}

export interface BuiltEif {
  pcrs: EifPcrs;
  size: number;
  crc32: number;
  sections: { type: EifSectionName; size: number }[];
}

/** The private key's scalar and COSE algorithm, checked against the certificate's public key. */
function signingKey(certificatePem: Uint8Array, privateKeyPem: Uint8Array): { der: Uint8Array; alg: CoseAlg; secret: Uint8Array } {
  let der: Uint8Array;
  let spki: Uint8Array;
  try {
    der = firstPemCertificate(certificatePem);
    spki = parseCertificate(der).spki;
  } catch (e) {
    throw new UsageError(`--sign-cert: ${(e as Error).message}`);
  }
  let alg: CoseAlg;
  try {
    alg = ecPublicKey(spki).alg;
  } catch (e) {
    throw new UsageError(`--sign-cert: ${isToolkitError(e) ? e.message : 'not an EC certificate'}`);
  }
  let jwk: { d?: string; crv?: string };
  let pub: Uint8Array;
  try {
    const key = createPrivateKey({ key: Buffer.from(privateKeyPem), format: 'pem' });
    jwk = key.export({ format: 'jwk' }) as { d?: string; crv?: string };
    pub = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }));
  } catch (e) {
    throw new UsageError(`--sign-key: not a PEM private key (${(e as Error).message})`);
  }
  if (jwk.d === undefined) throw new UsageError('--sign-key: not an EC private key');
  if (!equalBytes(pub, spki)) throw new UsageError('--sign-key does not belong to the --sign-cert certificate');
  return { der, alg, secret: new Uint8Array(Buffer.from(jwk.d, 'base64url')) };
}

const CURVES = { ES256: p256, ES384: p384, ES512: p521 } as const;

function fileSize(path: string, label: string): number {
  let s;
  try {
    s = statSync(path);
  } catch (e) {
    throw new UsageError(`${label} ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (!s.isFile()) throw new UsageError(`${label} ${path} is not a regular file`);
  return s.size;
}

export function buildEif(o: BuildEifOptions): BuiltEif {
  if (o.ramdisks.length === 0) throw new UsageError('at least one --ramdisk is required (the first is the bootstrap ramdisk)');
  if (o.ramdisks.length > 28) throw new UsageError('at most 28 ramdisks fit the 32 sections of an EIF');
  if (o.cmdline.includes('\0')) throw new UsageError('--cmdline must not contain a NUL character');
  const cmdline = new TextEncoder().encode(o.cmdline);
  const inputs: { path: string; label: string; part: 'boot' | 'app' }[] = [
    { path: o.kernel, label: '--kernel', part: 'boot' },
    ...o.ramdisks.map((path, i) => ({ path, label: '--ramdisk', part: (i === 0 ? 'boot' : 'app') as 'boot' | 'app' })),
  ];
  for (const x of inputs) fileSize(x.path, x.label);
  const key = o.sign ? signingKey(o.sign.certificatePem, o.sign.privateKeyPem) : undefined;

  // Pass 1: measure (kernel, cmdline, ramdisks in that order, as EifBuilder::measure does).
  const measurer = new EifMeasurer(nodeSha384);
  const sizes: number[] = [];
  const measureFile = (x: (typeof inputs)[number]) => {
    const f = new FileSource(x.path, `${x.label} ${x.path}`);
    try {
      sizes.push(f.size);
      f.forEachChunk(0, f.size, (c) => measurer.update(x.part, c));
    } finally {
      f.close();
    }
  };
  measureFile(inputs[0]!);
  measurer.update('boot', cmdline);
  for (const x of inputs.slice(1)) measureFile(x);
  const pcrs = measurer.pcrs();

  let signature: Uint8Array | undefined;
  if (key !== undefined) {
    pcrs[8] = certificatePcr(key.der, nodeSha384);
    const { protectedHeader, payload, toBeSigned } = pcrSignatureToBeSigned(key.alg, 0, pcrs[0]);
    const sig = CURVES[key.alg].sign(toBeSigned, key.secret, { lowS: false });
    signature = encodeSignatureSection(o.sign!.certificatePem, encodeCoseSign1(protectedHeader, payload, sig));
  }
  const metadata = encodeEifMetadata(o.metadata);
  const sections = eifSectionOrder({ kernel: sizes[0]!, cmdline: cmdline.length, metadata: metadata.length, ramdisks: sizes.slice(1), ...(signature ? { signature: signature.length } : {}) });
  const header = encodeEifHeader(eifHeaderFor(sections, { arch: o.arch }));

  // Pass 2: write to a temporary file beside the output, CRC as we go, then the header with the CRC.
  const tmp = `${o.out}.tmp-${process.pid}`;
  let fd: number;
  try {
    fd = openSync(tmp, 'w', 0o644);
  } catch (e) {
    throw new UsageError(`--out ${o.out}: ${(e as Error).message}`);
  }
  let crc = nodeCrc32(header.subarray(0, EIF_CRC_OFFSET));
  let at = 0;
  const put = (b: Uint8Array) => {
    let done = 0;
    while (done < b.length) done += writeSync(fd, b, done, b.length - done, at + done);
    at += b.length;
  };
  const putData = (b: Uint8Array) => {
    crc = nodeCrc32(b, crc);
    put(b);
  };
  try {
    put(header);
    const copyFile = (path: string, label: string, expected: number) => {
      const f = new FileSource(path, `${label} ${path}`);
      try {
        if (f.size !== expected) throw new UsageError(`${label} ${path} changed size while the image was being built`);
        f.forEachChunk(0, f.size, putData);
      } finally {
        f.close();
      }
    };
    putData(encodeSectionHeader('kernel', sizes[0]!));
    copyFile(o.kernel, '--kernel', sizes[0]!);
    putData(encodeSectionHeader('cmdline', cmdline.length));
    putData(cmdline);
    putData(encodeSectionHeader('metadata', metadata.length));
    putData(metadata);
    o.ramdisks.forEach((path, i) => {
      putData(encodeSectionHeader('ramdisk', sizes[i + 1]!));
      copyFile(path, '--ramdisk', sizes[i + 1]!);
    });
    if (signature) {
      putData(encodeSectionHeader('signature', signature.length));
      putData(signature);
    }
    const final = new Uint8Array(4);
    new DataView(final.buffer).setUint32(0, crc);
    writeSync(fd, final, 0, 4, EIF_CRC_OFFSET);
    closeSync(fd);
    renameSync(tmp, o.out);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tmp, { force: true });
    throw e;
  }
  if (at < EIF_HEADER_SIZE) throw new Error('unreachable');
  return { pcrs, size: at, crc32: crc, sections };
}
