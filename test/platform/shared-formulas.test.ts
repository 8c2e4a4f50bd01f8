import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as pure from '../../attestation/pure.js';
import * as full from '../../attestation/index.js';
import { imageIdFromFiles, simulatedBootPcrs } from '../../enclave/platform/sim-image.js';
import { simulatedMeasurement } from '../../enclave/platform/sim-snp.js';
import { snpReportData as enclaveReportData } from '../../enclave/platform/sev-snp-binding.js';
import { simImageId, simImageIdFromFiles, simPcr0, simSnpMeasurement } from '../../host/sim-stack.js';

// Independent restatement with node:crypto: the one shared implementation must keep these values.
const h384 = (...p: (Uint8Array | string)[]) => {
  const h = createHash('sha384');
  for (const x of p) h.update(x);
  return new Uint8Array(h.digest());
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ek-formulas-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('simulator formulas live once, in attestation/', () => {
  it('worker and host use the very same functions, exported by both attestation entries', () => {
    expect(pure.simBootPcrs).toBe(full.simBootPcrs);
    expect(simulatedBootPcrs).toBe(pure.simBootPcrs);
    expect(simulatedMeasurement).toBe(pure.simSnpMeasurement);
    expect(simSnpMeasurement).toBe(pure.simSnpMeasurement);
    expect(simPcr0).toBe(pure.simPcr0);
    expect(enclaveReportData).toBe(pure.snpReportData);
    expect(full.snpReportData).toBe(pure.snpReportData);
  });

  it('keeps the documented values (image id, PCR0..2, PCR4, MEASUREMENT)', () => {
    const files = [new TextEncoder().encode('a'), new TextEncoder().encode('bc')];
    const id = h384('enclavekit-sim-image-v1\0', ...files.map((f) => h384(f)));
    expect(simImageId(files)).toEqual(id);
    const pcrs = pure.simBootPcrs({ imageId: id });
    for (const k of [0, 1, 2]) expect(pcrs.get(k)).toEqual(h384(new Uint8Array(48), h384(`enclavekit-sim-pcr${k}-v1\0`, id)));
    expect(pcrs.get(4)).toEqual(h384(new Uint8Array(48), 'i-0e5a51c0de0000000'));
    expect(pcrs.get(3)).toEqual(new Uint8Array(48));
    expect(simPcr0(id)).toEqual(pcrs.get(0));
    expect(pure.simSnpMeasurement(id)).toEqual(h384('enclavekit-sim-snp-measurement-v1\0', id));
    expect(() => pure.simPcr0(new Uint8Array(47))).toThrow(RangeError);
    expect(() => pure.simSnpMeasurement(new Uint8Array(49))).toThrow(RangeError);
  });

  it('the two file-reading helpers agree (worker streams, host reads whole files)', async () => {
    await writeFile(join(dir, 'a.js'), 'export const a = 1;\n');
    await writeFile(join(dir, 'b.js'), new Uint8Array(3 << 20).fill(7));
    const paths = [join(dir, 'a.js'), join(dir, 'b.js')];
    expect(await simImageIdFromFiles(paths)).toEqual(await imageIdFromFiles(paths));
    expect(await simImageIdFromFiles(paths)).not.toEqual(await imageIdFromFiles([...paths].reverse()));
  });

  it('attestation/ stays free of node: modules outside its node entries', async () => {
    const root = fileURLToPath(new URL('../../attestation', import.meta.url));
    const offenders: string[] = [];
    for (const f of await readdir(root, { recursive: true })) {
      if (!f.endsWith('.ts') || f === 'crypto/node.ts' || f === 'index.ts' || f.endsWith('/node.ts')) continue;
      if (/from '(node:|\.\.\/\.\.\/(enclave|host|native))/.test(await readFile(join(root, f), 'utf8'))) offenders.push(f);
    }
    expect(offenders).toEqual([]);
  });
});
