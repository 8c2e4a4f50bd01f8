/**
 * Issue 6 (pipeline throughput): records travel in canonical form and the enclave hashes the bytes it
 * received instead of encoding every record again. These tests pin that the shortcut changes nothing:
 * the strict decoder accepts exactly the canonical encodings, returns what cbor-x returns, and the
 * digest over received bytes equals the digest of the records.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DatasetDigest, FrameDecoder, FrameWriter, RecordBatch, encodeCanonical, encodedRecordsOf, type RecordsMessage,
} from '../../enclave/protocol/index.js';
import { decodeCanonicalSpans, decodeCbor, encodeCborFast } from '../../enclave/protocol/cbor.js';

const jsonValue = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(0.5, 1.5, -2.25, 65504.5, 1e-7, 2 ** 60, -(2 ** 53), 2 ** 53 - 1, 1 / 3, 3.4e38),
    fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('é', '__proto_', 'constructor', '1', ''),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('a', 'b', 'aa', 'é', '10', '9')), tie('v'), { maxKeys: 5 }),
  ),
})).v;
// Two documented exceptions leave the strict path (tested below): strings starting with a BOM, which
// cbor-x strips from long strings, take the general path; "__proto__" keys, which cbor-x renames,
// are refused (by the sender's encoder and by the walk before cbor-x).
const record = fc
  .dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('id', 'email', 'orders', 'z')), jsonValue, { maxKeys: 6 })
  .filter((r) => !/"\ufeff|"__proto__"/.test(JSON.stringify(r)));

function recordsFrame(records: Record<string, unknown>[], seq = 0): { frame: Uint8Array; batch: RecordBatch } {
  const batch = new RecordBatch();
  for (const r of records) batch.add(r);
  return { frame: new FrameWriter().encodeRecords('job-1', seq, batch), batch };
}

describe('canonical record frames', () => {
  it('property: a frame of records decodes on the strict path to what cbor-x decodes, with spans that are each record\'s canonical encoding', () => {
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 4 }), (records) => {
        const { frame } = recordsFrame(records);
        const body = frame.subarray(4);
        const viaCborX = decodeCbor(body, 'ERR_PROTOCOL', 't') as { records: unknown[] };
        const strict = decodeCanonicalSpans(body, 'records');
        expect(strict).toBeDefined();
        expect(strict!.value).toEqual(viaCborX);
        const recs = viaCborX.records;
        for (let i = 0; i < recs.length; i++) {
          expect(Buffer.from(body.subarray(strict!.offsets[i]!, strict!.offsets[i + 1]!))).toEqual(Buffer.from(encodeCanonical(recs[i])));
        }
        // The message decoded from the frame carries the spans; the digest over them equals the digest of the values.
        const [m] = new FrameDecoder().push(frame) as RecordsMessage[];
        const enc = encodedRecordsOf(m!);
        expect(enc).toBeDefined();
        const a = new DatasetDigest('ds');
        const b = new DatasetDigest('ds');
        m!.records.forEach((r, i) => {
          a.add(r);
          b.addEncoded(enc!.bytes, enc!.offsets[i]!, enc!.offsets[i + 1]!);
        });
        expect(Buffer.from(b.digest())).toEqual(Buffer.from(a.digest()));
      }),
      { numRuns: 200 },
    );
  });

  it('property: any byte change is either refused by the strict path or still exactly canonical', () => {
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 3 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (records, at, x) => {
        const body = new Uint8Array(recordsFrame(records).frame.subarray(4));
        const i = at % body.length;
        body[i] = body[i]! ^ x;
        const strict = decodeCanonicalSpans(body, 'records');
        if (strict === undefined) return;
        // Accepted: the value must re-encode to exactly these bytes, and match cbor-x.
        expect(Buffer.from(encodeCanonical(strict.value))).toEqual(Buffer.from(body));
        expect(strict.value).toEqual(decodeCbor(body, 'ERR_PROTOCOL', 't'));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses non-canonical records and leaves them to the general path, whose digest is unchanged', () => {
    const nonCanonical = [
      { t: 'records', id: 0, seq: 0, jobId: 'j', records: [{ b: 1, a: 2 }] }, // cbor-x keeps insertion order
      { t: 'records', id: 0, seq: 0, jobId: 'j', records: [{ a: new Uint8Array(1) }] }, // byte string
    ];
    const bom = recordsFrame([{ id: '\ufeff' + 'x'.repeat(100) }]).frame;
    expect(decodeCanonicalSpans(bom.subarray(4), 'records')).toBeUndefined();
    expect(encodedRecordsOf(new FrameDecoder().push(bom)[0] as RecordsMessage)).toBeUndefined();
    for (const m of nonCanonical) {
      const body = encodeCborFast(m);
      expect(decodeCanonicalSpans(body, 'records')).toBeUndefined();
    }
    // An old-style (cbor-x) records frame still decodes, without spans: the job re-encodes those records.
    const frame = new FrameWriter().encode({ t: 'records', jobId: 'j', seq: 0, records: [{ b: 1, a: 2 }] });
    const [m] = new FrameDecoder().push(frame) as RecordsMessage[];
    expect(m!.records).toEqual([{ b: 1, a: 2 }]);
    expect(encodedRecordsOf(m!)).toBeUndefined();
    const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
    // Hand-made canonical envelope around single non-canonical records.
    const envelope = (rec: string) => hex('a5' + '6174' + '677265636f726473' + '626964' + '00' + '63736571' + '00' + '656a6f624964' + '616a' + '677265636f726473' + '81' + rec);
    expect(decodeCanonicalSpans(envelope('a1616101'), 'records')).toBeDefined();
    for (const rec of [
      'a2616201616102', // unsorted keys
      'a2616101616102', // duplicate key
      'a161611801', // 1 in long form
      'a16161f93c00', // 1.0 as a float
      'a16161fa3fc00000', // 1.5 as f32
      'a16161fb3ff8000000000000', // 1.5 as f64
      'a16161f98000', // -0 as a float
      'a16161f97e00', // NaN
      'a161611b0020000000000000', // 2^53 as an integer
      'a16161c101', // tag
      'a16161f7', // undefined
      'a161614100', // byte string
      'a1695f5f70726f746f5f5f01', // "__proto__" (cbor-x renames it)
      'a1616263ff', // invalid UTF-8
      'a16161bf6162ff', // indefinite map
    ]) {
      expect(decodeCanonicalSpans(envelope(rec), 'records'), rec).toBeUndefined();
    }
  });

  it('a batch of records too large for one frame is split by the sender, and a single oversized record is refused', () => {
    const batch = new RecordBatch();
    batch.add({ s: 'x'.repeat(40_000) });
    batch.add({ s: 'y'.repeat(40_000) });
    const w = new FrameWriter(64 * 1024);
    expect(() => w.encodeRecords('j', 0, batch)).toThrow(expect.objectContaining({ code: 'ERR_FRAME_TOO_LARGE' }));
    const [m] = new FrameDecoder().push(w.encodeRecords('j', 0, batch, 1, 2)) as RecordsMessage[];
    expect(m!.records).toEqual([{ s: 'y'.repeat(40_000) }]);
    expect(() => batch.add({ n: NaN })).toThrow(expect.objectContaining({ code: 'ERR_DATASET_INVALID', reason: 'record_value' }));
    expect(batch.count).toBe(2);
  });
});

describe('canonical record frames: the refusals are real', () => {
  it('each refused record above is accepted by cbor-x (so only the strict path tells them apart)', () => {
    const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
    for (const rec of ['a2616201616102', 'a161611801', 'a16161f93c00', 'a16161fa3fc00000']) {
      expect(() => decodeCbor(hex(rec), 'ERR_PROTOCOL', 't')).not.toThrow();
      expect(Buffer.from(encodeCanonical(decodeCbor(hex(rec), 'ERR_PROTOCOL', 't')))).not.toEqual(Buffer.from(hex(rec)));
    }
    // cbor-x would rename a "__proto__" key; the general path refuses it before cbor-x instead.
    expect(() => decodeCbor(hex('a1695f5f70726f746f5f5f01'), 'ERR_PROTOCOL', 't')).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL', reason: 'proto_key' }));
  });

  it('a record with a "__proto__" key is refused by the sender (ERR_DATASET_INVALID), not renamed in transit', () => {
    const batch = new RecordBatch();
    expect(() => batch.add(JSON.parse('{"id":1,"x":{"__proto__":2}}') as Record<string, unknown>)).toThrow(
      expect.objectContaining({ code: 'ERR_DATASET_INVALID', reason: 'record_value' }),
    );
    expect(batch.count).toBe(0);
  });
});

describe('canonical text strings', () => {
  it('property: a string is its shortest head and its UTF-8 bytes, across every head-size boundary', () => {
    const head = (n: number): string =>
      n < 24 ? (0x60 | n).toString(16) : n < 0x100 ? '78' + n.toString(16).padStart(2, '0') : n < 0x10000 ? '79' + n.toString(16).padStart(4, '0') : '7a' + n.toString(16).padStart(8, '0');
    const piece = fc.constantFrom('a', 'é', '€', '😀', '\ud800', 'z');
    const str = fc.oneof(
      fc.array(piece, { maxLength: 40 }).map((a) => a.join('')),
      fc.tuple(fc.constantFrom(20, 21, 22, 23, 84, 85, 86, 250, 254, 255, 256, 21_840, 21_846, 65_530, 65_536), fc.array(piece, { maxLength: 6 }))
        .map(([n, a]) => 'x'.repeat(n) + a.join('')),
    );
    fc.assert(fc.property(str, (s) => {
      const utf8 = Buffer.from(s, 'utf8');
      expect(Buffer.from(encodeCanonical(s)).toString('hex')).toBe(head(utf8.length) + utf8.toString('hex'));
    }), { numRuns: 300 });
  });
});

describe('canonical record frames: limits', () => {
  it('a canonical frame with more records than a message may hold takes the general path and is refused there', () => {
    const batch = new RecordBatch();
    for (let i = 0; i < 100_001; i++) batch.add({});
    const body = encodeCanonical({ t: 'records', id: 0, seq: 0, jobId: 'j', records: new Array(100_001).fill({}) });
    expect(decodeCanonicalSpans(body, 'records', 100_000)).toBeUndefined();
    expect(decodeCanonicalSpans(body, 'records')).toBeDefined();
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, body.length);
    frame.set(body, 4);
    expect(() => new FrameDecoder().push(frame)).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL', reason: 'records' }));
    expect(() => new FrameWriter().encodeRecords('j', 0, batch)).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL', reason: 'records' }));
  });
});
