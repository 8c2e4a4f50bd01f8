/**
 * Frames: a 4-byte big-endian length, then that many bytes of one CBOR message. The decoder is
 * incremental (feed it any chunking of the stream) and refuses a frame whose declared length exceeds
 * the negotiated maximum as soon as the 4 length bytes are in, before buffering any of its body.
 * After an error the decoder is poisoned: a stream that lost framing cannot be resynchronised.
 */
import { ToolkitError } from '../../attestation/errors.js';
import { CanonicalBuffer, decodeCanonicalSpans, decodeCbor, encodeCborFast } from './cbor.js';
import type { DatasetDigest } from './digest.js';
import {
  DEFAULT_MAX_FRAME,
  MAX_BATCH_RECORDS,
  checkRecordsHeader,
  protocolError,
  validateMessage,
  type Message,
  type Outgoing,
  type RecordsMessage,
} from './messages.js';

export const FRAME_HEADER = 4;

function tooLarge(n: number, max: number): ToolkitError {
  return new ToolkitError('ERR_FRAME_TOO_LARGE', `frame of ${n} bytes exceeds the maximum of ${max}`, { reason: 'frame_too_large' });
}

/**
 * Encode one message as a frame. The message is validated first, so a sender cannot put anything on
 * the wire that the receiver would refuse.
 */
export function encodeFrame(msg: Outgoing | Message, maxFrame = DEFAULT_MAX_FRAME): Uint8Array {
  validateMessage({ ...msg });
  const body = encodeCborFast(msg);
  if (body.length > maxFrame) throw tooLarge(body.length, maxFrame);
  const out = new Uint8Array(FRAME_HEADER + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, FRAME_HEADER);
  return out;
}

/**
 * Where each record of a decoded `records` message lies in its frame, when the frame was canonical:
 * `bytes.subarray(offsets[i], offsets[i + 1])` is the canonical encoding of `records[i]` as received.
 */
export interface EncodedRecords {
  bytes: Uint8Array;
  offsets: Uint32Array;
}

const encodedByRecords = new WeakMap<readonly unknown[], EncodedRecords>();

/**
 * The received encoding of a records message's records, if its frame was canonical (what
 * `FrameWriter.encodeRecords` sends). The dataset digest hashes these bytes instead of encoding every
 * record again. Undefined for messages that were not decoded from such a frame.
 */
export function encodedRecordsOf(msg: RecordsMessage): EncodedRecords | undefined {
  const e = encodedByRecords.get(msg.records);
  return e !== undefined && e.offsets.length === msg.records.length + 1 ? e : undefined;
}

/** Decode one complete frame body (without its length prefix) into a validated message. */
export function decodeMessage(body: Uint8Array): Message {
  // Record batches in canonical form decode on the strict path, which also yields each record's
  // span; anything else (other messages, non-canonical senders) takes the general path below.
  const spanned = body.length > 0 && body[0] === 0xa5 ? decodeCanonicalSpans(body, 'records', MAX_BATCH_RECORDS) : undefined;
  if (spanned !== undefined && spanned.value.t === 'records') {
    const m = validateMessage(spanned.value) as RecordsMessage;
    encodedByRecords.set(m.records, { bytes: body, offsets: spanned.offsets });
    return m;
  }
  return validateMessage(decodeCbor(body, 'ERR_PROTOCOL', 'frame'));
}

/**
 * Records encoded for the wire as they are read: each one's canonical encoding, back to back. The
 * same bytes feed the dataset digest and the records frame, so each record is encoded once.
 */
export class RecordBatch {
  readonly #buf = new CanonicalBuffer();
  #ends: number[] = [];

  get count(): number {
    return this.#ends.length;
  }
  /** Encoded bytes held. */
  get byteLength(): number {
    return this.#buf.length;
  }

  /**
   * Append a record (a plain JSON object). A value outside the JSON model is `ERR_DATASET_INVALID`,
   * as `DatasetDigest.add` has it; the batch is then unchanged.
   */
  add(record: Record<string, unknown>, digest?: DatasetDigest): void {
    if (record === null || typeof record !== 'object' || Array.isArray(record) || record instanceof Uint8Array)
      throw new TypeError('"record" expected a plain object');
    const start = this.#buf.length;
    try {
      this.#buf.json(record);
    } catch (e) {
      throw new ToolkitError('ERR_DATASET_INVALID', 'record holds a value that is not JSON', { reason: 'record_value', cause: e });
    }
    this.#ends.push(this.#buf.length);
    digest?.addEncoded(this.#buf.view(), start, this.#buf.length);
  }

  #start(i: number): number {
    return i === 0 ? 0 : this.#ends[i - 1]!;
  }

  /** Encoded size of records [from, to). */
  bytesOf(from: number, to: number): number {
    return this.#ends[to - 1]! - this.#start(from);
  }

  /** The encodings of records [from, to), back to back (a view, valid until the batch changes). */
  slice(from: number, to: number): Uint8Array {
    if (!(Number.isSafeInteger(from) && Number.isSafeInteger(to) && 0 <= from && from < to && to <= this.count)) throw new RangeError('record range out of bounds');
    return this.#buf.view().subarray(this.#start(from), this.#ends[to - 1]!);
  }

  clear(): void {
    this.#buf.reset();
    this.#ends = [];
  }
}

const RECORDS_PREFIX = new CanonicalBuffer();

