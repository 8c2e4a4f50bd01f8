/**
 * The simulator state folder's file discipline, shared by the key store, the simulator CA and the
 * principals: a 0700 folder we own (tightened if it is ours, refused if it is someone else's) and new
 * 0600 files published atomically, first writer wins.
 */
import { randomBytes } from 'node:crypto';
import { chmod, link, lstat, mkdir, open, unlink } from 'node:fs/promises';
import { ToolkitError } from '../../attestation/errors.js';

export function stateError(message: string, reason?: string, cause?: unknown): ToolkitError {
  const opts: { reason?: string; cause?: unknown } = {};
  if (reason !== undefined) opts.reason = reason;
  if (cause !== undefined) opts.cause = cause;
  return new ToolkitError('ERR_SIMULATOR_STATE', message, opts);
}

/** Create (0700) or tighten a folder we own; refuse one accessible to others that is not ours. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw stateError(`cannot create simulator state folder ${dir}`, 'mkdir', e);
  }
  const st = await lstat(dir);
  if (!st.isDirectory()) throw stateError(`${dir} is not a directory`, 'not_directory');
  if ((st.mode & 0o077) !== 0) {
    if (typeof process.getuid === 'function' && st.uid === process.getuid()) await chmod(dir, 0o700);
    else throw stateError(`${dir} is accessible to other users`, 'permissions');
  }
}

/** Write a new 0600 file atomically at `path`; false when `path` already existed (another writer won). */
export async function publishOnce(path: string, data: string): Promise<boolean> {
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
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw stateError(`cannot write ${path}`, 'write', e);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
