/**
 * One frame body (enclave/protocol/frame.ts decodeMessage, messages.ts validateMessage): the span
 * path for canonical record batches and the general path for every other message, including the
 * manifest inside job_start.
 */
import { decodeMessage } from '../../../enclave/protocol/frame.js';
import { validateMessage } from '../../../enclave/protocol/messages.js';
import { decodeCbor } from '../../../enclave/protocol/cbor.js';
import { frames } from '../seeds.js';
import type { FuzzTarget } from '../types.js';
import { runAllSync } from './_util.js';

const target: FuzzTarget = {
  name: 'messages',
  description: 'decodeMessage and validateMessage on single frame bodies of every message type',
  covers: ['enclave/protocol/messages.ts', 'enclave/protocol/frame.ts', 'enclave/protocol/manifest.ts', 'enclave/protocol/release-policy.ts'],
  format: 'cbor',
  maxLen: 64 * 1024,
  dict: ['hello', 'attestation', 'job_start', 'records', 'job_end', 'result', 'refusal', 'error', 'credentials', 'status_request', 'status', 'maxFrame', 'nonce', 'jobId', 'seq', 'manifest', 'query', 'ledger'],
  seeds: () => frames().map((f) => f.subarray(4)),
  run(input) {
    runAllSync([() => decodeMessage(input), () => validateMessage(decodeCbor(input, 'ERR_PROTOCOL', 'frame'))]);
  },
};
export default target;
