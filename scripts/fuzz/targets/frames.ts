/**
 * The host <-> enclave stream (enclave/protocol/frame.ts FrameDecoder): 4-byte lengths, the size
 * limit before buffering, every message validated. The input is a byte stream fed in chunks whose
 * sizes depend on the input, then ended. A FrameDecoder turns unexpected throws into ERR_PROTOCOL
 * with reason `internal`: that reason counts as a finding here.
 */
import { FrameDecoder } from '../../../enclave/protocol/frame.js';
import { ToolkitError } from '../../../attestation/errors.js';
import { concat, frames } from '../seeds.js';
import { FuzzInvariantError, type FuzzTarget } from '../types.js';

const CHUNKINGS = [[1 << 30], [1], [3, 1, 7], [64], [4, 4096]];

const target: FuzzTarget = {
  name: 'frames',
  description: 'FrameDecoder.push/end over chunked streams of frames of every message type (records batches on the span path)',
  covers: ['enclave/protocol/frame.ts', 'enclave/protocol/messages.ts', 'enclave/protocol/cbor.ts', 'enclave/protocol/manifest.ts'],
  format: 'cbor',
  maxLen: 128 * 1024,
  dict: ['hello', 'attestation', 'job_start', 'records', 'job_end', 'result', 'refusal', 'error', 'credentials', 'status_request', 'status', 'maxFrame', 'nonce', 'jobId', 'seq'],
  seeds() {
    const f = frames();
    return [concat(f), ...f];
  },
  run(input) {
    const dec = new FrameDecoder({ maxFrame: 64 * 1024 });
    const sizes = CHUNKINGS[input.length % CHUNKINGS.length]!;
    let pos = 0;
    try {
      for (let i = 0; pos < input.length; i++) {
        const n = sizes[i % sizes.length]!;
        dec.push(input.subarray(pos, pos + n));
        pos += n;
      }
      dec.end();
    } catch (e) {
      if (e instanceof ToolkitError && e.reason === 'internal') throw new FuzzInvariantError(`FrameDecoder caught an unexpected throw: ${String((e.cause as Error)?.stack ?? e.cause)}`);
      throw e;
    }
  },
};
export default target;
