/**
 * The two ramdisks of an EIF, laid out as `nitro-cli build-enclave` (1.5, linuxkit 1.5.2 with AWS's
 * patches) lays them out, so that `eif ramdisk` + `eif build` with AWS's kernel, init and nsm.ko give
 * the PCRs nitro-cli gives. RAMDISK.md beside this file is the model, with its sources. In short:
 *
 * application ramdisk = cpio (newc, uncompressed) of
 *   1. "rootfs" (the linuxkit `prefix`),
 *   2. the image's root filesystem as `docker export` of a created container shows it (layers applied
 *      with whiteouts, docker's init layer on top), walked in lexical order, under rootfs/, with
 *      linuxkit's exclusions (.dockerenv, Dockerfile, dev/console, etc/hostname), etc/hosts replaced,
 *      etc/resolv.conf a symlink to /run/resolvconf/resolv.conf, fixed times on the entries docker
 *      creates; hard links become relative symlinks,
 *   3. the `files` nitro-cli's YAML adds: rootfs (again), rootfs/{dev,run,sys,var,proc,tmp}, cmd, env;
 * bootstrap ramdisk = cpio of dev/, init, nsm.ko.
 *
 * Entries keep the image's owners, modes and modification times; what linuxkit adds has
 * 2017-04-18T16:30:00Z. Nothing depends on the clock, the user or the machine.
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { ByteSource } from '../../attestation/eif/index.js';
import { cleanTarPath, imageError, readTar, type TarType } from './tar.js';
import { loadImage, type ImageConfig, type LoadImageOptions } from './image.js';
import { FileSource } from './io.js';

/** linuxkit's `defaultModTime`. */
export const LINUXKIT_MTIME = Date.UTC(2017, 3, 18, 16, 30, 0) / 1000;

interface Inode {
  type: Exclude<TarType, 'hardlink'>;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  data?: { src: ByteSource; offset: number };
  linkname: string;
  devmajor: number;
  devminor: number;
}

interface Node {
  inode: Inode;
  children?: Map<string, Node>;
}

const dirInode = (mode: number, uid: number, gid: number, mtime: number): Inode => ({ type: 'dir', mode, uid, gid, mtime, size: 0, linkname: '', devmajor: 0, devminor: 0 });

/** docker's boundTime: a time outside [1970, 2262] is applied as the epoch. */
const boundTime = (t: number) => (t < 0 || t > 9_223_372_036 ? 0 : t);

export interface RamdiskWarning {
  reason: string;
  path: string;
  message: string;
}

/** The merged root filesystem of an image's layers (overlay2 semantics, as docker applies them). */
export class MergedTree {
  readonly root: Node = { inode: dirInode(0o755, 0, 0, 0), children: new Map() };
  readonly warnings: RamdiskWarning[] = [];

