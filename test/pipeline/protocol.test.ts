import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DatasetDigest, FrameDecoder, FrameWriter, MESSAGE_TYPES, SequenceChecker, decodeMessage, encodeFrame, keyEncryptionContext, negotiateMaxFrame, readMessages,
  validateMessage, type JobStartMessage, type Message, type RecordsMessage,
} from '../../enclave/protocol/index.js';
import { encodeCborFast } from '../../enclave/protocol/cbor.js';
import { expectCode, onlyProjectErrors } from './helpers.js';

const nonce = new Uint8Array(32).fill(7);
/** A version 2 (sealed) manifest: messages check its shape; the worker checks its seal. */
const manifest = {
  version: 2, datasetId: 'ds1', idField: 'id', fields: ['email'], schema: { id: 'number', email: 'string', n: 'number' },
  keys: { k0: { keyId: 'arn:aws:kms:us-east-1:111122223333:key/test-key', ciphertextBlob: 'AAEC', encryptionContext: keyEncryptionContext('ds1', 'k0') } },
  records: 2, digest: 'ab'.repeat(48), policy: null, seal: { k0: 'cd'.repeat(48) },
};
const ledger = new Uint8Array(60).fill(3);
const samples: Message[] = [
  { t: 'hello', id: 0, version: 1, nonce },
  { t: 'hello', id: 0, version: 1, nonce, maxFrame: 1 << 20 },
  { t: 'attestation', id: 1, evidence: new Uint8Array([1, 2, 3]) },
  { t: 'job_start', id: 2, jobId: 'job-1', datasetId: 'ds1', query: { groupBy: ['region'] }, manifest: manifest as never, nonce },
  { t: 'records', id: 3, jobId: 'job-1', seq: 0, records: [{ id: 1, email: 'ekf1.k0.x.y' }, { id: 2, n: 1.5 }] },
  { t: 'job_end', id: 4, jobId: 'job-1', count: 2, datasetDigest: new Uint8Array(48) },
  { t: 'result', id: 5, jobId: 'job-1', result: new Uint8Array([0xa0]), evidence: new Uint8Array([1]) },
  { t: 'error', id: 6, jobId: 'job-1', code: 'ERR_FIELD_DECRYPT', message: 'x' },
  { t: 'error', id: 7, code: 'ERR_PROTOCOL', message: '' },
  { t: 'job_start', id: 8, jobId: 'job-2', datasetId: 'ds1', query: { groupBy: ['region'] }, manifest: manifest as never, nonce, ledger },
  { t: 'result', id: 9, jobId: 'job-2', result: new Uint8Array([0xa0]), evidence: new Uint8Array([1]), publicKey: new Uint8Array([4, 5]), ledger },
  { t: 'refusal', id: 10, jobId: 'job-3', refusal: new Uint8Array([0xa0]), evidence: new Uint8Array([1]) },
  { t: 'refusal', id: 11, jobId: 'job-4', refusal: new Uint8Array([0xa0]), evidence: new Uint8Array([1]), publicKey: new Uint8Array([4]), ledger },
  // Issue #10 (credentials hand-off, health check); their negative cases are in test/deploy/protocol-credentials.test.ts.
  { t: 'credentials', id: 12, accessKeyId: 'ASIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLE', expiration: '2031-01-01T00:00:00Z' },
  { t: 'status_request', id: 13 },
  { t: 'status', id: 14, workerVersion: 'enclavekit-worker/0.2.0', platform: 'simulator', uptimeMs: 1, jobs: 0, credentials: false },
];

function frameOf(v: unknown): Uint8Array {
  const body = encodeCborFast(v);
  const f = new Uint8Array(4 + body.length);
  new DataView(f.buffer).setUint32(0, body.length);
  f.set(body, 4);
  return f;
}

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

