// The KMS simulator's state folder holds its master key and, in the clear, every key policy: a
// folder or master key other users can read or write gives them every data key. The store used to
// accept an existing folder and master key whatever their modes (and followed a link to the key).
import { afterEach, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyStore, MASTER_KEY_FILE, STATE_FILE } from '../../host/kms-sim/store.js';
import { ToolkitError } from '../../attestation/errors.js';

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'ek-kms-perm-'));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function stateErr(p: Promise<unknown>): Promise<ToolkitError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ToolkitError);
    expect((e as ToolkitError).code).toBe('ERR_SIMULATOR_STATE');
    return e as ToolkitError;
  }
  throw new Error('expected ERR_SIMULATOR_STATE');
}

describe('KMS simulator state permissions', () => {
  it('a fresh folder and master key are private', async () => {
    const d = join(await tmp(), 'state');
    await KeyStore.open(d);
    expect((await stat(d)).mode & 0o777).toBe(0o700);
    expect((await stat(join(d, MASTER_KEY_FILE))).mode & 0o777).toBe(0o600);
  });

  it('an existing group/world-accessible folder of ours is tightened to 0700', async () => {
    const d = await tmp();
    await chmod(d, 0o777);
    await KeyStore.open(d);
    expect((await stat(d)).mode & 0o777).toBe(0o700);
  });

  it('a master key readable by others is refused, not used', async () => {
    const d = await tmp();
    await writeFile(join(d, MASTER_KEY_FILE), randomBytes(32), { mode: 0o644 });
    await chmod(join(d, MASTER_KEY_FILE), 0o644);
    const e = await stateErr(KeyStore.open(d));
    expect(e.message).toMatch(/other users/);
  });

  it('a master key that is a link is refused', async () => {
    const d = await tmp();
    const elsewhere = join(await tmp(), 'key');
    await writeFile(elsewhere, randomBytes(32), { mode: 0o600 });
    await symlink(elsewhere, join(d, MASTER_KEY_FILE));
    await stateErr(KeyStore.open(d));
  });

  it('a private master key and state written by the store reopen', async () => {
    const d = await tmp();
    const s = await KeyStore.open(d);
    await s.update(() => ({ result: undefined, undo: () => undefined }));
    expect((await stat(join(d, STATE_FILE))).mode & 0o777).toBe(0o600);
    await KeyStore.open(d);
  });
});