/**
 * The body of a records message in canonical form: `{t, id, seq, jobId, records}` with the members
 * in canonical order and the records' own canonical bytes. The receiver's strict path decodes it.
 */
function encodeRecordsBody(id: number, jobId: string, seq: number, batch: RecordBatch, from: number, to: number, maxFrame: number): Uint8Array {
  checkRecordsHeader(id, jobId, seq, to - from);
  const records = batch.slice(from, to);
  const p = RECORDS_PREFIX;
  p.reset();
  p.head(5, 5);
  p.text('t');
  p.text('records');
  p.text('id');
  p.head(0, id);
  p.text('seq');
  p.head(0, seq);
  p.text('jobId');
  p.text(jobId);
  p.text('records');
  p.head(4, to - from);
  const n = p.length + records.length;
  if (n > maxFrame) throw tooLarge(n, maxFrame);
  const out = new Uint8Array(FRAME_HEADER + n);
  new DataView(out.buffer).setUint32(0, n);
  out.set(p.view(), FRAME_HEADER);
  out.set(records, FRAME_HEADER + p.length);
  return out;
}

export interface FrameDecoderOptions {
  maxFrame?: number;
}

export class FrameDecoder {
  #maxFrame: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  /** Body length of the frame being assembled, or -1 while its header is incomplete. */
  #want = -1;
  #failed: ToolkitError | undefined;

  constructor(opts: FrameDecoderOptions = {}) {
    this.#maxFrame = opts.maxFrame ?? DEFAULT_MAX_FRAME;
    if (!Number.isSafeInteger(this.#maxFrame) || this.#maxFrame < 1 || this.#maxFrame > 0xffffffff)
      throw new RangeError('"maxFrame" expected an integer in [1, 2^32-1]');
  }

  /** Change the limit after negotiation; applies to frames whose header is not yet read. */
  set maxFrame(n: number) {
    if (!Number.isSafeInteger(n) || n < 1 || n > 0xffffffff) throw new RangeError('"maxFrame" expected an integer in [1, 2^32-1]');
    this.#maxFrame = n;
  }
  get maxFrame(): number {
    return this.#maxFrame;
  }
  /** Bytes received and not yet returned as messages. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Feed bytes; returns every message completed by them, in order. */
  push(chunk: Uint8Array): Message[] {
    if (this.#failed) throw this.#failed;
    if (!(chunk instanceof Uint8Array)) throw new TypeError('"chunk" expected Uint8Array');
    try {
      return this.#push(chunk);
    } catch (e) {
      this.#failed = e instanceof ToolkitError ? e : protocolError('internal', 'frame decoder failed', e);
      this.#chunks = [];
      this.#buffered = 0;
      throw this.#failed;
    }
  }

  /** The peer closed: anything left over is a truncated frame. */
  end(): void {
    if (this.#failed) throw this.#failed;
    if (this.#buffered > 0 || this.#want >= 0) {
      this.#failed = protocolError('truncated', 'stream ended inside a frame');
      throw this.#failed;
    }
  }

  #push(chunk: Uint8Array): Message[] {
    const out: Message[] = [];
    if (chunk.length === 0) return out;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    for (;;) {
      if (this.#want < 0) {
        if (this.#buffered < FRAME_HEADER) return out;
        const h = this.#take(FRAME_HEADER);
        const n = ((h[0]! << 24) >>> 0) + (h[1]! << 16) + (h[2]! << 8) + h[3]!;
        if (n > this.#maxFrame) throw tooLarge(n, this.#maxFrame);
        if (n === 0) throw protocolError('empty_frame', 'empty frame');
        this.#want = n;
      }
      if (this.#buffered < this.#want) return out;
      const body = this.#take(this.#want);
      this.#want = -1;
      out.push(decodeMessage(body));
    }
  }

  /** Remove exactly n buffered bytes (n <= buffered). Copies only when a read spans chunks. */
  #take(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    let out: Uint8Array;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
      let o = 0;
      while (o < n) {
        const c = this.#chunks[0]!;
        const k = Math.min(c.length, n - o);
        out.set(c.subarray(0, k), o);
        o += k;
        if (k === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(k);
      }
    }
    this.#buffered -= n;
    return out;
  }
}

/** Turn a byte stream (a socket) into messages; a truncated tail throws `ERR_PROTOCOL`. */
export async function* readMessages(source: AsyncIterable<Uint8Array | string>, opts: FrameDecoderOptions = {}): AsyncGenerator<Message> {
  const dec = new FrameDecoder(opts);
  for await (const chunk of source) {
    if (typeof chunk === 'string') throw new TypeError('readMessages: the source must yield bytes');
    yield* dec.push(chunk);
  }
  dec.end();
}

/** Assigns message ids 0, 1, 2, ... and encodes frames for one direction of a connection. */
export class FrameWriter {
  #next = 0;
  maxFrame: number;
  constructor(maxFrame = DEFAULT_MAX_FRAME) {
    this.maxFrame = maxFrame;
  }
  encode(msg: Outgoing): Uint8Array {
    const frame = encodeFrame({ ...msg, id: this.#next } as Message, this.maxFrame);
    this.#next++;
    return frame;
  }
  /** A records message carrying records [from, to) of `batch`, as they were encoded. */
  encodeRecords(jobId: string, seq: number, batch: RecordBatch, from = 0, to = batch.count): Uint8Array {
    const frame = encodeRecordsBody(this.#next, jobId, seq, batch, from, to, this.maxFrame);
    this.#next++;
    return frame;
  }
}
