import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ToolkitError } from '../../attestation/errors.js';
import { NitroPlatform, type NsmClientLike } from '../../enclave/platform/nitro.js';
import { SevSnpPlatform } from '../../enclave/platform/sev-snp.js';
import { snpReportData } from '../../enclave/platform/sev-snp-binding.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ek-real-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return e instanceof ToolkitError ? `${e.code}:${e.reason}` : `foreign:${(e as Error).name}`;
  }
  return undefined;
}

describe('real Nitro platform', () => {
  it('fails with ERR_PLATFORM_UNAVAILABLE when there is no NSM device (this machine, or an injected path)', async () => {
    expect(await codeOf(NitroPlatform.open({ devicePath: join(dir, 'nsm') }))).toBe('ERR_PLATFORM_UNAVAILABLE:no_device');
    expect(await codeOf(NitroPlatform.open())).toBe('ERR_PLATFORM_UNAVAILABLE:no_device');
  });

  it('drives an injected NSM client and maps its errors to ERR_NSM with the NSM error name', async () => {
    await writeFile(join(dir, 'nsm'), '');
    const calls: string[] = [];
    const fake: NsmClientLike = {
      async attestation(r) {
        calls.push(`attest:${r.publicKey?.length}:${r.nonce === null}`);
        return Uint8Array.of(0x84);
      },
      async describePcr(i) {
        return { lock: i < 16, data: new Uint8Array(48) };
      },
      async extendPcr() {
        throw Object.assign(new Error('NSM error ReadOnlyIndex'), { code: 'ERR_NSM_READ_ONLY_INDEX', nsmError: 'ReadOnlyIndex' });
      },
      async lockPcr() {},
      async lockPcrs() {},
      async getRandom() {
        return new Uint8Array(100).fill(1);
      },
    };
    const p = await NitroPlatform.open({ devicePath: join(dir, 'nsm'), openNsm: async () => fake });
    expect(p.kind).toBe('nitro');
    expect(await p.attest({ publicKey: new Uint8Array(3) })).toEqual(Uint8Array.of(0x84));
    expect(calls).toEqual(['attest:3:true']);
    expect((await p.describePcr(3)).locked).toBe(true);
    expect(await codeOf(p.extendPcr(0, Uint8Array.of(1)))).toBe('ERR_NSM:ReadOnlyIndex');
    expect((await p.random(256)).length).toBe(256);
    await p.close();
    expect(await codeOf(p.attest())).toBe('ERR_PLATFORM_UNAVAILABLE:closed');
  });

  it('a device that exists but no addon behind it fails as ERR_NSM, not a crash', async () => {
    await writeFile(join(dir, 'nsm'), '');
    const p = await NitroPlatform.open({ devicePath: join(dir, 'nsm') });
    const c = await codeOf(p.attest({}));
    expect(c).toMatch(/^ERR_NSM:/);
  });
});

describe('real SEV-SNP platform', () => {
  it('fails with ERR_PLATFORM_UNAVAILABLE without configfs-tsm or /dev/sev-guest', async () => {
    expect(await codeOf(SevSnpPlatform.open({ tsmReportDir: join(dir, 'tsm'), sevGuestPath: join(dir, 'sev-guest') }))).toBe(
      'ERR_PLATFORM_UNAVAILABLE:no_device',
    );
    expect(await codeOf(SevSnpPlatform.open())).toBe('ERR_PLATFORM_UNAVAILABLE:no_device');
  });

  it('uses an injected /dev/sev-guest path: REPORT_DATA carries the binding, evidence = report || certs', async () => {
    await writeFile(join(dir, 'sev-guest'), '');
    let seen: Uint8Array | undefined;
    const p = await SevSnpPlatform.open({
      tsmReportDir: join(dir, 'tsm'),
      sevGuestPath: join(dir, 'sev-guest'),
      sevGuest: async () => async (rd) => {
        seen = rd;
        return { report: new Uint8Array(0x4a0).fill(2), certs: Uint8Array.of(9, 9) };
      },
    });
    expect(p.kind).toBe('sev-snp');
    const ev = await p.attest({ nonce: Uint8Array.of(1) });
    expect(seen).toEqual(snpReportData({ nonce: Uint8Array.of(1) }));
    expect(ev.length).toBe(0x4a0 + 2);
    expect(await codeOf(p.extendPcr(16, Uint8Array.of(1)))).toBe('ERR_PLATFORM_UNAVAILABLE:no_pcrs');
  });

  it('a configfs-tsm folder that is not a sev_guest provider fails with a project error', async () => {
    await mkdir(join(dir, 'tsm'));
    const p = await SevSnpPlatform.open({ tsmReportDir: join(dir, 'tsm') });
    expect(await codeOf(p.attest())).toBe('ERR_PLATFORM_UNAVAILABLE:device');
  });

  it('a device returning a wrong-size report is refused', async () => {
    await writeFile(join(dir, 'sev-guest'), '');
    const p = await SevSnpPlatform.open({
      tsmReportDir: join(dir, 'tsm'),
      sevGuestPath: join(dir, 'sev-guest'),
      sevGuest: async () => async () => ({ report: new Uint8Array(100), certs: new Uint8Array(0) }),
    });
    expect(await codeOf(p.attest())).toBe('ERR_PLATFORM_UNAVAILABLE:outblob');
  });
});
