/**
 * `enclavekit eif ramdisk` (issue #12): the application ramdisk from a `docker save` tarball and from
 * an OCI image layout, and the bootstrap ramdisk, laid out as nitro-cli (linuxkit) lays them out.
 * The images are built here as tarballs (no docker engine); the cpio output is read back with a newc
 * reader written here, and checked entry by entry against the layout host/eif/RAMDISK.md describes.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { isToolkitError } from '../../attestation/errors.js';
import { bytesSource } from '../../attestation/eif/index.js';
import { readTar } from '../../host/eif/tar.js';
import { cli, expectedPcr, read, tmp } from './helpers.js';

// ------------------------------------------------------------------ a tar writer (test side)
interface E {
  name: string;
  type?: '0' | '1' | '2' | '5';
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  data?: string | Buffer;
  link?: string;
}
const oct = (n: number, len: number) => n.toString(8).padStart(len - 1, '0') + '\0';
function header(name: string, type: string, mode: number, uid: number, gid: number, size: number, mtime: number, link: string): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(oct(mode, 8), 100);
  h.write(oct(uid, 8), 108);
  h.write(oct(gid, 8), 116);
  h.write(oct(size, 12), 124);
  h.write(oct(mtime, 12), 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write(link, 157, 100, 'utf8');
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(oct(sum, 7) + ' ', 148);
  return h;
}
function tar(entries: E[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = typeof e.data === 'string' ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0));
    if (Buffer.byteLength(e.name) > 100) {
      const rec = (body: string) => {
        let len = body.length + 3;
        while (`${len} ${body}\n`.length !== len) len = `${len} ${body}\n`.length;
        return `${len} ${body}\n`;
      };
      const pax = Buffer.from(rec(`path=${e.name}`));
      parts.push(header('PaxHeader', 'x', 0o644, 0, 0, pax.length, 0, ''), pax, Buffer.alloc((512 - (pax.length % 512)) % 512));
    }
    parts.push(header(e.name.slice(0, 100), e.type ?? '0', e.mode ?? 0o644, e.uid ?? 0, e.gid ?? 0, data.length, e.mtime ?? 1_600_000_000, e.link ?? ''));
    parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

// ------------------------------------------------------------------ a newc reader (test side)
interface C {
  ino: number;
  name: string;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  data: Buffer;
  devmaj: number;
  devmin: number;
}
function cpio(b: Buffer): C[] {
  const out: C[] = [];
  let p = 0;
  for (;;) {
    expect(b.subarray(p, p + 6).toString()).toBe('070701');
    const f = (i: number) => parseInt(b.subarray(p + 6 + 8 * i, p + 14 + 8 * i).toString(), 16);
    const namesize = f(11);
    const name = b.subarray(p + 110, p + 110 + namesize - 1).toString();
    expect(b[p + 110 + namesize - 1]).toBe(0);
    let q = p + 110 + namesize;
    q += (4 - (q % 4)) % 4;
    const size = f(6);
    const c: C = { ino: f(0), name, mode: f(1), uid: f(2), gid: f(3), nlink: f(4), mtime: f(5), data: b.subarray(q, q + size), devmaj: f(7), devmin: f(8) };
    expect([f(7), f(8), f(12)]).toEqual([3, 1, 0]);
    q += size;
    q += (4 - (q % 4)) % 4;
    p = q;
    if (name === 'TRAILER!!!') {
      expect(b.length % 512).toBe(0);
      expect(b.subarray(p).every((x) => x === 0)).toBe(true);
      return out;
    }
    out.push(c);
  }
}

// ------------------------------------------------------------------ the test image
const LONG = 'z'.repeat(120);
const layer1 = tar([
  { name: 'bin/', type: '5', mode: 0o755, mtime: 1000 },
  { name: 'bin/ls', mode: 0o755, mtime: 1001, data: 'binary' },
  { name: 'bin/sh', type: '1', mode: 0o755, mtime: 1001, link: 'bin/ls' },
  { name: 'etc/', type: '5', mode: 0o755, mtime: 1000 },
  { name: 'etc/passwd', data: 'root:x:0:0::/root:/bin/sh\n' },
  { name: 'etc/hosts', data: 'image hosts\n' },
  { name: 'tmp/', type: '5', mode: 0o1777, mtime: 1002 },
  { name: 'Dockerfile', data: 'FROM scratch\n' },
  { name: 'usr/', type: '5', mode: 0o755, mtime: 1000 },
  { name: 'usr/lib/', type: '5', mode: 0o755, mtime: 1000 },
  { name: 'usr/lib/a', data: 'a' },
  { name: 'usr/lib/b', data: 'b' },
]);
const layer2 = tar([
  { name: 'app/', type: '5', mode: 0o750, uid: 1000, gid: 1000, mtime: 3000 },
  { name: 'app/run.sh', mode: 0o4755, uid: 1000, gid: 1000, mtime: 3001, data: '#!/bin/sh\necho hi\n' },
  { name: 'app/link', type: '2', mode: 0o644, mtime: 3002, link: 'run.sh' },
  { name: `app/${LONG}`, mtime: 3003, data: 'long' },
  { name: 'etc/', type: '5', mode: 0o755, mtime: 2000 },
  { name: 'etc/.wh.passwd' },
  { name: 'usr/', type: '5', mode: 0o755, mtime: 1000 },
  { name: 'usr/lib/', type: '5', mode: 0o700, mtime: 2000 },
  { name: 'usr/lib/.wh..wh..opq' },
  { name: 'usr/lib/c', data: 'c' },
]);
const config = Buffer.from(
  JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/bin', 'A=b'], Cmd: ['/app/run.sh', '--x'], Entrypoint: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha(layer1)}`, `sha256:${sha(layer2)}`] },
  }),
);

function dockerSave(): Buffer {
  const c = sha(config);
  return tar([
    { name: `${c}.json`, data: config },
    { name: `${sha(layer1)}/`, type: '5' },
    { name: `${sha(layer1)}/layer.tar`, data: layer1 },
    { name: `${sha(layer2)}/layer.tar`, data: layer2 },
    { name: 'manifest.json', data: JSON.stringify([{ Config: `${c}.json`, RepoTags: ['app:1'], Layers: [`${sha(layer1)}/layer.tar`, `${sha(layer2)}/layer.tar`] }]) },
  ]);
}

function ociBlobs(gzipLayers: boolean): { blobs: [string, Buffer][]; index: Buffer } {
  const l1 = gzipLayers ? gzipSync(layer1) : layer1;
  const l2 = gzipLayers ? gzipSync(layer2) : layer2;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha(config)}`, size: config.length },
      layers: [l1, l2].map((l) => ({ mediaType: `application/vnd.oci.image.layer.v1.tar${gzipLayers ? '+gzip' : ''}`, digest: `sha256:${sha(l)}`, size: l.length })),
    }),
  );
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha(manifest)}`, size: manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha(manifest)}`, size: manifest.length, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
      ],
    }),
  );
  return { blobs: [config, manifest, l1, l2].map((b) => [sha(b), b]), index };
}

function ociTar(gzipLayers: boolean): Buffer {
  const { blobs, index } = ociBlobs(gzipLayers);
  return tar([{ name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' }, { name: 'index.json', data: index }, ...blobs.map(([h, b]) => ({ name: `blobs/sha256/${h}`, data: b }))]);
}

const D = 1492533000; // 2017-04-18T16:30:00Z, linuxkit's defaultModTime
const S_DIR = 0o40000;
const S_REG = 0o100000;
const S_LNK = 0o120000;
const HOSTS = '127.0.0.1       localhost\n::1     localhost ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n';

/** [name, mode (type | perm), uid, mtime, data (file or link target)] in order. */
const EXPECTED: [string, number, number, number, string?][] = [
  ['rootfs', S_DIR | 0o755, 0, D],
  ['rootfs/app/', S_DIR | 0o750, 1000, 3000],
  ['rootfs/app/link', S_LNK | 0o777, 0, 3002, 'run.sh'],
  ['rootfs/app/run.sh', S_REG | 0o4755, 1000, 3001, '#!/bin/sh\necho hi\n'],
  [`rootfs/app/${LONG}`, S_REG | 0o644, 0, 3003, 'long'],
  ['rootfs/bin/', S_DIR | 0o755, 0, 1000],
  ['rootfs/bin/ls', S_REG | 0o755, 0, 1001, 'binary'],
  ['rootfs/bin/sh', S_LNK | 0o755, 0, 1001, 'ls'], // the second path of a hard link: a relative symlink
  ['rootfs/dev/', S_DIR | 0o755, 0, D],
  ['rootfs/dev/pts/', S_DIR | 0o755, 0, D],
  ['rootfs/dev/shm/', S_DIR | 0o755, 0, D],
  ['rootfs/etc/', S_DIR | 0o755, 0, D],
  ['rootfs/etc/hosts', S_REG | 0o755, 0, D, HOSTS],
  ['rootfs/etc/mtab', S_LNK | 0o777, 0, D, '/proc/mounts'],
  ['rootfs/etc/resolv.conf', S_LNK | 0o755, 0, D, '/run/resolvconf/resolv.conf'],
  ['rootfs/proc/', S_DIR | 0o755, 0, D],
  ['rootfs/sys/', S_DIR | 0o755, 0, D],
  ['rootfs/tmp/', S_DIR | 0o1777, 0, 1002],
  ['rootfs/usr/', S_DIR | 0o755, 0, 1000],
  ['rootfs/usr/lib/', S_DIR | 0o700, 0, 2000],
  ['rootfs/usr/lib/c', S_REG | 0o644, 0, 1_600_000_000, 'c'],
  ['rootfs', S_DIR | 0o755, 0, D],
  ['rootfs/dev', S_DIR | 0o755, 0, D],
  ['rootfs/run', S_DIR | 0o755, 0, D],
  ['rootfs/sys', S_DIR | 0o755, 0, D],
  ['rootfs/var', S_DIR | 0o755, 0, D],
  ['rootfs/proc', S_DIR | 0o755, 0, D],
  ['rootfs/tmp', S_DIR | 0o755, 0, D],
  ['cmd', S_REG | 0o644, 0, D, '/app/run.sh\n--x\n'],
  ['env', S_REG | 0o644, 0, D, 'PATH=/usr/bin\nA=b\n'],
];