  #lookup(path: string): Node | undefined {
    let n: Node | undefined = this.root;
    if (path === '') return n;
    for (const part of path.split('/')) {
      n = n?.children?.get(part);
      if (n === undefined) return undefined;
    }
    return n;
  }

  /** The directory at `path`, created (0755 root, time unknown) where the layer does not hold it. */
  #ensureDir(path: string, label: string): Node {
    let n = this.root;
    let sofar = '';
    if (path === '') return n;
    for (const part of path.split('/')) {
      sofar = sofar ? `${sofar}/${part}` : part;
      let c = n.children!.get(part);
      if (c === undefined || c.inode.type !== 'dir') {
        this.warnings.push({ reason: 'implicit_parent', path: sofar, message: `${label}: ${sofar}/ is not in the layer; docker creates it with the time of the pull` });
        c = { inode: dirInode(0o755, 0, 0, 0), children: new Map() };
        n.children!.set(part, c);
      }
      n = c;
    }
    return n;
  }

  /** Apply one layer tar (docker's UnpackLayer into a fresh overlay2 diff directory). */
  applyLayer(src: ByteSource, base: number, length: number, label: string): void {
    const unpacked = new Set<string>();
    const inodes = new Map<string, Inode>();
    for (const e of readTar(src, base, length, label)) {
      const p = cleanTarPath(e.name, label);
      if (p === '') continue; // the layer root
      const slash = p.lastIndexOf('/');
      const parent = slash < 0 ? '' : p.slice(0, slash);
      const base_ = p.slice(slash + 1);
      if (base_.startsWith('.wh.')) {
        const dir = this.#lookup(parent);
        if (base_ === '.wh..wh..opq') {
          if (dir?.children) for (const k of [...dir.children.keys()]) if (!unpacked.has(parent ? `${parent}/${k}` : k)) dir.children.delete(k);
        } else dir?.children?.delete(base_.slice(4));
        continue;
      }
      const dir = this.#ensureDir(parent, label);
      const existing = dir.children!.get(base_);
      const mtime = boundTime(e.mtime);
      let node: Node;
      if (e.type === 'dir') {
        const inode = dirInode(e.mode, e.uid, e.gid, mtime);
        node = existing?.inode.type === 'dir' ? { inode, children: existing.children! } : { inode, children: new Map() };
      } else if (e.type === 'hardlink') {
        const target = cleanTarPath(e.linkname, label);
        const inode = inodes.get(target);
        if (inode === undefined) throw imageError('tar_hardlink', `${label}: hard link ${p} -> ${target}: the target is not earlier in the same layer`);
        inode.uid = e.uid;
        inode.gid = e.gid;
        node = { inode };
      } else {
        const inode: Inode = {
          type: e.type,
          mode: e.type === 'symlink' ? 0o777 : e.mode,
          uid: e.uid,
          gid: e.gid,
          mtime,
          size: e.size,
          linkname: e.type === 'symlink' ? e.linkname : '',
          devmajor: e.devmajor,
          devminor: e.devminor,
          ...(e.type === 'file' ? { data: { src, offset: e.dataOffset } } : {}),
        };
        node = { inode };
      }
      dir.children!.set(base_, node);
      unpacked.add(p);
      if (node.inode.type !== 'dir') inodes.set(p, node.inode);
    }
  }

  /** docker create's init layer (daemon/initlayer): what `docker export` shows that no layer holds. */
  applyDockerInitLayer(): void {
    for (const d of ['dev', 'dev/pts', 'dev/shm', 'proc', 'sys', 'etc']) {
      const slash = d.lastIndexOf('/');
      const parent = slash < 0 ? this.root : this.#lookup(d.slice(0, slash))!;
      const name = d.slice(slash + 1);
      const old = parent.children!.get(name);
      parent.children!.set(name, { inode: dirInode(0o755, 0, 0, LINUXKIT_MTIME), children: old?.inode.type === 'dir' ? old.children! : new Map() });
    }
    const file = (): Node => ({ inode: { type: 'file', mode: 0o755, uid: 0, gid: 0, mtime: LINUXKIT_MTIME, size: 0, linkname: '', devmajor: 0, devminor: 0 } });
    this.root.children!.set('.dockerenv', file());
    const etc = this.#lookup('etc')!;
    for (const f of ['resolv.conf', 'hosts', 'hostname']) etc.children!.set(f, file());
    this.#lookup('dev')!.children!.set('console', file());
    etc.children!.set('mtab', { inode: { type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: LINUXKIT_MTIME, size: 0, linkname: '/proc/mounts', devmajor: 0, devminor: 0 } });
  }

  /** `docker export`: every entry but the root, depth first in byte order of names; dirs end in "/". */
  *export(): Generator<TarLike> {
    const seen = new Map<Inode, string>();
    const cmp = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
    function* walk(n: Node, path: string): Generator<TarLike> {
      for (const name of [...n.children!.keys()].sort(cmp)) {
        const c = n.children!.get(name)!;
        const p = path ? `${path}/${name}` : name;
        const i = c.inode;
        if (i.type === 'dir') {
          yield { ...fromInode(i), name: `${p}/` };
          yield* walk(c, p);
          continue;
        }
        const first = seen.get(i);
        if (first !== undefined) yield { ...fromInode(i), name: p, type: 'hardlink', linkname: first, size: 0, data: undefined };
        else {
          if (first === undefined) seen.set(i, p);
          yield { ...fromInode(i), name: p };
        }
      }
    }
    yield* walk(this.root, '');
  }
}

