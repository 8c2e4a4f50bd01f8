/** SEV-SNP workers: the host verifies MEASUREMENT and the REPORT_DATA binding of key, result and nonce. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { once } from 'node:events';
import { serveSession } from '../../enclave/server.js';
import { SimSnpPlatform, simulatedMeasurement } from '../../enclave/platform/sim-snp.js';
import { openSimulatorState } from '../../enclave/sim-state.js';
import { generateRecipientKeyPair } from '../../enclave/keys.js';
import { encodeResult, manifestBody, queryDigest, sealDigest, sha384 } from '../../enclave/protocol/index.js';
import { runJob } from '../../host/run.js';
import { connectEnclave } from '../../host/enclave-conn.js';
import { readSnpSimulatorRootFromState, simSnpMeasurement } from '../../host/sim-stack.js';
import { setUp, IMAGE_A, IMAGE_B, type Fixture } from './helpers.js';

let fx: Fixture;
let ark: Uint8Array;
beforeAll(async () => {
  fx = await setUp(30);
  ark = (await readSnpSimulatorRootFromState(join(fx.stack.dir, 'state')))!;
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

describe('SEV-SNP worker evidence', () => {
  it('the host formula for a simulated MEASUREMENT matches the platform', () => {
    expect(Buffer.from(simSnpMeasurement(IMAGE_A)).equals(Buffer.from(simulatedMeasurement(IMAGE_A)))).toBe(true);
  });

  it('an attested SNP result verifies; a wrong measurement or key binding does not', async () => {
    const state = await openSimulatorState(join(fx.stack.dir, 'state'), { now: new Date() });
    const platform = new SimSnpPlatform({ chain: state.snpChain, measurement: simulatedMeasurement(IMAGE_A) });
    const keys = await generateRecipientKeyPair();
    const other = await generateRecipientKeyPair();
    const serve = async (claimedKey: Uint8Array) => {
      const path = join(fx.stack.dir, `snp-${Math.random().toString(36).slice(2)}.sock`);
      const server: Server = createServer((s) =>
        void serveSession(s, {
          attest: (nonce) => platform.attest({ publicKey: keys.publicKeySpki, nonce }),
          publicKey: claimedKey,
          startJob: async (start) => ({
            jobId: start.jobId,
            addBatch() {},
            async finish(end) {
              const result = encodeResult({
                version: 2, jobId: start.jobId, datasetId: start.datasetId, datasetDigest: end.datasetDigest,
                sealDigest: sealDigest(manifestBody(start.manifest)),
                keyArns: [...new Set(Object.values(start.manifest.keys).map((k) => k.keyId))].sort(), query: start.query,
                queryDigest: queryDigest(start.query), counts: { records: end.count, matched: end.count, groups: 0, suppressedGroups: 0 },
                groups: [], privacy: { minGroupSize: 10, dp: null }, ledger: { generation: 1, spent: 0 },
                audit: { instance: new Uint8Array(16), seq: 0, prev: new Uint8Array(48) }, platform: 'simulator', workerVersion: 'snp-test/1',
              });
              return { result, evidence: await platform.attest({ publicKey: keys.publicKeySpki, nonce: start.nonce, userData: sha384(result) }) };
            },
            abort() {},
          }),
          log: () => {},
        }),
      );
      server.listen(path);
      await once(server, 'listening');
      return { path, server };
    };
    const run = async (claimedKey: Uint8Array, measurement: Uint8Array) => {
      const { path, server } = await serve(claimedKey);
      try {
        return await runJob(fx.baseRun({ connect: () => connectEnclave({ kind: 'unix', path }), expect: { measurement, snpSimulatorRoots: [ark] } }));
      } finally {
        server.close();
      }
    };
    const ok = await run(keys.publicKeySpki, simSnpMeasurement(IMAGE_A));
    if (!ok.ok) throw new Error(ok.error.message);
    expect(ok.verification).toMatchObject({ format: 'sev-snp', platform: 'simulator', measurement: Buffer.from(simSnpMeasurement(IMAGE_A)).toString('hex') });

    const wrongImage = await run(keys.publicKeySpki, simSnpMeasurement(IMAGE_B));
    expect(wrongImage.ok).toBe(false);
    if (!wrongImage.ok) expect(wrongImage.error).toMatchObject({ code: 'ERR_ATTESTATION_POLICY', stage: 'attestation' });

    const wrongKey = await run(other.publicKeySpki, simSnpMeasurement(IMAGE_A));
    expect(wrongKey.ok).toBe(false);
    if (!wrongKey.ok) expect(wrongKey.error.message).toMatch(/REPORT_DATA/);
  });

  it('a worker process with --sim-evidence sev-snp attests at hello; the Nitro-only KMS then refuses its Recipient', async () => {
    const w = await fx.stack.startWorker({ imageId: IMAGE_A, name: 'snp', extraArgs: ['--sim-evidence', 'sev-snp'] });
    const out = await runJob(fx.baseRun({ connect: () => connectEnclave({ kind: 'unix', path: w.socketPath }), expect: { measurement: simSnpMeasurement(IMAGE_A), snpSimulatorRoots: [ark] } }));
    expect(out.ok).toBe(false);
    if (out.ok) return;
    expect(out.worker).toMatchObject({ format: 'sev-snp', platform: 'simulator' });
    expect(['stream', 'result']).toContain(out.error.stage);
    expect(out.error.message).toMatch(/ERR_KMS_REQUEST/);
  });
});