let dir: string;
beforeAll(() => {
  dir = tmp('enclavekit-ramdisk-');
  writeFileSync(join(dir, 'save.tar'), dockerSave());
  writeFileSync(join(dir, 'oci.tar'), ociTar(true));
  const od = join(dir, 'oci-dir');
  const { blobs, index } = ociBlobs(false);
  mkdirSync(join(od, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(od, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(od, 'index.json'), index);
  for (const [h, b] of blobs) writeFileSync(join(od, 'blobs', 'sha256', h), b);
});

describe('eif ramdisk --image', () => {
  it('docker save: rootfs/ as docker export + linuxkit show it, then nitro-cli\'s files, cmd and env', async () => {
    const r = await cli(['eif', 'ramdisk', '--image', join(dir, 'save.tar'), '--out', join(dir, 'app.cpio'), '--json']);
    expect(r.code, r.out + r.err).toBe(0);
    const b = read(join(dir, 'app.cpio'));
    expect(r.json()).toMatchObject({ ok: true, kind: 'application', format: 'docker-save', arch: 'x86_64', cmd: ['/app/run.sh', '--x'], env: ['PATH=/usr/bin', 'A=b'], warnings: [], size: b.length });
    expect(r.json().sha384).toBe(createHash('sha384').update(b).digest('hex'));
    const got = cpio(b);
    expect(got.map((c) => c.name)).toEqual(EXPECTED.map((e) => e[0]));
    got.forEach((c, i) => {
      const [name, mode, uid, mtime, data] = EXPECTED[i]!;
      expect({ name, mode: c.mode, uid: c.uid, mtime: c.mtime }).toEqual({ name, mode, uid, mtime });
      expect(c.ino).toBe(721 + i);
      expect(c.nlink).toBe(mode & S_DIR && !(mode & 0o100000) ? 2 : 1);
      if (data !== undefined) expect(c.data.toString(), name).toBe(data);
      else expect(c.data.length).toBe(0);
    });
  });

  it('an OCI layout (gzip layers, a tarball or a directory) gives the same bytes; two runs are identical', async () => {
    const outs = [];
    for (const [src, out] of [['save.tar', 'a.cpio'], ['oci.tar', 'b.cpio'], ['oci-dir', 'c.cpio'], ['save.tar', 'd.cpio']] as const) {
      const r = await cli(['eif', 'ramdisk', '--image', join(dir, src), '--out', join(dir, out), '--json']);
      expect(r.code, r.out + r.err).toBe(0);
      outs.push(read(join(dir, out)));
    }
    for (const o of outs.slice(1)) expect(o.equals(outs[0]!)).toBe(true);
  });

  it('eif build with both ramdisks: PCR1 covers kernel+cmdline+bootstrap, PCR2 the application ramdisk', async () => {
    writeFileSync(join(dir, 'init'), Buffer.from('\x7fELF fake init'));
    writeFileSync(join(dir, 'nsm.ko'), Buffer.from('fake nsm module'));
    writeFileSync(join(dir, 'bzImage'), Buffer.alloc(4096, 0x42));
    const b = await cli(['eif', 'ramdisk', '--init', join(dir, 'init'), '--nsm', join(dir, 'nsm.ko'), '--out', join(dir, 'boot.cpio'), '--json']);
    expect(b.code, b.out + b.err).toBe(0);
    const boot = read(join(dir, 'boot.cpio'));
    expect(cpio(boot).map((c) => [c.name, c.mode, c.mtime, c.data.toString()])).toEqual([
      ['dev', S_DIR | 0o755, D, ''],
      ['init', S_REG | 0o755, D, '\x7fELF fake init'],
      ['nsm.ko', S_REG | 0o755, D, 'fake nsm module'],
    ]);
    const a = await cli(['eif', 'ramdisk', '--image', join(dir, 'save.tar'), '--out', join(dir, 'app2.cpio')]);
    expect(a.code).toBe(0);
    const app = read(join(dir, 'app2.cpio'));
    const cmdline = 'reboot=k panic=30 pci=off nomodules console=ttyS0';
    const e = await cli(['eif', 'build', '--kernel', join(dir, 'bzImage'), '--cmdline', cmdline, '--ramdisk', join(dir, 'boot.cpio'), '--ramdisk', join(dir, 'app2.cpio'), '--out', join(dir, 'img.eif'), '--json']);
    expect(e.code, e.err).toBe(0);
    const k = read(join(dir, 'bzImage'));
    expect(e.json().pcrs).toEqual({ '0': expectedPcr(k, Buffer.from(cmdline), boot, app), '1': expectedPcr(k, Buffer.from(cmdline), boot), '2': expectedPcr(app) });
  });

  it('CMD wins over ENTRYPOINT; ENTRYPOINT is used without CMD; neither is refused (as nitro-cli)', async () => {
    const mk = (cfg: object, name: string) => {
      const c = Buffer.from(JSON.stringify({ architecture: 'arm64', config: cfg, rootfs: { diff_ids: [`sha256:${sha(layer1)}`] } }));
      writeFileSync(join(dir, name), tar([{ name: 'c.json', data: c }, { name: 'l.tar', data: layer1 }, { name: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', Layers: ['l.tar'] }]) }]));
      return join(dir, name);
    };
    const r1 = await cli(['eif', 'ramdisk', '--image', mk({ Entrypoint: ['/bin/ls', '-l'] }, 'e.tar'), '--out', join(dir, 'e.cpio'), '--json']);
    expect(r1.json()).toMatchObject({ cmd: ['/bin/ls', '-l'], env: [], arch: 'aarch64' });
    const r2 = await cli(['eif', 'ramdisk', '--image', mk({ Cmd: [] , Entrypoint: ['/x'] }, 'f.tar'), '--out', join(dir, 'f.cpio'), '--json']);
    expect(r2.json().cmd).toEqual([]);
    const r3 = await cli(['eif', 'ramdisk', '--image', mk({}, 'g.tar'), '--out', join(dir, 'g.cpio'), '--json']);
    expect(r3.code).toBe(2);
    expect(r3.json()).toMatchObject({ code: 'ERR_IMAGE_INVALID', reason: 'image_entrypoint' });
  });

  it('refuses images it cannot read faithfully, with ERR_IMAGE_INVALID and a reason', async () => {
    const cases: [string, Buffer][] = [
      ['image_layout', tar([{ name: 'x', data: 'y' }])],
      ['image_digest', (() => {
        const c = Buffer.from(JSON.stringify({ config: { Cmd: ['x'] }, rootfs: { diff_ids: [`sha256:${'0'.repeat(64)}`] } }));
        return tar([{ name: 'c.json', data: c }, { name: 'l.tar', data: layer1 }, { name: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', Layers: ['l.tar'] }]) }]);
      })()],
      ['image_ambiguous', tar([{ name: 'manifest.json', data: JSON.stringify([{ Config: 'a', Layers: [] }, { Config: 'b', Layers: [] }]) }])],
      ['tar_checksum', (() => {
        const t = dockerSave();
        t[5]! ^= 1;
        return t;
      })()],
      ['tar_truncated', dockerSave().subarray(0, 700)],
      ['tar_hardlink', (() => {
        const l = tar([{ name: 'a', type: '1', link: 'missing' }]);
        const c = Buffer.from(JSON.stringify({ config: { Cmd: ['x'] }, rootfs: { diff_ids: [`sha256:${sha(l)}`] } }));
        return tar([{ name: 'c.json', data: c }, { name: 'l.tar', data: l }, { name: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', Layers: ['l.tar'] }]) }]);
      })()],
      ['tar_path', (() => {
        const l = tar([{ name: '../escape', data: 'x' }]);
        const c = Buffer.from(JSON.stringify({ config: { Cmd: ['x'] }, rootfs: { diff_ids: [`sha256:${sha(l)}`] } }));
        return tar([{ name: 'c.json', data: c }, { name: 'l.tar', data: l }, { name: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', Layers: ['l.tar'] }]) }]);
      })()],
    ];
    for (const [reason, bytes] of cases) {
      writeFileSync(join(dir, `bad-${reason}.tar`), bytes);
      const r = await cli(['eif', 'ramdisk', '--image', join(dir, `bad-${reason}.tar`), '--out', join(dir, 'bad.cpio'), '--json']);
      expect(r.code, reason).toBe(2);
      expect(r.json(), reason).toMatchObject({ ok: false, code: 'ERR_IMAGE_INVALID', reason });
    }
    expect((await cli(['eif', 'ramdisk', '--image', join(dir, 'save.tar'), '--init', 'x', '--out', join(dir, 'x.cpio')])).code).toBe(2);
  });

  it('property: the tar reader refuses any mutation of an archive with ERR_IMAGE_INVALID or reads it, never another throw', () => {
    const t = dockerSave();
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), fc.nat(), (at, x, cut) => {
        const b = Buffer.from(t);
        b[at % b.length]! ^= x;
        for (const input of [b, b.subarray(0, cut % b.length)]) {
          try {
            readTar(bytesSource(input));
          } catch (e) {
            expect(isToolkitError(e) && e.code === 'ERR_IMAGE_INVALID', String(e)).toBe(true);
          }
        }
      }),
      { numRuns: 400 },
    );
  });
});