/** A tar header as linuxkit sees it (Go archive/tar fields the cpio conversion uses). */
export interface TarLike {
  name: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  data?: { src: ByteSource; offset: number } | { bytes: Uint8Array } | undefined;
}

function fromInode(i: Inode): Omit<TarLike, 'name'> {
  return { type: i.type, mode: i.mode, uid: i.uid, gid: i.gid, mtime: i.mtime, size: i.size, linkname: i.linkname, devmajor: i.devmajor, devminor: i.devminor, data: i.data };
}

const EXCLUDE = new Set(['.dockerenv', 'Dockerfile', 'dev/console', 'dev/pts', 'dev/shm', 'etc/hostname']);
const HOSTS = '127.0.0.1       localhost\n::1     localhost ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n';
const RESOLV_SYMLINK = '/run/resolvconf/resolv.conf';
/** linuxkit's `touch` table, in its sorted order: [key, name, type, mode, linkname]. */
const TOUCH: [string, string, TarType, number, string][] = [
  ['dev/', 'dev', 'dir', 0o755, ''],
  ['dev/pts/', 'dev/pts', 'dir', 0o755, ''],
  ['dev/shm/', 'dev/shm', 'dir', 0o755, ''],
  ['etc/', 'etc', 'dir', 0o755, ''],
  ['etc/hosts', 'etc/hosts', 'file', 0o644, ''],
  ['etc/mtab', 'etc/mtab', 'symlink', 0o755, '/proc/mounts'],
  ['etc/resolv.conf', 'etc/resolv.conf', 'file', 0o644, ''],
  ['proc/', 'proc', 'dir', 0o755, ''],
  ['sys/', 'sys', 'dir', 0o755, ''],
];
const enc = new TextEncoder();

/** linuxkit's ImageTar for an `init` image with a prefix (moby/build/image.go, AWS patches 0001, 0003). */
export function* linuxkitImageTar(exported: Iterable<TarLike>, prefix: string): Generator<TarLike> {
  yield dirEntry(prefix.replace(/\/$/, ''), 0o755); // tarPrefix (one level: nitro-cli's prefix is "rootfs/")
  const found = new Set<string>();
  const touchKeys = new Set(TOUCH.map((t) => t[0]));
  for (const h of exported) {
    if (EXCLUDE.has(h.name)) continue;
    if (h.name === 'etc/hosts' || h.name === 'etc/resolv.conf') {
      if (touchKeys.has(h.name)) found.add(h.name);
      if (h.name === 'etc/hosts') yield { ...h, name: prefix + h.name, mtime: LINUXKIT_MTIME, size: HOSTS.length, data: { bytes: enc.encode(HOSTS) } };
      else yield { ...h, name: prefix + h.name, mtime: LINUXKIT_MTIME, size: 0, type: 'symlink', linkname: RESOLV_SYMLINK, data: undefined };
      continue;
    }
    let mtime = h.mtime;
    if (touchKeys.has(h.name)) {
      mtime = LINUXKIT_MTIME;
      found.add(h.name);
    }
    yield { ...h, name: prefix + h.name, mtime, ...(h.type === 'hardlink' ? { linkname: prefix + h.linkname } : {}) };
  }
  for (const [key, name, type, mode, linkname] of TOUCH) {
    if (found.has(key)) continue;
    if (name === 'etc/hosts') yield { ...dirEntry(prefix + name, mode), type, size: HOSTS.length, data: { bytes: enc.encode(HOSTS) } };
    else if (name === 'etc/resolv.conf') yield { ...dirEntry(prefix + name, mode), type: 'symlink', linkname: RESOLV_SYMLINK };
    else yield { ...dirEntry(prefix + name, mode), type, linkname };
  }
}

function dirEntry(name: string, mode: number): TarLike {
  return { name, type: 'dir', mode, uid: 0, gid: 0, mtime: LINUXKIT_MTIME, size: 0, linkname: '', devmajor: 0, devminor: 0 };
}

