/**
 * A worker that attests validly (simulator root, right image) but lies about the result: the host must
 * catch every mismatch between the evidence, the result bytes and the job it ran.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { once } from 'node:events';
import { serveSession, type ActiveJob } from '../../enclave/server.js';
import { SimNitroPlatform } from '../../enclave/platform/sim-nitro.js';
import { openSimulatorState } from '../../enclave/sim-state.js';
import { generateRecipientKeyPair, type RecipientKeyPair } from '../../enclave/keys.js';
import { encodeResult, manifestBody, queryDigest, sealDigest, sha384, type JobStartMessage, type ResultDocument } from '../../enclave/protocol/index.js';
import { runJob } from '../../host/run.js';
import { connectEnclave } from '../../host/enclave-conn.js';
import { setUp, IMAGE_A, type Fixture } from './helpers.js';

let fx: Fixture;
let platform: SimNitroPlatform;
let keys: RecipientKeyPair;
let otherKeys: RecipientKeyPair;
beforeAll(async () => {
  fx = await setUp(30);
  const state = await openSimulatorState(join(fx.stack.dir, 'state'), { now: new Date() });
  platform = new SimNitroPlatform({ ca: state.nitroCa, identity: { imageId: IMAGE_A } });
  keys = await generateRecipientKeyPair();
  otherKeys = await generateRecipientKeyPair();
}, 60_000);
afterAll(async () => {
  await fx?.stack.close();
});

type Lie = (start: JobStartMessage, end: { count: number; datasetDigest: Uint8Array }) => Promise<{ result: Uint8Array; evidence: Uint8Array }>;

function honestDoc(start: JobStartMessage, end: { count: number; datasetDigest: Uint8Array }): ResultDocument {
  return {
    version: 2,
    jobId: start.jobId,
    datasetId: start.datasetId,
    datasetDigest: end.datasetDigest,
    sealDigest: sealDigest(manifestBody(start.manifest)),
    keyArns: [...new Set(Object.values(start.manifest.keys).map((k) => k.keyId))].sort(),
    query: start.query,
    queryDigest: queryDigest(start.query),
    counts: { records: end.count, matched: end.count, groups: 0, suppressedGroups: 0 },
    groups: [],
    privacy: { minGroupSize: 10, dp: null },
    ledger: { generation: 1, spent: 0 },
    audit: { instance: new Uint8Array(16), seq: 0, prev: new Uint8Array(48) },
    platform: 'simulator',
    workerVersion: 'liar/1',
  };
}

async function liar(lie: Lie) {
  const path = join(fx.stack.dir, `liar-${Math.random().toString(36).slice(2)}.sock`);
  const server: Server = createServer((s) =>
    void serveSession(s, {
      attest: (nonce) => platform.attest({ publicKey: keys.publicKeySpki, nonce }),
      startJob: async (start): Promise<ActiveJob> => ({
        jobId: start.jobId,
        addBatch() {},
        finish: (end) => lie(start, end),
        abort() {},
      }),
      log: () => {},
    }),
  );
  server.listen(path);
  await once(server, 'listening');
  try {
    return await runJob(fx.baseRun({ connect: () => connectEnclave({ kind: 'unix', path }) }));
  } finally {
    server.close();
  }
}

describe('a lying worker is caught', () => {
  it('the control: an honest answer verifies', async () => {
    const out = await liar(async (start, end) => {
      const result = encodeResult(honestDoc(start, end));
      return { result, evidence: await platform.attest({ publicKey: keys.publicKeySpki, nonce: start.nonce, userData: sha384(result) }) };
    });
    expect(out.ok).toBe(true);
  });

  it('user_data that is not SHA-384 of the result bytes', async () => {
    const out = await liar(async (start, end) => {
      const result = encodeResult(honestDoc(start, end));
      const other = encodeResult({ ...honestDoc(start, end), counts: { records: end.count, matched: 0, groups: 0, suppressedGroups: 0 } });
      return { result, evidence: await platform.attest({ publicKey: keys.publicKeySpki, nonce: start.nonce, userData: sha384(other) }) };
    });
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error).toMatchObject({ code: 'ERR_ATTESTATION_POLICY', stage: 'verify' });
    if (!out.ok) expect(out.error.message).toContain('user_data');
  });

  it('a stale nonce (the hello nonce replayed instead of the job nonce)', async () => {
    const out = await liar(async (start, end) => {
      const result = encodeResult(honestDoc(start, end));
      return { result, evidence: await platform.attest({ publicKey: keys.publicKeySpki, nonce: new Uint8Array(32), userData: sha384(result) }) };
    });
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.message).toContain('nonce');
  });

  it('a result signed under another worker key than the one attested at hello', async () => {
    const out = await liar(async (start, end) => {
      const result = encodeResult(honestDoc(start, end));
      return { result, evidence: await platform.attest({ publicKey: otherKeys.publicKeySpki, nonce: start.nonce, userData: sha384(result) }) };
    });
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.message).toContain('public_key');
  });

  it('a correctly attested result about other data, another job or another platform', async () => {
    for (const [field, tweak] of [
      ['datasetDigest', (d: ResultDocument) => ({ ...d, datasetDigest: new Uint8Array(48) })],
      ['jobId', (d: ResultDocument) => ({ ...d, jobId: 'someone-else' })],
      ['counts.records', (d: ResultDocument) => ({ ...d, counts: { ...d.counts, records: d.counts.records - 1 } })],
      ['platform', (d: ResultDocument) => ({ ...d, platform: 'nitro' as const })],
      ['queryDigest', (d: ResultDocument) => ({ ...d, queryDigest: new Uint8Array(48).fill(1) })],
      ['sealDigest', (d: ResultDocument) => ({ ...d, sealDigest: new Uint8Array(48).fill(2) })],
      ['keyArns', (d: ResultDocument) => ({ ...d, keyArns: ['arn:aws:kms:us-east-1:999999999999:key/host-minted'] })],
    ] as const) {
      const out = await liar(async (start, end) => {
        const result = encodeResult(tweak(honestDoc(start, end)));
        return { result, evidence: await platform.attest({ publicKey: keys.publicKeySpki, nonce: start.nonce, userData: sha384(result) }) };
      });
      expect(out.ok, field).toBe(false);
      if (!out.ok) {
        expect(out.error.code).toBe('ERR_RESULT_INVALID');
        expect(out.error.message).toContain(`result.${field}`);
      }
    }
  });
});
