/**
 * The sealed manifest (enclave/protocol/manifest.ts parseManifest, seal.ts verifyManifestSeal and
 * sealDigest): strict JSON validation including the embedded release policy, then the seal check
 * under fixed data keys (the seeds are sealed under them, so unmutated inputs pass).
 */
import { parseManifest, manifestBody } from '../../../enclave/protocol/manifest.js';
import { sealDigest, verifyManifestSeal } from '../../../enclave/protocol/seal.js';
import { DATA_KEYS, json, manifests } from '../seeds.js';
import type { FuzzTarget } from '../types.js';

const target: FuzzTarget = {
  name: 'manifest',
  description: 'parseManifest (strict JSON, keys, schema, release policy) then verifyManifestSeal and sealDigest',
  covers: ['enclave/protocol/manifest.ts', 'enclave/protocol/seal.ts', 'enclave/protocol/release-policy.ts', 'enclave/protocol/field.ts'],
  format: 'json',
  maxLen: 64 * 1024,
  dict: ['version', 'datasetId', 'idField', 'fields', 'schema', 'keys', 'records', 'digest', 'policy', 'seal', 'keyId', 'ciphertextBlob', 'encryptionContext', 'enclavekit:dataset', 'enclavekit:key-ref', 'string', 'number', 'boolean', 'mixed'],
  seeds: () => manifests().map(json),
  run(input) {
    const m = parseManifest(input);
    sealDigest(manifestBody(m));
    verifyManifestSeal(m, DATA_KEYS);
  },
};
export default target;