/** linuxkit's `files` section (moby/build/build.go `filesystem`): leading directories, then the entry. */
export function* linuxkitFiles(files: { path: string; directory?: boolean; mode: number; contents?: Uint8Array }[]): Generator<TarLike> {
  const added = new Set<string>();
  for (const f of files) {
    let dirMode = f.mode;
    if (dirMode & 0o700) dirMode |= 0o100;
    if (dirMode & 0o070) dirMode |= 0o010;
    if (dirMode & 0o007) dirMode |= 0o001;
    const parts = f.path.split('/').slice(0, -1);
    let root = '';
    for (const p of parts) {
      root = root ? `${root}/${p}` : p;
      if (!added.has(root)) {
        yield dirEntry(root, dirMode);
        added.add(root);
      }
    }
    added.add(f.path);
    if (f.directory) yield dirEntry(f.path, f.mode);
    else yield { ...dirEntry(f.path, f.mode), type: 'file', size: f.contents!.length, data: { bytes: f.contents! } };
  }
}

/** filepath.Rel(from, to) for clean relative paths. */
function relPath(from: string, to: string): string {
  const a = from === '.' ? [] : from.split('/');
  const b = to.split('/');
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const out = [...Array(a.length - i).fill('..'), ...b.slice(i)];
  return out.length ? out.join('/') : '.';
}

const CPIO_TYPE: Record<TarType, number> = { file: 0o10, hardlink: 0o12, symlink: 0o12, char: 0o2, block: 0o6, dir: 0o4, fifo: 0o1 };

/**
 * linuxkit's tar -> initrd conversion with surma/gocpio's newc writer: inodes from 721, nlink 2 for
 * directories, "dev" 3:1, each header and file padded to 4 bytes, the trailer, the whole padded to 512.
 * Hard links become relative symlinks (initrd.go `typeconv`). Streams to `out`.
 */