describe('frames', () => {
  it('round-trips every message type', () => {
    expect(new Set(samples.map((m) => m.t))).toEqual(new Set(MESSAGE_TYPES));
    for (const m of samples) {
      const dec = new FrameDecoder();
      const out = dec.push(encodeFrame(m));
      expect(out).toHaveLength(1);
      expect(out[0]!.t).toBe(m.t);
      expect(JSON.stringify(out[0])).toBe(JSON.stringify(validateMessage(structuredClone(m))));
    }
  });

  it('decodes a stream split at every byte position, and byte by byte', () => {
    const stream = concat(samples.map((m) => encodeFrame(m)));
    for (let cut = 0; cut <= stream.length; cut++) {
      const dec = new FrameDecoder();
      const got = [...dec.push(stream.subarray(0, cut)), ...dec.push(stream.subarray(cut))];
      expect(got.map((m) => m.t)).toEqual(samples.map((m) => m.t));
      dec.end();
    }
    const dec = new FrameDecoder();
    const got: Message[] = [];
    for (let i = 0; i < stream.length; i++) got.push(...dec.push(stream.subarray(i, i + 1)));
    expect(got.map((m) => m.id)).toEqual(samples.map((m) => m.id));
    expect(dec.buffered).toBe(0);
  });

  it('records survive the wire with the same dataset digest, large integers included', () => {
    const recs = [{ id: 1, big: 2 ** 60, neg: -4363708344855777, f: 0.1, s: 'é', n: null, a: [1, { b: true }] }];
    const [m] = new FrameDecoder().push(encodeFrame({ t: 'records', id: 0, jobId: 'j', seq: 0, records: recs }));
    const a = new DatasetDigest('d');
    a.add(recs[0]);
    const b = new DatasetDigest('d');
    b.add((m as RecordsMessage).records[0]);
    expect(Buffer.from(b.digest()).toString('hex')).toBe(Buffer.from(a.digest()).toString('hex'));
  });

  it('refuses an oversized frame from its header alone, before the body arrives', () => {
    const dec = new FrameDecoder({ maxFrame: 100 });
    expectCode(() => dec.push(new Uint8Array([0, 0, 0, 101])), 'ERR_FRAME_TOO_LARGE');
    // poisoned afterwards
    expectCode(() => dec.push(new Uint8Array([0])), 'ERR_FRAME_TOO_LARGE');
    const big = new FrameDecoder();
    expectCode(() => big.push(new Uint8Array([0xff, 0xff, 0xff, 0xff])), 'ERR_FRAME_TOO_LARGE');
    expectCode(() => encodeFrame(samples[4]!, 10), 'ERR_FRAME_TOO_LARGE');
  });

  it('refuses truncated, empty and malformed frames', () => {
    const f = encodeFrame(samples[0]!);
    for (let cut = 1; cut < f.length; cut++) {
      const dec = new FrameDecoder();
      expect(dec.push(f.subarray(0, cut))).toEqual([]);
      expectCode(() => dec.end(), 'ERR_PROTOCOL', 'truncated');
    }
    expectCode(() => new FrameDecoder().push(new Uint8Array([0, 0, 0, 0])), 'ERR_PROTOCOL', 'empty_frame');
    // body is two CBOR items
    expectCode(() => new FrameDecoder().push(new Uint8Array([0, 0, 0, 2, 1, 2])), 'ERR_PROTOCOL', 'cbor');
    // body is a truncated CBOR map
    expectCode(() => new FrameDecoder().push(new Uint8Array([0, 0, 0, 2, 0xa2, 0x61])), 'ERR_PROTOCOL', 'cbor');
    // not a map
    expectCode(() => decodeMessage(encodeCborFast([1, 2])), 'ERR_PROTOCOL', '$');
  });

  it('job_start carries the sealed manifest (validated) and the sealed ledger as given', () => {
    const [m] = new FrameDecoder().push(encodeFrame(samples[9]!));
    const start = m as JobStartMessage;
    expect(start.manifest).toEqual(manifest);
    expect(start.ledger).toEqual(ledger);
    const [n] = new FrameDecoder().push(encodeFrame(samples[3]!));
    expect('ledger' in n!).toBe(false);
  });

  it('a sender cannot put an invalid message on the wire', () => {
    expectCode(() => encodeFrame({ t: 'records', id: 0, jobId: 'j', seq: 0, records: [] } as Message), 'ERR_PROTOCOL', 'records');
    expectCode(() => new FrameWriter().encode({ t: 'error', code: 'bad code', message: '' }), 'ERR_PROTOCOL', 'code');
  });

  it('reads messages from an async stream and reports a truncated tail', async () => {
    const stream = concat(samples.map((m) => encodeFrame(m)));
    async function* chunks(b: Uint8Array) { for (let i = 0; i < b.length; i += 7) yield b.subarray(i, i + 7); }
    const got: string[] = [];
    for await (const m of readMessages(chunks(stream))) got.push(m.t);
    expect(got).toEqual(samples.map((m) => m.t));
    await expect(async () => { for await (const _ of readMessages(chunks(stream.subarray(0, stream.length - 1)))) void _; })
      .rejects.toMatchObject({ code: 'ERR_PROTOCOL', reason: 'truncated' });
  });

  it('FrameWriter numbers messages and SequenceChecker catches reorder, replay and gaps', () => {
    const w = new FrameWriter();
    const dec = new FrameDecoder();
    const msgs = dec.push(concat([w.encode({ t: 'hello', version: 1, nonce }), w.encode({ t: 'attestation', evidence: new Uint8Array(1) })]));
    const seq = new SequenceChecker('message id');
    for (const m of msgs) seq.check(m.id);
    expectCode(() => seq.check(1), 'ERR_PROTOCOL', 'replayed');
    expectCode(() => seq.check(5), 'ERR_PROTOCOL', 'out_of_order');
    expect(negotiateMaxFrame(16 << 20, 1 << 20)).toBe(1 << 20);
    expect(negotiateMaxFrame(16 << 20, 1)).toBe(64 * 1024);
  });
});

