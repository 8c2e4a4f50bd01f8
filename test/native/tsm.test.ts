import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, basename } from 'node:path';
import { tsmSevReport, type TsmFs } from '../../native/tsm.js';
import { snpGetExtReport } from '../../native/sevguest.js';
import { nativeBinding } from '../../native/binding.js';

/**
 * A fake configfs-tsm tree on disk: mkdir populates the attribute files as the kernel would, and a
 * write to inblob bumps generation and produces outblob/auxblob.
 */
function fakeConfigfs(opts: { provider?: string; floor?: number; reportSize?: number; aux?: Uint8Array | null; racer?: boolean } = {}): TsmFs & { writes: string[] } {
  const writes: string[] = [];
  const bump = async (dir: string) => {
    const g = Number(await fsp.readFile(join(dir, 'generation'), 'utf8'));
    await fsp.writeFile(join(dir, 'generation'), `${g + (opts.racer ? 2 : 1)}\n`);
  };
  return {
    writes,
    mkdir: async (p) => {
      await fsp.mkdir(p);
      await fsp.writeFile(join(p, 'provider'), `${opts.provider ?? 'sev_guest'}\n`);
      await fsp.writeFile(join(p, 'generation'), '7\n');
      await fsp.writeFile(join(p, 'privlevel_floor'), `${opts.floor ?? 0}\n`);
    },
    rmdir: (p) => fsp.rm(p, { recursive: true }),
    readFile: (p) => fsp.readFile(p),
    writeFile: async (p, d) => {
      writes.push(basename(p));
      await fsp.writeFile(p, d);
      const dir = join(p, '..');
      if (basename(p) === 'privlevel') await bump(dir);
      if (basename(p) === 'inblob') {
        const report = Buffer.alloc(opts.reportSize ?? 0x4a0);
        Buffer.from(d as Uint8Array).copy(report, 0x50); // REPORT_DATA
        await fsp.writeFile(join(dir, 'outblob'), report);
        if (opts.aux !== null) await fsp.writeFile(join(dir, 'auxblob'), opts.aux ?? Buffer.alloc(0));
        await bump(dir);
      }
    },
  };
}

let root = '';
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ek-tsm-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('configfs-tsm (fake tree)', () => {
  const rd = new Uint8Array(64).map((_, i) => i);

  it('writes the 64-byte inblob and returns outblob, auxblob and provider, then removes the entry', async () => {
    const fs = fakeConfigfs({ aux: new Uint8Array([1, 2, 3]) });
    const r = await tsmSevReport(rd, { root, name: 'r1', fs });
    expect(r.provider).toBe('sev_guest');
    expect(r.report.length).toBe(0x4a0);
    expect(Buffer.from(r.report.subarray(0x50, 0x90)).equals(Buffer.from(rd))).toBe(true);
    expect(r.auxblob).toEqual(new Uint8Array([1, 2, 3]));
    expect(r.generation).toBe(8);
    expect(fs.writes).toEqual(['inblob']);
    expect(existsSync(join(root, 'r1'))).toBe(false);
  });

  it('treats an empty or absent auxblob as no certificates', async () => {
    expect((await tsmSevReport(rd, { root, fs: fakeConfigfs() })).auxblob).toBeNull();
    expect((await tsmSevReport(rd, { root, fs: fakeConfigfs({ aux: null }) })).auxblob).toBeNull();
  });

  it('sets privlevel when asked, after checking privlevel_floor', async () => {
    const fs = fakeConfigfs({ floor: 1 });
    await tsmSevReport(rd, { root, name: 'p', fs, privlevel: 2 });
    expect(fs.writes).toEqual(['privlevel', 'inblob']);
    await expect(tsmSevReport(rd, { root, fs: fakeConfigfs({ floor: 2 }), privlevel: 1 })).rejects.toMatchObject({ code: 'ERR_TSM_PRIVLEVEL' });
  });

  it('refuses another provider (e.g. tdx_guest) and cleans up', async () => {
    await expect(tsmSevReport(rd, { root, name: 'x', fs: fakeConfigfs({ provider: 'tdx_guest' }) })).rejects.toMatchObject({ code: 'ERR_TSM_PROVIDER' });
    expect(existsSync(join(root, 'x'))).toBe(false);
  });

  it('detects a concurrent writer through generation', async () => {
    await expect(tsmSevReport(rd, { root, fs: fakeConfigfs({ racer: true }) })).rejects.toMatchObject({ code: 'ERR_TSM_GENERATION' });
  });

  it('refuses an outblob that is not a 1184-byte report', async () => {
    await expect(tsmSevReport(rd, { root, fs: fakeConfigfs({ reportSize: 1000 }) })).rejects.toMatchObject({ code: 'ERR_TSM_OUTBLOB_INVALID' });
  });

  it('says configfs-tsm is unavailable when the root does not exist (real fs)', async () => {
    await expect(tsmSevReport(rd, { root: join(root, 'nope', 'tsm', 'report') })).rejects.toMatchObject({ code: 'ERR_TSM_UNAVAILABLE' });
  });

  it('rejects bad arguments (RangeError) before touching the tree', async () => {
    await expect(tsmSevReport(new Uint8Array(63), { root })).rejects.toThrow(RangeError);
    await expect(tsmSevReport(rd, { root, privlevel: 4 })).rejects.toThrow(RangeError);
    await expect(tsmSevReport(rd, { root, name: '../escape' })).rejects.toThrow(RangeError);
  });
});

describe.runIf(nativeBinding() !== null)('/dev/sev-guest SNP_GET_EXT_REPORT (error paths only: no SEV-SNP here)', () => {
  const rd = new Uint8Array(64);
  it('a missing device says this is not an SEV-SNP guest', async () => {
    await expect(snpGetExtReport(rd, { path: join(root, 'sev-guest') })).rejects.toMatchObject({ code: 'ERR_SEV_GUEST_UNAVAILABLE', syscall: 'open' });
  });

  it('the ioctl on a regular file fails with ENOTTY as ERR_SEV_GUEST_IOCTL', async () => {
    const f = join(root, 'plain');
    await fsp.writeFile(f, 'x');
    await expect(snpGetExtReport(rd, { path: f })).rejects.toMatchObject({ code: 'ERR_SEV_GUEST_IOCTL', syscall: 'ioctl', errno: -25, vmmError: 0, fwError: 0 });
  });

  it('checks arguments in TS and again in C++', async () => {
    await expect(snpGetExtReport(new Uint8Array(32))).rejects.toThrow(RangeError);
    await expect(snpGetExtReport(rd, { vmpl: 4 })).rejects.toThrow(RangeError);
    await expect(snpGetExtReport(rd, { certsLength: 100 })).rejects.toThrow(RangeError);
    expect(() => nativeBinding()!.snpGetExtReport('/dev/null', new Uint8Array(63), 0, 0)).toThrow(RangeError);
  });
});