export function writeCpio(entries: Iterable<TarLike>, out: string): { size: number; sha384: string; entries: number } {
  const tmp = `${out}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o644);
  const hash = createHash('sha384');
  let length = 0;
  let inode = 721;
  let count = 0;
  const put = (b: Uint8Array) => {
    let done = 0;
    while (done < b.length) done += writeSync(fd, b, done, b.length - done, length + done);
    hash.update(b);
    length += b.length;
  };
  const pad = (m: number) => {
    const n = (m - (length % m)) % m;
    if (n) put(new Uint8Array(n));
  };
  const field = (v: number, what: string, name: string) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw imageError('cpio_range', `${name}: ${what} ${v} does not fit a newc cpio header`);
    return v.toString(16).padStart(8, '0');
  };
  const header = (h: { name: string; mode: number; uid: number; gid: number; nlink: number; mtime: number; size: number; devmajor: number; devminor: number }) => {
    pad(4);
    const name = enc.encode(h.name);
    const s =
      '070701' + field(inode, 'inode', h.name) + field(h.mode, 'mode', h.name) + field(h.uid, 'uid', h.name) + field(h.gid, 'gid', h.name) +
      field(h.nlink, 'nlink', h.name) + field(h.mtime, 'mtime', h.name) + field(h.size, 'size', h.name) + '00000003' + '00000001' +
      field(h.devmajor, 'devmajor', h.name) + field(h.devminor, 'devminor', h.name) + field(name.length + 1, 'namesize', h.name) + '00000000';
    put(enc.encode(s));
    put(name);
    put(new Uint8Array(1));
    inode++;
    pad(4);
  };
  try {
    for (const t of entries) {
      let linkname = t.linkname;
      let type = t.type;
      if (type === 'hardlink') {
        const slash = t.name.lastIndexOf('/');
        linkname = relPath(slash < 0 ? '.' : t.name.slice(0, slash), cleanTarPath(linkname, t.name));
        type = 'symlink';
      }
      const link = type === 'symlink' ? enc.encode(linkname) : undefined;
      const size = link ? link.length : type === 'file' ? t.size : 0;
      header({
        name: t.name,
        mode: (t.mode & 0xfff) | (CPIO_TYPE[type] << 12),
        uid: t.uid,
        gid: t.gid,
        nlink: type === 'dir' ? 2 : 1,
        mtime: t.mtime,
        size,
        devmajor: t.devmajor,
        devminor: t.devminor,
      });
      count++;
      if (link) put(link);
      else if (type === 'file' && size > 0) {
        const d = t.data;
        if (d === undefined) throw new Error(`no data for ${t.name}`);
        if ('bytes' in d) put(d.bytes);
        else for (let at = 0; at < size; at += 1 << 20) put(d.src.read(d.offset + at, Math.min(1 << 20, size - at)));
      }
    }
    header({ name: 'TRAILER!!!', mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, size: 0, devmajor: 0, devminor: 0 });
    pad(512);
    closeSync(fd);
    renameSync(tmp, out);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  return { size: length, sha384: hash.digest('hex'), entries: count };
}

const lines = (xs: readonly string[]) => enc.encode(xs.map((x) => `${x}\n`).join(''));

/** nitro-cli's cmd file: CMD if the image has one (even empty), else ENTRYPOINT (docker.rs `extract_image`). */
export function nitroCmd(c: ImageConfig): string[] {
  if (c.Cmd !== null) return c.Cmd;
  if (c.Entrypoint !== null) return c.Entrypoint;
  throw imageError('image_entrypoint', 'the image has neither CMD nor ENTRYPOINT (nitro-cli refuses it too)');
}

export interface AppRamdiskResult {
  size: number;
  sha384: string;
  entries: number;
  format: 'docker-save' | 'oci-layout';
  imageId: string;
  arch: string;
  cmd: string[];
  env: string[];
  warnings: RamdiskWarning[];
}

/** The application ramdisk of nitro-cli's customer YAML (enclave_build/src/yaml_generator.rs). */
export async function buildAppRamdisk(imagePath: string, out: string, opts: LoadImageOptions = {}): Promise<AppRamdiskResult> {
  const img = await loadImage(imagePath, opts);
  try {
    const tree = new MergedTree();
    for (const l of img.layers) tree.applyLayer(l.src, l.base, l.length, l.label);
    tree.applyDockerInitLayer();
    const cmd = nitroCmd(img.config);
    const env = img.config.Env ?? [];
    const files = linuxkitFiles([
      ...['dev', 'run', 'sys', 'var', 'proc', 'tmp'].map((d) => ({ path: `rootfs/${d}`, directory: true, mode: 0o755 })),
      { path: 'cmd', mode: 0o644, contents: lines(cmd) },
      { path: 'env', mode: 0o644, contents: lines(env) },
    ]);
    const r = writeCpio(
      (function* () {
        yield* linuxkitImageTar(tree.export(), 'rootfs/');
        yield* files;
      })(),
      out,
    );
    const arch = img.config.architecture === 'amd64' ? 'x86_64' : img.config.architecture === 'arm64' ? 'aarch64' : img.config.architecture;
    return { ...r, format: img.format, imageId: img.configDigest, arch, cmd, env, warnings: tree.warnings };
  } finally {
    img.close();
  }
}

/** The bootstrap ramdisk of nitro-cli's bootstrap YAML: dev/, init, nsm.ko, all 0755. */
export function buildBootstrapRamdisk(initPath: string, nsmPath: string, out: string): { size: number; sha384: string; entries: number } {
  const read = (p: string, label: string) => {
    const f = new FileSource(p, label);
    try {
      if (f.size > 256 * 1024 * 1024) throw imageError('bootstrap_size', `${label} ${p} is larger than 256 MiB`);
      return f.read(0, f.size);
    } finally {
      f.close();
    }
  };
  return writeCpio(
    linuxkitFiles([
      { path: 'dev', directory: true, mode: 0o755 },
      { path: 'init', mode: 0o755, contents: read(initPath, '--init') },
      { path: 'nsm.ko', mode: 0o755, contents: read(nsmPath, '--nsm') },
    ]),
    out,
  );
}
