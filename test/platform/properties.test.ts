import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../attestation/bytes.js';
import { ToolkitError } from '../../attestation/errors.js';
import { verifyNitro } from '../../attestation/nitro/node.js';
import { openPlatform, simulatedBootPcrs, imageIdFromFiles } from '../../enclave/platform/index.js';
import { PcrBank } from '../../enclave/platform/pcr-bank.js';
import { snpReportData } from '../../enclave/platform/sev-snp-binding.js';
import { openSimulatorState } from '../../enclave/sim-state.js';

type Op = { t: 'extend'; i: number; data: Uint8Array } | { t: 'lock'; i: number } | { t: 'range'; n: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('extend' as const), i: fc.integer({ min: 0, max: 31 }), data: fc.uint8Array({ maxLength: 40 }) }),
  fc.record({ t: fc.constant('lock' as const), i: fc.integer({ min: 0, max: 31 }) }),
  fc.record({ t: fc.constant('range' as const), n: fc.integer({ min: 0, max: 34 }) }),
);

describe('PCR bank against a reference model (fast-check)', () => {
  it('any sequence of extend/lock/lockRange behaves as the NSM specifies', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const bank = new PcrBank(simulatedBootPcrs({ imageId: new Uint8Array(48).fill(3) }));
        const values = [...Array(32).keys()].map((i) => toHex(bank.describe(i).value));
        const locked = [...Array(32).keys()].map((i) => i < 16);
        for (const o of ops) {
          let err: string | undefined;
          try {
            if (o.t === 'extend') bank.extend(o.i, o.data);
            else if (o.t === 'lock') bank.lock(o.i);
            else bank.lockRange(o.n);
          } catch (e) {
            err = e instanceof ToolkitError ? e.reason : 'foreign';
          }
          if (o.t === 'extend') {
            if (locked[o.i]) expect(err).toBe('ReadOnlyIndex');
            else {
              expect(err).toBeUndefined();
              values[o.i] = createHash('sha384').update(Buffer.from(values[o.i]!, 'hex')).update(o.data).digest('hex');
            }
          } else if (o.t === 'lock') {
            locked[o.i] = true;
          } else if (o.n > 32) expect(err).toBe('InvalidIndex');
          else for (let i = 0; i < o.n; i++) locked[i] = true;
        }
        for (let i = 0; i < 32; i++) {
          const d = bank.describe(i);
          expect(toHex(d.value)).toBe(values[i]);
          expect(d.locked).toBe(locked[i]);
        }
        expect([...bank.documentPcrs().keys()]).toEqual([...Array(32).keys()].filter((i) => locked[i]));
      }),
      { numRuns: 200 },
    );
  });
});

describe('SNP REPORT_DATA binding (fast-check)', () => {
  it('distinct (public key, user data, nonce) triples give distinct REPORT_DATA, even with the same concatenation', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 24 }), fc.nat(24), fc.nat(24), (all, a, b) => {
        const cut1 = Math.min(a, all.length);
        const cut2 = Math.min(Math.max(b, cut1), all.length);
        const t1 = { publicKey: all.subarray(0, cut1), userData: all.subarray(cut1, cut2), nonce: all.subarray(cut2) };
        const t2 = { publicKey: all.subarray(0, cut2), userData: all.subarray(cut2), nonce: new Uint8Array(0) };
        const same = cut1 === cut2 && cut2 === all.length;
        expect(toHex(snpReportData(t1)) === toHex(snpReportData(t2))).toBe(same);
      }),
      { numRuns: 200 },
    );
  });
});

describe('simulated Nitro documents (fast-check)', () => {
  it('any user data / nonce / public key within the producer limits round-trips through the verifier', async () => {
    const now = new Date('2026-06-01T12:00:00Z');
    const { createNitroSimCa } = await import('../../attestation/sim/nitro.js');
    const { SimNitroPlatform } = await import('../../enclave/platform/sim-nitro.js');
    const ca = await createNitroSimCa({ now });
    const p = new SimNitroPlatform({ ca, identity: { imageId: new Uint8Array(48).fill(5) }, now: () => now });
    const opt = (max: number) => fc.option(fc.uint8Array({ maxLength: max }), { nil: undefined });
    await fc.assert(
      fc.asyncProperty(opt(512), opt(512), opt(1024), async (userData, nonce, publicKey) => {
        const o = { ...(userData ? { userData } : {}), ...(nonce ? { nonce } : {}), ...(publicKey ? { publicKey } : {}) };
        const v = verifyNitro(await p.attest(o), { now, simulatorRoots: [ca.rootDer] });
        expect(v.platform).toBe('simulator');
        // An empty value is encoded as an empty bstr; absent as null: the verifier may report either as absent.
        for (const [got, want] of [[v.userData, userData], [v.nonce, nonce], [v.publicKey, publicKey]] as const)
          expect(toHex(got ?? new Uint8Array(0))).toBe(toHex(want ?? new Uint8Array(0)));
      }),
      { numRuns: 25 },
    );
  });
});

describe('openPlatform', () => {
  it('opens the simulator only when asked, from the state folder and the image files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ek-open-'));
    try {
      const now = new Date('2026-06-01T12:00:00Z');
      await writeFile(join(dir, 'w.js'), 'x');
      const p = await openPlatform({ kind: 'simulator', stateDir: join(dir, 's'), imageFiles: [join(dir, 'w.js')], now: () => now });
      expect([p.kind, p.evidenceFormat]).toEqual(['simulator', 'nitro']);
      const state = await openSimulatorState(join(dir, 's'), { now });
      const v = verifyNitro(await p.attest(), { now, simulatorRoots: [state.nitroRootDer] });
      expect(toHex(v.pcrs.get(0)!)).toBe(toHex(simulatedBootPcrs({ imageId: await imageIdFromFiles([join(dir, 'w.js')]) }).get(0)!));
      const s = await openPlatform({ kind: 'simulator', evidence: 'sev-snp', stateDir: join(dir, 's'), imageId: new Uint8Array(48) });
      expect([s.kind, s.evidenceFormat]).toEqual(['simulator', 'sev-snp']);
      await expect(openPlatform({ kind: 'nitro', devicePath: join(dir, 'nsm') })).rejects.toMatchObject({ code: 'ERR_PLATFORM_UNAVAILABLE' });
      await expect(openPlatform({ kind: 'tdx' } as never)).rejects.toThrow(TypeError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
