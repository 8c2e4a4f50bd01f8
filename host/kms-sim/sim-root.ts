/**
 * Where the KMS simulator finds the simulator root it may trust with `--trust-simulator`: the
 * simulated Nitro CA in the shared state folder (`sim-ca.json`, written by the simulator platform
 * with exportNitroSimCa), or a PEM file given explicitly. Only the root certificate is read; the
 * private keys in sim-ca.json are never loaded here.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ToolkitError } from '../../attestation/errors.js';

export const SIM_CA_FILE = 'sim-ca.json';
const MAX_FILE = 1 << 20;

function stateError(message: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_SIMULATOR_STATE', message, { cause });
}

function checkRoot(der: Uint8Array, where: string): Uint8Array {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (e) {
    throw stateError(`${where}: not a certificate`, e);
  }
  if (!cert.ca || !cert.checkIssued(cert)) throw stateError(`${where}: not a self-signed CA certificate`);
  return der;
}

async function readBounded(path: string): Promise<Buffer> {
  const b = await readFile(path);
  if (b.length > MAX_FILE) throw stateError(`${path}: file too large`);
  return b;
}

/** The simulator root from `<dir>/sim-ca.json`, or undefined when that file does not exist. */
export async function readSimulatorRootFromState(dir: string): Promise<Uint8Array | undefined> {
  const path = join(dir, SIM_CA_FILE);
  let text: Buffer;
  try {
    text = await readBounded(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e instanceof ToolkitError ? e : stateError(`cannot read ${path}`, e);
  }
  let j: unknown;
  try {
    j = JSON.parse(text.toString('utf8'));
  } catch (e) {
    throw stateError(`${path}: not valid JSON`, e);
  }
  const der = (j as { format?: unknown; certs?: { root?: { der?: unknown } } } | null)?.certs?.root?.der;
  if ((j as { format?: unknown } | null)?.format !== 'enclavekit-nitro-sim-ca' || typeof der !== 'string')
    throw stateError(`${path}: not a Nitro simulator CA export`);
  return checkRoot(new Uint8Array(Buffer.from(der, 'base64')), path);
}

/** Every certificate in a PEM file (at least one), each checked to be a self-signed CA. */
export async function readRootsPem(path: string): Promise<Uint8Array[]> {
  let text: string;
  try {
    text = (await readBounded(path)).toString('utf8');
  } catch (e) {
    throw e instanceof ToolkitError ? e : stateError(`cannot read ${path}`, e);
  }
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g))
    out.push(checkRoot(new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')), path));
  if (out.length === 0) throw stateError(`${path}: no PEM certificate found`);
  return out;
}
