/**
 * The owner's release policy (enclave/protocol/release-policy.ts): validateReleasePolicy, then
 * checkQueryAgainstPolicy with a query and a sealed schema from the same input
 * (`{"policy": ..., "query": ..., "schema": ...}`), at a fixed time.
 */
import { checkQueryAgainstPolicy, validateReleasePolicy, type ReleasePolicy } from '../../../enclave/protocol/release-policy.js';
import { FIELD_TYPES, type FieldType } from '../../../enclave/protocol/manifest.js';
import { json, NOW, POLICIES, QUERIES, SCHEMA } from '../seeds.js';
import type { FuzzTarget } from '../types.js';

const text = new TextDecoder('utf-8', { fatal: false });

function schemaOf(v: unknown): Record<string, FieldType> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return { ...SCHEMA };
  const out: Record<string, FieldType> = {};
  for (const [k, t] of Object.entries(v)) if ((FIELD_TYPES as readonly unknown[]).includes(t)) out[k] = t as FieldType;
  return out;
}

const target: FuzzTarget = {
  name: 'release-policy',
  description: 'validateReleasePolicy and checkQueryAgainstPolicy (query vs sealed policy and schema)',
  covers: ['enclave/protocol/release-policy.ts', 'enclave/analytics/query.ts'],
  format: 'json',
  maxLen: 64 * 1024,
  dict: ['version', 'minGroupSize', 'dimensions', 'domain', 'aggregates', 'ops', 'bounds', 'filters', 'dp', 'required', 'epsilonMin', 'epsilonMax', 'budget', 'delta', 'exactExtrema', 'expires',
    'policy', 'query', 'schema', '*', 'region', 'orders.total', 'complaint', 'name', 'vip', 'notes', 'string', 'number', 'boolean', 'mixed'],
  seeds: () => POLICIES.flatMap((policy, i) => QUERIES.filter((_, j) => (i + j) % 2 === 0 || j < 2).map((query) => json({ policy, query, schema: SCHEMA }))),
  run(input) {
    let v: { policy?: unknown; query?: unknown; schema?: unknown };
    try {
      v = JSON.parse(text.decode(input)) as typeof v;
    } catch {
      return;
    }
    if (v === null || typeof v !== 'object') return;
    let policy: ReleasePolicy | null = null;
    if (v.policy !== null) policy = validateReleasePolicy(v.policy);
    checkQueryAgainstPolicy(v.query, { policy, schema: schemaOf(v.schema) }, NOW);
  },
};
export default target;
