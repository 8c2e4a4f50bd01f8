/**
 * Read a container image from a `docker save` tarball (manifest.json), an OCI image layout as a
 * tarball or a directory (oci-layout, index.json, blobs/): its config (Env, Cmd, Entrypoint,
 * architecture) and its layers in order, each as an uncompressed tar region that can be read in place.
 * gzip layers are inflated into a temporary file (bounded); zstd is refused. Every blob named by
 * digest is checked against it, and every layer against the config's rootfs.diff_ids.
 */
import { createWriteStream, mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ByteSource } from '../../attestation/eif/index.js';
import { FileSource } from './io.js';
import { cleanTarPath, imageError, readTar, type TarEntry } from './tar.js';

export interface ImageConfig {
  Env: string[] | null;
  Cmd: string[] | null;
  Entrypoint: string[] | null;
  architecture: string;
  os: string;
}

export interface LayerTar {
  src: ByteSource;
  base: number;
  length: number;
  label: string;
}

export interface LoadedImage {
  format: 'docker-save' | 'oci-layout';
  config: ImageConfig;
  /** sha256 of the config blob: the image ID `docker images` shows. */
  configDigest: string;
  layers: LayerTar[];
  close(): void;
}

/** Largest inflated layer (the ramdisk has to fit an enclave's memory anyway). */
export const MAX_LAYER_BYTES = 8 * 1024 ** 3;
const MAX_JSON = 16 * 1024 * 1024;

function sha256Region(src: ByteSource, base: number, length: number): string {
  const h = createHash('sha256');
  for (let at = 0; at < length; at += 1 << 20) h.update(src.read(base + at, Math.min(1 << 20, length - at)));
  return h.digest('hex');
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw imageError('image_json', `${what} is not UTF-8 JSON`, cause);
  }
}

const strList = (v: unknown, what: string): string[] | null => {
  if (v === null || v === undefined) return null;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw imageError('image_config', `${what} must be a list of strings`);
  return v as string[];
};

function parseConfig(bytes: Uint8Array): ImageConfig {
  const c = parseJson(bytes, 'image config') as Record<string, unknown>;
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw imageError('image_config', 'image config is not an object');
  const cfg = (c.config ?? {}) as Record<string, unknown>;
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw imageError('image_config', 'image config "config" is not an object');
  return {
    Env: strList(cfg.Env, 'config.Env'),
    Cmd: strList(cfg.Cmd, 'config.Cmd'),
    Entrypoint: strList(cfg.Entrypoint, 'config.Entrypoint'),
    architecture: typeof c.architecture === 'string' ? c.architecture : '',
    os: typeof c.os === 'string' ? c.os : '',
  };
}

function diffIds(bytes: Uint8Array): string[] {
  const c = parseJson(bytes, 'image config') as { rootfs?: { diff_ids?: unknown } };
  const ids = c?.rootfs?.diff_ids;
  if (!Array.isArray(ids) || !ids.every((x) => typeof x === 'string' && /^sha256:[0-9a-f]{64}$/.test(x)))
    throw imageError('image_config', 'image config has no rootfs.diff_ids list of sha256 digests');
  return ids as string[];
}

/** A blob store: a path inside the archive (or directory) to a readable region. */
interface Store {
  get(path: string): LayerTar | undefined;
  close(): void;
}

function tarStore(file: FileSource, label: string): Store {
  const entries = readTar(file, 0, file.size, label);
  const byPath = new Map<string, TarEntry>();
  for (const e of entries) if (e.type === 'file') byPath.set(cleanTarPath(e.name, label), e);
  return {
    get(path) {
      const e = byPath.get(cleanTarPath(path, label));
      return e && { src: file, base: e.dataOffset, length: e.size, label: `${label}:${path}` };
    },
    close: () => file.close(),
  };
}

function dirStore(dir: string): Store {
  const open: FileSource[] = [];
  return {
    get(path) {
      const p = join(dir, cleanTarPath(path, dir));
      if (!existsSync(p)) return undefined;
      const f = new FileSource(p);
      open.push(f);
      return { src: f, base: 0, length: f.size, label: p };
    },
    close: () => open.forEach((f) => f.close()),
  };
}

