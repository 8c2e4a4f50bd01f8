/**
 * The KMS simulator's key store: one JSON file in the state folder, key material sealed with
 * AES-256-GCM under a master key file (created on first use, mode 0600), rewritten atomically
 * (temporary file + rename) and only ever by one writer at a time.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { lstat, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensurePrivateDir } from './state-files.js';
import { ToolkitError } from '../../attestation/errors.js';

export const STATE_FILE = 'kms-state.json';
export const MASTER_KEY_FILE = 'kms-master.key';
const FORMAT = 'enclavekit-kms-sim-state';

export interface KeyRecord {
  keyId: string;
  arn: string;
  creationDate: number;
  description: string;
  policy: string;
  /** 32-byte AES key, only in memory. */
  material: Uint8Array;
}

export interface AliasRecord {
  name: string;
  targetKeyId: string;
  creationDate: number;
}

interface StoredKey {
  keyId: string;
  arn: string;
  creationDate: number;
  description: string;
  policy: string;
  /** base64(iv 12 | ciphertext 32 | tag 16), AAD binds the key id. */
  sealed: string;
}

function stateError(message: string, cause?: unknown): ToolkitError {
  return new ToolkitError('ERR_SIMULATOR_STATE', message, { cause });
}

function aad(keyId: string): Buffer {
  return Buffer.from(`${FORMAT}/v1/key/${keyId}`, 'utf8');
}

export class KeyStore {
  readonly keys = new Map<string, KeyRecord>();
  readonly aliases = new Map<string, AliasRecord>();
  private queue: Promise<void> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    private readonly master: Buffer,
  ) {}

  static async open(dir: string): Promise<KeyStore> {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('"stateDir" expected a non-empty path');
    // mkdir -p leaves an existing folder as it was. Key policies sit in the state file in the clear,
    // so whoever can write this folder can widen them: tighten a folder we own, refuse anyone else's.
    await ensurePrivateDir(dir);
    const master = await loadMasterKey(join(dir, MASTER_KEY_FILE));
    const store = new KeyStore(dir, master);
    let text: string | undefined;
    try {
      text = await readFile(join(dir, STATE_FILE), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw stateError('cannot read the KMS simulator state', e);
    }
    if (text !== undefined) store.load(text);
    return store;
  }

  private load(text: string): void {
    let j: unknown;
    try {
      j = JSON.parse(text);
    } catch (e) {
      throw stateError('KMS simulator state is not valid JSON', e);
    }
    const o = j as { format?: unknown; version?: unknown; keys?: unknown; aliases?: unknown };
    if (typeof o !== 'object' || o === null || o.format !== FORMAT || o.version !== 1 || !Array.isArray(o.keys) || !Array.isArray(o.aliases))
      throw stateError('KMS simulator state has an unknown format');
    for (const k of o.keys as StoredKey[]) {
      if (typeof k?.keyId !== 'string' || typeof k.arn !== 'string' || typeof k.policy !== 'string' || typeof k.sealed !== 'string' || typeof k.creationDate !== 'number' || typeof k.description !== 'string')
        throw stateError('KMS simulator state: malformed key entry');
      const sealed = Buffer.from(k.sealed, 'base64');
      if (sealed.length !== 12 + 32 + 16) throw stateError('KMS simulator state: malformed sealed key');
      let material: Buffer;
      try {
        const d = createDecipheriv('aes-256-gcm', this.master, sealed.subarray(0, 12));
        d.setAAD(aad(k.keyId));
        d.setAuthTag(sealed.subarray(44));
        material = Buffer.concat([d.update(sealed.subarray(12, 44)), d.final()]);
      } catch {
        // Constant message: a wrong master key and a tampered file look the same on purpose.
        throw stateError('KMS simulator state: a key does not unseal under the master key');
      }
      this.keys.set(k.keyId, { keyId: k.keyId, arn: k.arn, creationDate: k.creationDate, description: k.description, policy: k.policy, material: new Uint8Array(material) });
    }
    for (const a of o.aliases as AliasRecord[]) {
      if (typeof a?.name !== 'string' || typeof a.targetKeyId !== 'string' || typeof a.creationDate !== 'number') throw stateError('KMS simulator state: malformed alias');
      this.aliases.set(a.name, { name: a.name, targetKeyId: a.targetKeyId, creationDate: a.creationDate });
    }
  }

  private seal(k: KeyRecord): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.master, iv);
    c.setAAD(aad(k.keyId));
    const ct = Buffer.concat([c.update(k.material), c.final()]);
    return Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64');
  }

  private serialize(): string {
    const keys: StoredKey[] = [...this.keys.values()].map((k) => ({
      keyId: k.keyId,
      arn: k.arn,
      creationDate: k.creationDate,
      description: k.description,
      policy: k.policy,
      sealed: this.seal(k),
    }));
    return JSON.stringify({ format: FORMAT, version: 1, keys, aliases: [...this.aliases.values()] }, null, 1) + '\n';
  }

  /**
   * Run `mutate` and persist, strictly one at a time: a mutation sees the result of every earlier
   * one and the file on disk is never written by two requests at once. If writing fails the
   * in-memory change is rolled back by `mutate`'s returned undo.
   */
  update<T>(mutate: () => { result: T; undo: () => void }): Promise<T> {
    const run = async (): Promise<T> => {
      const { result, undo } = mutate();
      try {
        await this.persist();
      } catch (e) {
        undo();
        throw stateError('cannot write the KMS simulator state', e);
      }
      return result;
    };
    const p = this.queue.then(run);
    this.queue = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  private async persist(): Promise<void> {
    const final = join(this.dir, STATE_FILE);
    const tmp = join(this.dir, `.${STATE_FILE}.${process.pid}.${randomUUID()}.tmp`);
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(this.serialize(), 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
  }

  /** Wait for every queued write. */
  async flush(): Promise<void> {
    await this.queue;
  }
}

async function loadMasterKey(path: string): Promise<Buffer> {
  try {
    // 'wx' makes creation race-free: two processes starting at once cannot both create a key.
    const key = randomBytes(32);
    await writeFile(path, key, { flag: 'wx', mode: 0o600 });
    return key;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw stateError('cannot create the KMS simulator master key', e);
  }
  let key: Buffer;
  try {
    // lstat: the key must be a private regular file here, not a link to one somewhere else.
    const st = await lstat(path);
    if (!st.isFile()) throw stateError('KMS simulator master key is not a regular file');
    if ((st.mode & 0o077) !== 0) throw stateError('KMS simulator master key is accessible to other users (it must be mode 0600)');
    key = await readFile(path);
  } catch (e) {
    if (e instanceof ToolkitError) throw e;
    throw stateError('cannot read the KMS simulator master key', e);
  }
  if (key.length !== 32) throw stateError('KMS simulator master key file must hold exactly 32 bytes');
  return key;
}
