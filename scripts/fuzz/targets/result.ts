/**
 * Attested result and refusal documents (enclave/protocol/result.ts): canonical CBOR and schema, as a
 * host or auditor decodes them from the worker's answer.
 */
import { decodeAttestedDocument, decodeRefusal, decodeResult, resultToJson } from '../../../enclave/protocol/result.js';
import { canonicalResults } from '../seeds.js';
import type { FuzzTarget } from '../types.js';
import { runAllSync } from './_util.js';

const target: FuzzTarget = {
  name: 'result',
  description: 'decodeResult, decodeRefusal and decodeAttestedDocument (canonical CBOR + schema)',
  covers: ['enclave/protocol/result.ts', 'enclave/protocol/cbor.ts'],
  format: 'cbor',
  maxLen: 64 * 1024,
  dict: ['version', 'jobId', 'datasetId', 'datasetDigest', 'sealDigest', 'keyArns', 'query', 'queryDigest', 'counts', 'groups', 'privacy', 'ledger', 'audit', 'platform', 'workerVersion', 'refused', 'code', 'reason', 'message',
    'records', 'matched', 'suppressedGroups', 'key', 'count', 'aggregates', 'minGroupSize', 'dp', 'mechanism', 'discrete-laplace', 'epsilon', 'delta', 'threshold', 'budget', 'limit', 'spent', 'generation', 'instance', 'seq', 'prev', 'nitro', 'sev-snp', 'simulator'],
  seeds: () => canonicalResults(),
  run(input) {
    runAllSync([() => resultToJson(decodeResult(input)), () => decodeRefusal(input), () => decodeAttestedDocument(input)]);
  },
};
export default target;