function need(store: Store, path: string, what: string): LayerTar {
  const r = store.get(path);
  if (!r) throw imageError('image_layout', `${what} ${path} is missing from the image`);
  return r;
}

function readSmall(r: LayerTar, what: string): Uint8Array {
  if (r.length > MAX_JSON) throw imageError('image_json', `${what} is ${r.length} bytes, at most ${MAX_JSON}`);
  return r.src.read(r.base, r.length);
}

const blobPath = (digest: unknown, what: string): string => {
  if (typeof digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(digest)) throw imageError('image_layout', `${what} digest is not sha256:<64 hex>`);
  return `blobs/sha256/${digest.slice(7)}`;
};

function checkDigest(r: LayerTar, digest: string, what: string): void {
  if (`sha256:${sha256Region(r.src, r.base, r.length)}` !== digest) throw imageError('image_digest', `${what} does not match its digest ${digest}`);
}

/** Pick the image manifest from an OCI index, descending into nested indexes. */
function ociManifest(store: Store, index: unknown, platform: string | undefined, depth = 0): Record<string, unknown> {
  if (depth > 4) throw imageError('image_layout', 'OCI indexes nested too deeply');
  const list = (index as { manifests?: unknown })?.manifests;
  if (!Array.isArray(list) || list.length === 0) throw imageError('image_layout', 'OCI index has no manifests');
  type Desc = { mediaType?: string; digest?: string; platform?: { os?: string; architecture?: string }; annotations?: Record<string, string> };
  let cands = (list as Desc[]).filter((d) => d?.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest');
  if (platform !== undefined) cands = cands.filter((d) => !d.platform || `${d.platform.os}/${d.platform.architecture}` === platform);
  if (cands.length !== 1)
    throw imageError(
      'image_ambiguous',
      cands.length === 0 ? `no manifest in the OCI index matches ${platform ?? 'the image'}` : `the OCI index holds ${cands.length} manifests: choose one with --platform OS/ARCH`,
    );
  const d = cands[0]!;
  const r = need(store, blobPath(d.digest, 'manifest'), 'manifest');
  checkDigest(r, d.digest!, 'manifest');
  const m = parseJson(readSmall(r, 'manifest'), 'manifest') as Record<string, unknown>;
  if (Array.isArray(m?.manifests)) return ociManifest(store, m, platform, depth + 1);
  return m;
}

/** Inflate a gzip layer into `dir`; returns a region of the plain tar. */
async function gunzipLayer(r: LayerTar, dir: string, n: number): Promise<LayerTar> {
  const path = join(dir, `layer-${n}.tar`);
  let total = 0;
  const limit = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      total += chunk.length;
      if (total > MAX_LAYER_BYTES) cb(imageError('layer_too_large', `${r.label}: inflates past ${MAX_LAYER_BYTES} bytes`));
      else cb(null, chunk);
    },
  });
  const src = r.src;
  async function* chunks() {
    for (let at = 0; at < r.length; at += 1 << 20) yield src.read(r.base + at, Math.min(1 << 20, r.length - at));
  }
  try {
    await pipeline(chunks, createGunzip(), limit, createWriteStream(path));
  } catch (cause) {
    if ((cause as { code?: string })?.code === 'ERR_IMAGE_INVALID') throw cause;
    throw imageError('layer_gzip', `${r.label}: not a valid gzip stream`, cause);
  }
  const f = new FileSource(path);
  return { src: f, base: 0, length: f.size, label: r.label };
}

export interface LoadImageOptions {
  /** "os/arch" to choose among the manifests of an OCI index. */
  platform?: string;
  /** Choose one image of a `docker save` tarball holding several, by one of its RepoTags. */
  tag?: string;
}

