/**
 * The simulator's state folder (`--state DIR`): the keys of the simulated Nitro CA and the simulated
 * AMD chain, created on first use and reloaded after, so a KMS simulator started with
 * `--trust-simulator` and any number of simulated workers agree on one root.
 *
 *   DIR/             0700
 *     sim-ca.json    0600  Nitro simulator CA (exportNitroSimCa; PKCS#8 private keys inside)
 *     sim-snp.json   0600  SEV-SNP simulator ARK/ASK/VCEK chain (exportSnpSimChain; private keys)
 *     sim-root.pem   0600  the Nitro simulator root certificate, for humans and `--trust` flags
 *
 * Files are published atomically and without clobbering: each is written to a temporary name,
 * fsynced, then hard-linked to its final name (link fails if another process published first, and we
 * then load the winner's file). Two processes opening a fresh folder at once therefore end up with
 * the same CA. A folder or key file readable by group or others is refused: it holds private keys.
 *
 * Intermediates: AWS rotates its regional/zonal/instance certificates every few days; a state folder
 * must outlive that (a CI cache, a developer's week), so the simulator issues them for 5 years. The
 * leaf is still fresh every couple of hours, as the NSM's is (the signer rotates it).
 *
 * Nothing here makes a simulator root trusted: callers pass `rootDer` explicitly where they mean to.
 */
import { randomBytes } from 'node:crypto';
import { chmod, link, lstat, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ToolkitError } from '../attestation/errors.js';
import { createNitroSimCa, exportNitroSimCa, importNitroSimCa, type NitroSimCa } from '../attestation/sim/nitro.js';
import {
  createSnpSimChain,
  exportSnpSimChain,
  importSnpSimChain,
  type SnpSimChain,
} from '../attestation/sim/snp.js';

export const SIM_CA_FILE = 'sim-ca.json';
export const SIM_SNP_FILE = 'sim-snp.json';
export const SIM_ROOT_PEM = 'sim-root.pem';
/** Refuse absurd files before parsing them: a CA export is a few KB. */
const MAX_STATE_FILE = 1 << 20;
const INTERMEDIATE_LIFETIME_MS = 5 * 365 * 24 * 3_600_000;

export type SnpSimProduct = 'Milan' | 'Genoa' | 'Turin';

export interface SimulatorState {
  readonly dir: string;
  /** True if this call created the CA (the folder was new). */
  readonly created: boolean;
  readonly nitroCa: NitroSimCa;
  /** DER of the Nitro simulator root: pass it as `simulatorRoots` to trust this folder explicitly. */
  readonly nitroRootDer: Uint8Array;
  readonly snpChain: SnpSimChain;
}

export interface OpenSimulatorStateOptions {
  now: Date;
  /** Product of the simulated AMD chain when it is first created. Default Genoa. */
  snpProduct?: SnpSimProduct;
}

function stateError(message: string, reason: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_SIMULATOR_STATE', message, cause === undefined ? { reason } : { reason, cause });
}

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === code;
}

async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw stateError(`cannot create simulator state folder ${dir}`, 'mkdir', e);
  }
  const st = await lstat(dir);
  if (!st.isDirectory()) throw stateError(`${dir} is not a directory`, 'not_directory');
  if ((st.mode & 0o077) !== 0) {
    // mkdir -p leaves an existing folder as it was; only tighten one we may own, never widen.
    if (typeof process.getuid === 'function' && st.uid === process.getuid()) await chmod(dir, 0o700);
    else throw stateError(`${dir} is accessible to other users`, 'permissions');
  }
}

/** Write then hard-link: returns false if the final name already existed (another writer won). */
async function publishOnce(path: string, data: string): Promise<boolean> {
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, path);
    return true;
  } catch (e) {
    if (isErrno(e, 'EEXIST')) return false;
    throw stateError(`cannot write ${path}`, 'write', e);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

async function readStateJson(path: string): Promise<unknown | undefined> {
  let st;
  try {
    // lstat: a key file must be a regular file here, not a link to somewhere else.
    st = await lstat(path);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return undefined;
    throw stateError(`cannot read ${path}`, 'read', e);
  }
  if (!st.isFile()) throw stateError(`${path} is not a file`, 'not_file');
  if ((st.mode & 0o077) !== 0) throw stateError(`${path} holds private keys but is accessible to other users`, 'permissions');
  if (st.size > MAX_STATE_FILE) throw stateError(`${path} is larger than ${MAX_STATE_FILE} bytes`, 'too_large');
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw stateError(`${path} is not valid JSON`, 'corrupt', e);
  }
}

async function loadOrCreate<T>(
  path: string,
  importer: (json: unknown) => Promise<T>,
  create: () => Promise<unknown>,
): Promise<{ value: T; created: boolean }> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const existing = await readStateJson(path);
    if (existing !== undefined) {
      try {
        return { value: await importer(existing), created: false };
      } catch (e) {
        throw stateError(`${path} is not a simulator state file this version understands`, 'corrupt', e);
      }
    }
    const json = await create();
    if (await publishOnce(path, JSON.stringify(json, null, 1) + '\n')) return { value: await importer(json), created: true };
  }
  throw stateError(`${path} appeared and vanished while opening the state`, 'race');
}

function pem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

export async function openSimulatorState(dir: string, options: OpenSimulatorStateOptions): Promise<SimulatorState> {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('"dir" expected a non-empty path');
  const now = options.now;
  if (!(now instanceof Date) || !Number.isFinite(now.getTime())) throw new TypeError('"now" expected a valid Date');
  await ensureDir(dir);
  const until = new Date(now.getTime() + INTERMEDIATE_LIFETIME_MS);
  const nitro = await loadOrCreate(join(dir, SIM_CA_FILE), importNitroSimCa, async () =>
    exportNitroSimCa(
      await createNitroSimCa({
        now,
        overrides: { regional: { notAfter: until }, zonal: { notAfter: until }, instance: { notAfter: until } },
      }),
    ),
  );
  const snp = await loadOrCreate(join(dir, SIM_SNP_FILE), async (j) => importSnpSimChain(j), async () =>
    exportSnpSimChain(await createSnpSimChain({ now, product: options.snpProduct ?? 'Genoa' })),
  );
  const rootPath = join(dir, SIM_ROOT_PEM);
  const rootPem = pem(nitro.value.rootDer);
  let current: string | undefined;
  try {
    current = await readFile(rootPath, 'utf8');
  } catch (e) {
    if (!isErrno(e, 'ENOENT')) throw stateError(`cannot read ${rootPath}`, 'read', e);
  }
  if (current !== rootPem) {
    // Derived from sim-ca.json, so it is safe to rewrite; publishOnce keeps concurrent writers sane.
    if (current !== undefined) await unlink(rootPath).catch(() => undefined);
    await publishOnce(rootPath, rootPem);
  }
  return Object.freeze({
    dir,
    created: nitro.created,
    nitroCa: nitro.value,
    nitroRootDer: nitro.value.rootDer,
    snpChain: snp.value,
  });
}