describe('message validators: negative cases', () => {
  const base = (i: number) => structuredClone(samples[i]!) as unknown as Record<string, unknown>;
  const cases: [string, Record<string, unknown>, string][] = [];
  const mut = (i: number, f: (m: Record<string, unknown>) => void, reason: string, name: string) => {
    const m = base(i);
    f(m);
    cases.push([name, m, reason]);
  };
  mut(0, (m) => { m.t = 'nope'; }, 't', 'unknown type');
  mut(0, (m) => { delete m.t; }, 't', 'no type');
  mut(0, (m) => { m.id = -1; }, 'id', 'negative id');
  mut(0, (m) => { m.id = 1.5; }, 'id', 'fractional id');
  mut(0, (m) => { m.extra = 1; }, 'extra', 'unknown key');
  mut(0, (m) => { m.version = '1'; }, 'version', 'version type');
  mut(0, (m) => { m.nonce = new Uint8Array(8); }, 'nonce', 'short nonce');
  mut(0, (m) => { m.nonce = 'abc'; }, 'nonce', 'nonce type');
  mut(0, (m) => { delete m.nonce; }, 'nonce', 'missing nonce');
  mut(1, (m) => { m.maxFrame = 100; }, 'maxFrame', 'tiny maxFrame');
  mut(2, (m) => { m.evidence = new Uint8Array(0); }, 'evidence', 'empty evidence');
  mut(3, (m) => { m.jobId = ''; }, 'jobId', 'empty job id');
  mut(3, (m) => { m.jobId = 'a/b'; }, 'jobId', 'job id alphabet');
  mut(3, (m) => { m.datasetId = 5; }, 'datasetId', 'dataset id type');
  mut(3, (m) => { m.query = [1]; }, 'query', 'query not a map');
  mut(3, (m) => { (m.manifest as Record<string, unknown>).version = 1; }, 'manifest', 'manifest version 1 (unsealed)');
  mut(3, (m) => { (m.manifest as Record<string, unknown>).version = 3; }, 'manifest', 'manifest version 3');
  mut(3, (m) => { delete (m.manifest as Record<string, unknown>).seal; }, 'manifest', 'manifest without a seal');
  mut(3, (m) => { ((m.manifest as { keys: { k0: { keyId: string } } }).keys.k0.keyId = 'alias/x'); }, 'manifest', 'manifest key not an ARN');
  mut(3, (m) => { m.manifest = new Uint8Array(3); }, 'manifest', 'manifest bytes');
  mut(3, (m) => { m.ledger = new Uint8Array(28); }, 'ledger', 'job_start ledger too short');
  mut(9, (m) => { m.ledger = new Uint8Array(4097); }, 'ledger', 'job_start ledger too long');
  mut(9, (m) => { m.ledger = 'AAAA'; }, 'ledger', 'job_start ledger not bytes');
  mut(3, (m) => { m.datasetId = 'other'; }, 'manifest', 'manifest for another dataset');
  mut(4, (m) => { m.seq = -1; }, 'seq', 'negative seq');
  mut(4, (m) => { m.records = []; }, 'records', 'empty batch');
  mut(4, (m) => { m.records = [1]; }, 'records[0]', 'record not a map');
  mut(4, (m) => { m.records = [{}, new Uint8Array(1)]; }, 'records[1]', 'record bytes');
  mut(5, (m) => { m.datasetDigest = new Uint8Array(32); }, 'datasetDigest', 'digest length');
  mut(5, (m) => { m.count = 'x'; }, 'count', 'count type');
  mut(6, (m) => { m.result = new Uint8Array(0); }, 'result', 'empty result');
  mut(6, (m) => { delete m.evidence; }, 'evidence', 'missing evidence');
  mut(10, (m) => { m.ledger = new Uint8Array(0); }, 'ledger', 'result ledger empty');
  mut(10, (m) => { m.publicKey = new Uint8Array(1025); }, 'publicKey', 'result public key too long');
  mut(11, (m) => { m.refusal = new Uint8Array(0); }, 'refusal', 'empty refusal');
  mut(11, (m) => { m.refusal = new Uint8Array(64 * 1024 + 1); }, 'refusal', 'refusal too long');
  mut(11, (m) => { delete m.refusal; }, 'refusal', 'missing refusal');
  mut(11, (m) => { delete m.evidence; }, 'evidence', 'refusal without evidence');
  mut(11, (m) => { m.result = new Uint8Array([0xa0]); }, 'result', 'refusal with a result');
  mut(11, (m) => { m.jobId = 'a b'; }, 'jobId', 'refusal job id alphabet');
  mut(12, (m) => { m.ledger = new Uint8Array(5000); }, 'ledger', 'refusal ledger too long');
  mut(7, (m) => { m.code = 'lower'; }, 'code', 'code alphabet');
  mut(7, (m) => { m.message = 'x'.repeat(1025); }, 'message', 'long message');
  mut(7, (m) => { m.jobId = 3; }, 'jobId', 'error job id type');
  mut(8, (m) => { m.ledger = ledger; }, 'ledger', 'error message with a ledger');
  mut(5, (m) => { m.ledger = ledger; }, 'ledger', 'job_end with a ledger');
  for (const [name, m, reason] of cases) {
    it(name, () => {
      expectCode(() => validateMessage(m), 'ERR_PROTOCOL', reason);
      expectCode(() => new FrameDecoder().push(frameOf(m)), 'ERR_PROTOCOL', reason);
    });
  }
});

