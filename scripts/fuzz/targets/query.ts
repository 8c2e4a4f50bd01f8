/** The query language (enclave/analytics/query.ts validateQuery) on mutated JSON queries. */
import { validateQuery } from '../../../enclave/analytics/query.js';
import { json, QUERIES } from '../seeds.js';
import type { FuzzTarget } from '../types.js';

const text = new TextDecoder('utf-8', { fatal: false });

const target: FuzzTarget = {
  name: 'query',
  description: 'validateQuery on mutated queries (filters, aggregates, privacy)',
  covers: ['enclave/analytics/query.ts', 'enclave/protocol/field.ts'],
  format: 'json',
  maxLen: 64 * 1024,
  dict: ['version', 'filter', 'groupBy', 'aggregates', 'privacy', 'op', 'field', 'value', 'values', 'args', 'arg', 'name', 'clamp', 'q', 'bins', 'k', 'minGroupSize', 'dp', 'epsilon',
    'eq', 'ne', 'in', 'lt', 'lte', 'gt', 'gte', 'and', 'or', 'not', 'count', 'sum', 'mean', 'min', 'max', 'stddev', 'quantiles', 'histogram', 'distinctCount', 'topTerms', 'sentiment'],
  seeds: () => QUERIES.map(json),
  run(input) {
    let v: unknown;
    try {
      v = JSON.parse(text.decode(input));
    } catch {
      return; // not JSON: the CLI and the worker refuse it before validateQuery
    }
    validateQuery(v);
  },
};
export default target;