export async function loadImage(path: string, opts: LoadImageOptions = {}): Promise<LoadedImage> {
  const isDir = statSync(path, { throwIfNoEntry: false })?.isDirectory() === true;
  const store = isDir ? dirStore(path) : tarStore(new FileSource(path, '--image'), '--image');
  const tmp = mkdtempSync(join(tmpdir(), 'enclavekit-image-'));
  const opened: FileSource[] = [];
  const close = () => {
    opened.forEach((f) => f.close());
    store.close();
    rmSync(tmp, { recursive: true, force: true });
  };
  try {
    let configRegion: LayerTar;
    let configDigest: string | undefined;
    let layers: { r: LayerTar; digest?: string }[];
    let format: LoadedImage['format'];
    const dockerManifest = isDir ? undefined : store.get('manifest.json');
    if (dockerManifest) {
      format = 'docker-save';
      let list = parseJson(readSmall(dockerManifest, 'manifest.json'), 'manifest.json') as { Config?: unknown; Layers?: unknown; RepoTags?: unknown }[];
      if (!Array.isArray(list) || list.length === 0) throw imageError('image_layout', 'manifest.json lists no image');
      if (opts.tag !== undefined) list = list.filter((m) => Array.isArray(m?.RepoTags) && m.RepoTags.includes(opts.tag));
      if (list.length !== 1)
        throw imageError('image_ambiguous', list.length === 0 ? `no image tagged ${opts.tag} in manifest.json` : `manifest.json holds ${list.length} images: choose one with --tag`);
      const m = list[0]!;
      if (typeof m.Config !== 'string' || !Array.isArray(m.Layers) || !m.Layers.every((l) => typeof l === 'string'))
        throw imageError('image_layout', 'manifest.json entry needs Config and Layers');
      configRegion = need(store, m.Config, 'config');
      const hex = /([0-9a-f]{64})(\.json)?$/.exec(m.Config)?.[1];
      if (hex) configDigest = `sha256:${hex}`;
      layers = (m.Layers as string[]).map((l) => ({ r: need(store, l, 'layer') }));
    } else {
      format = 'oci-layout';
      const idx = store.get('index.json');
      if (!idx) throw imageError('image_layout', 'neither a docker save tarball (manifest.json) nor an OCI image layout (index.json)');
      const m = ociManifest(store, parseJson(readSmall(idx, 'index.json'), 'index.json'), opts.platform);
      const cfg = m.config as { digest?: string } | undefined;
      configRegion = need(store, blobPath(cfg?.digest, 'config'), 'config');
      configDigest = cfg!.digest;
      if (!Array.isArray(m.layers)) throw imageError('image_layout', 'image manifest has no layers list');
      layers = (m.layers as { digest?: string }[]).map((l) => ({ r: need(store, blobPath(l?.digest, 'layer'), 'layer'), digest: l.digest! }));
    }
    if (configDigest !== undefined) checkDigest(configRegion, configDigest, 'image config');
    const configBytes = readSmall(configRegion, 'image config');
    const config = parseConfig(configBytes);
    const ids = diffIds(configBytes);
    if (ids.length !== layers.length) throw imageError('image_config', `the config lists ${ids.length} diff_ids for ${layers.length} layers`);
    const out: LayerTar[] = [];
    for (const [i, l] of layers.entries()) {
      if (l.digest !== undefined) checkDigest(l.r, l.digest, `layer ${i}`);
      const magic = l.r.length >= 4 ? l.r.src.read(l.r.base, 4) : new Uint8Array(0);
      let plain = l.r;
      if (magic[0] === 0x1f && magic[1] === 0x8b) {
        plain = await gunzipLayer(l.r, tmp, i);
        opened.push(plain.src as FileSource);
      } else if (magic[0] === 0x28 && magic[1] === 0xb5 && magic[2] === 0x2f && magic[3] === 0xfd)
        throw imageError('layer_zstd', `layer ${i} is zstd-compressed: export the image uncompressed or with gzip`);
      checkDigest(plain, ids[i]!, `layer ${i} (uncompressed)`);
      out.push(plain);
    }
    return { format, config, configDigest: configDigest ?? `sha256:${createHash('sha256').update(configBytes).digest('hex')}`, layers: out, close };
  } catch (e) {
    close();
    throw e;
  }
}