describe('properties', () => {
  it('any bytes into the frame decoder give messages or project errors only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 50 }), (bytes, step) => {
        onlyProjectErrors(() => {
          const dec = new FrameDecoder({ maxFrame: 1 << 16 });
          for (let i = 0; i < bytes.length; i += step) dec.push(bytes.subarray(i, i + step));
          dec.end();
        }, ['ERR_PROTOCOL', 'ERR_FRAME_TOO_LARGE']);
      }),
      { numRuns: 300 },
    );
  });

  it('flipping any byte of a valid frame gives a message or a project error', () => {
    for (const i of [4, 9, 10, 11, 12]) {
      const f = encodeFrame(samples[i]!);
      fc.assert(
        fc.property(fc.nat(f.length - 1), fc.integer({ min: 1, max: 255 }), (j, x) => {
          const g = f.slice();
          g[j]! ^= x;
          onlyProjectErrors(() => {
            const dec = new FrameDecoder();
            dec.push(g);
            dec.end();
          }, ['ERR_PROTOCOL', 'ERR_FRAME_TOO_LARGE']);
        }),
        { numRuns: 200 },
      );
    }
  });

  it('flipping any byte of a records frame gives a message or a project error (legacy codes allowed)', () => {
    const f = encodeFrame(samples[4]!);
    fc.assert(
      fc.property(fc.nat(f.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const g = f.slice();
        g[i]! ^= x;
        onlyProjectErrors(() => {
          const dec = new FrameDecoder();
          dec.push(g);
          dec.end();
        }, ['ERR_PROTOCOL', 'ERR_FRAME_TOO_LARGE', 'ERR_MANIFEST_INVALID']);
      }),
      { numRuns: 300 },
    );
  });

  it('arbitrary CBOR values never pass as a message unless valid', () => {
    fc.assert(
      fc.property(fc.record({ t: fc.constantFrom('hello', 'records', 'error', 'job_end', 'refusal', 'result', 'job_start'), id: fc.anything(), ledger: fc.anything(), refusal: fc.anything(), manifest: fc.anything() }, { requiredKeys: [] }), (v) => {
        onlyProjectErrors(() => validateMessage(v), ['ERR_PROTOCOL']);
      }),
      { numRuns: 200 },
    );
  });
});
