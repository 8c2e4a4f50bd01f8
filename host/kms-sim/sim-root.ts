/**
 * Where the host finds the simulator roots it may trust explicitly: the simulated Nitro CA
 * (`sim-ca.json`, exportNitroSimCa) and the simulated AMD chain (`sim-snp.json`, exportSnpSimChain)
 * in the shared state folder, or a PEM file given explicitly. Only the root certificates are read;
 * the private keys beside them are never loaded here.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensurePrivateDir, publishOnce, stateError } from './state-files.js';
import { ToolkitError } from '../../attestation/errors.js';
import { createNitroSimCa, exportNitroSimCa } from '../../attestation/sim/nitro.js';

export const SIM_CA_FILE = 'sim-ca.json';
export const SIM_SNP_FILE = 'sim-snp.json';
export const SIM_ROOT_PEM = 'sim-root.pem';
/** As enclave/sim-state.ts: intermediates outlive a CI cache or a developer's week. */
const INTERMEDIATE_LIFETIME_MS = 5 * 365 * 24 * 3_600_000;
const MAX_FILE = 1 << 20;


function checkRoot(der: Uint8Array, where: string): Uint8Array {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (e) {
    throw stateError(`${where}: not a certificate`, undefined, e);
  }
  if (!cert.ca || !cert.checkIssued(cert)) throw stateError(`${where}: not a self-signed CA certificate`);
  return der;
}

async function readBounded(path: string): Promise<Buffer> {
  const b = await readFile(path);
  if (b.length > MAX_FILE) throw stateError(`${path}: file too large`);
  return b;
}

/**
 * A simulator root from one file of a state folder (format: enclave/sim-state.ts), or undefined when
 * the file does not exist. Only the root certificate is read, never the private keys beside it.
 */
async function readRootFromStateFile(
  dir: string,
  file: string,
  format: string,
  pick: (j: Record<string, unknown>) => unknown,
  what: string,
): Promise<Uint8Array | undefined> {
  const path = join(dir, file);
  let text: Buffer;
  try {
    text = await readBounded(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e instanceof ToolkitError ? e : stateError(`cannot read ${path}`, 'read', e);
  }
  let j: unknown;
  try {
    j = JSON.parse(text.toString('utf8'));
  } catch (e) {
    throw stateError(`${path}: not valid JSON`, 'corrupt', e);
  }
  const o = typeof j === 'object' && j !== null ? (j as Record<string, unknown>) : undefined;
  const der = o === undefined ? undefined : pick(o);
  if (o?.format !== format || typeof der !== 'string') throw stateError(`${path}: not ${what}`, 'corrupt');
  return checkRoot(new Uint8Array(Buffer.from(der, 'base64')), path);
}

type Json = Record<string, unknown> | undefined;
const field = (o: unknown, k: string): Json => (typeof o === 'object' && o !== null ? ((o as Record<string, unknown>)[k] as Json) : undefined);

/** The Nitro simulator root from `<dir>/sim-ca.json`, or undefined when that file does not exist. */
export function readSimulatorRootFromState(dir: string): Promise<Uint8Array | undefined> {
  return readRootFromStateFile(dir, SIM_CA_FILE, 'enclavekit-nitro-sim-ca', (j) => field(field(j.certs, 'root'), 'der'), 'a Nitro simulator CA export');
}

/**
 * The simulated AMD root (ARK, DER) from `<dir>/sim-snp.json`, or undefined when that file does not
 * exist. Like the Nitro simulator root, it is trusted only where a caller passes it explicitly.
 */
export function readSnpSimulatorRootFromState(dir: string): Promise<Uint8Array | undefined> {
  return readRootFromStateFile(dir, SIM_SNP_FILE, 'enclavekit-snp-sim-chain', (j) => field(j.certs, 'ark'), 'an SEV-SNP simulator chain');
}

/** Every certificate in a PEM file (at least one), each checked to be a self-signed CA. */
export async function readRootsPem(path: string): Promise<Uint8Array[]> {
  let text: string;
  try {
    text = (await readBounded(path)).toString('utf8');
  } catch (e) {
    throw e instanceof ToolkitError ? e : stateError(`cannot read ${path}`, undefined, e);
  }
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g))
    out.push(checkRoot(new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')), path));
  if (out.length === 0) throw stateError(`${path}: no PEM certificate found`);
  return out;
}

function pem(der: Uint8Array): string {
  const lines = Buffer.from(der).toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/**
 * The Nitro simulator root of a state folder, creating the simulator CA there first when the folder has
 * none (`sim kms --trust-simulator` on a fresh folder). The CA is the one a simulated worker would
 * create on first use (enclave/sim-state.ts: same file, same format, same certificate lifetimes, same
 * publish-once protocol), so workers opened on this folder later sign with it; if a worker creates it
 * at the same moment, both end up with the one that was published first. The worker adds the SEV-SNP
 * chain (sim-snp.json) itself when it first opens the folder.
 */
export async function ensureSimulatorRootInState(dir: string, now: Date): Promise<{ rootDer: Uint8Array; created: boolean }> {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('"dir" expected a non-empty path');
  if (!(now instanceof Date) || !Number.isFinite(now.getTime())) throw new TypeError('"now" expected a valid Date');
  const existing = await readSimulatorRootFromState(dir);
  if (existing !== undefined) return { rootDer: existing, created: false };
  await ensurePrivateDir(dir);
  const until = new Date(now.getTime() + INTERMEDIATE_LIFETIME_MS);
  const ca = await createNitroSimCa({ now, overrides: { regional: { notAfter: until }, zonal: { notAfter: until }, instance: { notAfter: until } } });
  const json = await exportNitroSimCa(ca);
  const created = await publishOnce(join(dir, SIM_CA_FILE), JSON.stringify(json, null, 1) + '\n');
  const rootDer = created ? ca.rootDer : await readSimulatorRootFromState(dir);
  if (rootDer === undefined) throw stateError(`${join(dir, SIM_CA_FILE)} appeared and vanished`, 'race');
  if (created) await publishOnce(join(dir, SIM_ROOT_PEM), pem(rootDer));
  return { rootDer, created };
}
