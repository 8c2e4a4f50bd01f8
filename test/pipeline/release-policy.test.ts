// The owner's release policy (privacy.md 2): strict validation of the policy, and the verdict on a
// query (checkQueryAgainstPolicy) for every reason a query can be refused.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DEFAULT_RELEASE_POLICY, MAX_POLICY_BUDGET, MAX_POLICY_EPSILON, checkQueryAgainstPolicy, validateManifest, validateReleasePolicy,
  type FieldType, type ReleasePolicy,
} from '../../enclave/protocol/index.js';
import { NOW, encryptedCustomers, openPolicy } from './fixtures.js';
import { expectCode, onlyProjectErrors } from './helpers.js';

const schema: Record<string, FieldType> = {
  id: 'string', region: 'string', email: 'string', complaint: 'string', 'orders.total': 'number', 'orders.count': 'number', vip: 'boolean', misc: 'mixed',
};

/** A policy that names its fields (no "*"), with a public domain, bounds, filters and an expiry. */
const strict = (): ReleasePolicy => ({
  version: 1,
  minGroupSize: 10,
  dimensions: { region: { domain: ['eu-west', 'us-east'] }, vip: {} },
  aggregates: { 'orders.total': { ops: ['sum', 'mean', 'histogram'], bounds: [0, 10_000] }, complaint: { ops: ['sentiment'] }, 'orders.count': { ops: ['max', 'sum'] } },
  filters: { region: ['eq', 'in'], 'orders.count': ['gt'] },
  dp: { required: true, epsilonMin: 0.1, epsilonMax: 1, budget: 10, delta: 1e-6 },
  exactExtrema: false,
  expires: '2027-06-30T00:00:00Z',
});

const count = { name: 'n', op: 'count' };
const q = (extra: Record<string, unknown> = {}, aggregates: unknown[] = [count]) => ({ version: 1, aggregates, ...extra });
const dp = (epsilon = 0.5) => ({ privacy: { dp: { epsilon } } });
const verdict = (query: unknown, policy: ReleasePolicy | null, now = NOW) => checkQueryAgainstPolicy(query, { policy, schema }, now);
const refused = (query: unknown, policy: ReleasePolicy | null, reason: string, now = NOW) => expectCode(() => verdict(query, policy, now), 'ERR_QUERY_REFUSED', reason);

describe('validateReleasePolicy', () => {
  it('accepts the README example, the default and "*" everywhere, and normalises duplicates', () => {
    expect(validateReleasePolicy(strict())).toEqual(strict());
    expect(validateReleasePolicy(JSON.parse(JSON.stringify(DEFAULT_RELEASE_POLICY)))).toEqual(DEFAULT_RELEASE_POLICY);
    expect(validateReleasePolicy(openPolicy())).toEqual(openPolicy());
    const dup = validateReleasePolicy({ ...strict(), aggregates: { x: { ops: ['sum', 'sum', 'mean'] } }, filters: { x: ['eq', 'eq'] } });
    expect(dup.aggregates).toEqual({ x: { ops: ['sum', 'mean'] } });
    expect(dup.filters).toEqual({ x: ['eq'] });
    expect(validateReleasePolicy({ ...strict(), expires: '2027-01-31T00:00:00.500Z' }).expires).toBe('2027-01-31T00:00:00.500Z');
    const { expires: _e, ...noExpiry } = strict();
    expect(validateReleasePolicy(noExpiry)).toEqual(noExpiry);
    // Extremes that are still allowed.
    validateReleasePolicy({ ...strict(), minGroupSize: 1_000_000, dp: { required: false, epsilonMin: MAX_POLICY_EPSILON, epsilonMax: MAX_POLICY_EPSILON, budget: MAX_POLICY_BUDGET, delta: 1e-3 } });
  });

  it('rejects each defect with ERR_POLICY_INVALID naming its path', () => {
    const bigMap = Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [`f${i}`, {}]));
    const cases: [string, (p: any) => void][] = [
      ['$.extra', (p) => { p.extra = 1; }],
      ['$.dp', (p) => { delete p.dp; }],
      ['$.minGroupSize', (p) => { delete p.minGroupSize; }],
      ['$.version', (p) => { p.version = 2; }],
      ['$.version', (p) => { p.version = '1'; }],
      ['$.minGroupSize', (p) => { p.minGroupSize = 0; }],
      ['$.minGroupSize', (p) => { p.minGroupSize = 2.5; }],
      ['$.minGroupSize', (p) => { p.minGroupSize = 1_000_001; }],
      ['$.minGroupSize', (p) => { p.minGroupSize = '10'; }],
      ['$.dimensions', (p) => { p.dimensions = 'all'; }],
      ['$.dimensions', (p) => { p.dimensions = ['region']; }],
      ['$.dimensions', (p) => { p.dimensions = { 'a..b': {} }; }],
      ['$.dimensions', (p) => { p.dimensions = JSON.parse('{"__proto__": {}}'); }],
      ['$.dimensions', (p) => { p.dimensions = bigMap; }],
      ['$.dimensions.region', (p) => { p.dimensions.region = true; }],
      ['$.dimensions.region.values', (p) => { p.dimensions.region = { values: [] }; }],
      ['$.dimensions.region.domain', (p) => { p.dimensions.region.domain = []; }],
      ['$.dimensions.region.domain', (p) => { p.dimensions.region.domain = 'eu-west'; }],
      ['$.dimensions.region.domain', (p) => { p.dimensions.region.domain = Array.from({ length: 10_001 }, (_, i) => i); }],
      ['$.dimensions.region.domain[1]', (p) => { p.dimensions.region.domain = ['a', { b: 1 }]; }],
      ['$.dimensions.region.domain[1]', (p) => { p.dimensions.region.domain = ['a', null]; }],
      ['$.dimensions.region.domain[1]', (p) => { p.dimensions.region.domain = ['a', 'x'.repeat(1025)]; }],
      ['$.dimensions.region.domain[1]', (p) => { p.dimensions.region.domain = [1, Number.NaN]; }],
      ['$.dimensions.region.domain[2]', (p) => { p.dimensions.region.domain = ['a', 'b', 'a']; }],
      ['$.aggregates', (p) => { p.aggregates = 5; }],
      ['$.aggregates.complaint', (p) => { p.aggregates.complaint = ['sentiment']; }],
      ['$.aggregates.complaint.ops', (p) => { delete p.aggregates.complaint.ops; }],
      ['$.aggregates.complaint.ops', (p) => { p.aggregates.complaint.ops = []; }],
      ['$.aggregates.complaint.ops[0]', (p) => { p.aggregates.complaint.ops = ['count']; }],
      ['$.aggregates.complaint.ops[1]', (p) => { p.aggregates.complaint.ops = ['sentiment', 'median']; }],
      ['$.aggregates.complaint.clamp', (p) => { p.aggregates.complaint.clamp = [0, 1]; }],
      ['$.aggregates.orders.total.bounds', (p) => { p.aggregates['orders.total'].bounds = [5, 1]; }],
      ['$.aggregates.orders.total.bounds', (p) => { p.aggregates['orders.total'].bounds = [1, 1]; }],
      ['$.aggregates.orders.total.bounds', (p) => { p.aggregates['orders.total'].bounds = [0]; }],
      ['$.aggregates.orders.total.bounds', (p) => { p.aggregates['orders.total'].bounds = [0, Infinity]; }],
      ['$.aggregates.orders.total.bounds', (p) => { p.aggregates['orders.total'].bounds = ['0', '1']; }],
      ['$.filters', (p) => { p.filters = null; }],
      ['$.filters.region', (p) => { p.filters.region = []; }],
      ['$.filters.region', (p) => { p.filters.region = 'eq'; }],
      ['$.filters.region[1]', (p) => { p.filters.region = ['eq', 'like']; }],
      ['$.filters.region[0]', (p) => { p.filters.region = ['and']; }],
      ['$.dp', (p) => { p.dp = true; }],
      ['$.dp.extra', (p) => { p.dp.extra = 1; }],
      ['$.dp.delta', (p) => { delete p.dp.delta; }],
      ['$.dp.required', (p) => { p.dp.required = 'yes'; }],
      ['$.dp.epsilonMin', (p) => { p.dp.epsilonMin = 0; }],
      ['$.dp.epsilonMin', (p) => { p.dp.epsilonMin = -1; }],
      ['$.dp.epsilonMin', (p) => { p.dp.epsilonMin = MAX_POLICY_EPSILON + 1; }],
      ['$.dp.epsilonMax', (p) => { p.dp.epsilonMax = 0.05; }],
      ['$.dp.epsilonMax', (p) => { p.dp.epsilonMax = MAX_POLICY_EPSILON * 2; }],
      ['$.dp.epsilonMax', (p) => { p.dp.epsilonMax = Infinity; }],
      ['$.dp.budget', (p) => { p.dp.budget = 0.01; }],
      ['$.dp.budget', (p) => { p.dp.budget = MAX_POLICY_BUDGET + 1; }],
      ['$.dp.delta', (p) => { p.dp.delta = 0; }],
      ['$.dp.delta', (p) => { p.dp.delta = 0.01; }],
      ['$.exactExtrema', (p) => { p.exactExtrema = 'no'; }],
      ['$.exactExtrema', (p) => { delete p.exactExtrema; }],
      ['$.expires', (p) => { p.expires = 'tomorrow'; }],
      ['$.expires', (p) => { p.expires = '2027-01-31'; }],
      ['$.expires', (p) => { p.expires = '2027-01-31T00:00:00+01:00'; }],
      ['$.expires', (p) => { p.expires = '2027-13-01T00:00:00Z'; }],
      ['$.expires', (p) => { p.expires = 1_900_000_000; }],
    ];
    for (const [path, mut] of cases) {
      const p = strict() as any;
      mut(p);
      const e = expectCode(() => validateReleasePolicy(p), 'ERR_POLICY_INVALID', path);
      expect(e.message).toContain(path);
    }
    for (const v of [null, [], 'policy', 1, new Uint8Array(2), new Date(0), Object.create({ version: 1 })])
      expectCode(() => validateReleasePolicy(v), 'ERR_POLICY_INVALID', '$');
  });

  it('a manifest carrying an invalid policy is refused as a manifest (reason policy)', async () => {
    const data = await encryptedCustomers(3, { policy: openPolicy() });
    const m = structuredClone(data.manifest) as any;
    m.policy.dp.delta = 1;
    const e = expectCode(() => validateManifest(m), 'ERR_MANIFEST_INVALID', 'policy');
    expect(e.message).toContain('$.dp.delta');
  });

  it('property: validateReleasePolicy(JSON.parse(...)) of any JSON, any bytes or any one-byte change throws only ERR_POLICY_INVALID', () => {
    const parsedOrSkip = (text: string): { ok: true; v: unknown } | { ok: false } => {
      try {
        return { ok: true, v: JSON.parse(text) };
      } catch (e) {
        expect(e).toBeInstanceOf(SyntaxError);
        return { ok: false };
      }
    };
    const check = (text: string) => {
      const p = parsedOrSkip(text);
      if (!p.ok) return;
      onlyProjectErrors(() => {
        const got = validateReleasePolicy(p.v);
        // Anything accepted is a policy that validates again to itself.
        expect(validateReleasePolicy(JSON.parse(JSON.stringify(got)))).toEqual(got);
      }, ['ERR_POLICY_INVALID']);
    };
    fc.assert(fc.property(fc.jsonValue(), (v) => check(JSON.stringify(v))), { numRuns: 300 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => check(Buffer.from(b).toString('utf8'))), { numRuns: 300 });
    const valid = Buffer.from(JSON.stringify(strict()));
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const b = Buffer.from(valid);
        b[i]! ^= x;
        check(b.toString('utf8'));
      }),
      { numRuns: 500 },
    );
    // Structured mutations of a valid policy: any key of it replaced by any JSON value.
    const paths: string[][] = [];
    const walk = (v: unknown, path: string[]) => {
      if (path.length > 0) paths.push(path);
      if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
    };
    walk(strict(), []);
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.jsonValue(), (path, value) => {
        const p = strict() as any;
        let o = p;
        for (const k of path.slice(0, -1)) o = o[k];
        o[path.at(-1)!] = value;
        check(JSON.stringify(p));
      }),
      { numRuns: 500 },
    );
  });
});

describe('checkQueryAgainstPolicy: verdicts', () => {
  it('permits what the policy allows and resolves the parameters', () => {
    const r = verdict(q({ groupBy: ['region'], ...dp(0.5) }, [count, { name: 's', op: 'sum', field: 'orders.total', clamp: [0, 500] }, { name: 'm', op: 'sentiment', field: 'complaint' }]), strict());
    expect(r.minGroupSize).toBe(10);
    expect(r.dp).toEqual({ epsilon: 0.5, delta: 1e-6 });
    expect(r.budget).toBe(10);
    expect(r.clamps).toEqual(new Map([['orders.total', [0, 500]]]));
    expect(r.publicDomains).toEqual(new Map([['region', ['eu-west', 'us-east']]]));
    expect(r.query.groupBy).toEqual(['region']);
    // A query may ask for a larger minimum group size, and epsilon at the edges of the range.
    expect(verdict(q({ ...dp(1), privacy: { dp: { epsilon: 1 }, minGroupSize: 50 } }), strict()).minGroupSize).toBe(50);
    expect(verdict(q(dp(0.1)), strict()).dp!.epsilon).toBe(0.1);
    // Exact mode under a policy that allows it: no DP, no budget; policy bounds apply without a query clamp.
    const open = openPolicy({ aggregates: { 'orders.total': { ops: ['sum', 'max'], bounds: [0, 100] } } });
    const ex = verdict(q({}, [{ name: 's', op: 'sum', field: 'orders.total' }, { name: 'x', op: 'max', field: 'orders.total' }]), open);
    expect(ex.dp).toBeNull();
    expect(ex.budget).toBeNull();
    expect(ex.clamps).toEqual(new Map([['orders.total', [0, 100]]]));
    // The default policy (no policy sealed) takes DP queries.
    const d = verdict(q(dp(1), [{ name: 's', op: 'mean', field: 'orders.total', clamp: [0, 10] }]), null);
    expect(d).toMatchObject({ minGroupSize: 10, dp: { epsilon: 1, delta: 1e-6 }, budget: 3 });
    // Not yet expired.
    expect(() => verdict(q(dp()), strict(), new Date('2027-06-30T00:00:00Z'))).not.toThrow();
  });

  it('expired', () => {
    refused(q(dp()), strict(), 'expired', new Date('2027-06-30T00:00:00.001Z'));
    // Checked first: an expired policy refuses even an otherwise invalid-by-policy query.
    refused(q({ groupBy: ['email'] }), strict(), 'expired', new Date('2030-01-01T00:00:00Z'));
  });

  it('unknown_field: in groupBy, aggregates and filters, nested or not', () => {
    const e = refused(q({ groupBy: ['regoin'], ...dp() }), strict(), 'unknown_field');
    expect(e.message).toContain('regoin');
    refused(q({ groupBy: ['toString'] }), openPolicy(), 'unknown_field');
    refused(q({ groupBy: ['orders'] }), openPolicy(), 'unknown_field');
    refused(q({}, [{ name: 's', op: 'sum', field: 'orders.totl' }]), openPolicy(), 'unknown_field');
    refused(q({ filter: { op: 'eq', field: 'regin', value: 'x' } }), openPolicy(), 'unknown_field');
    refused(q({ filter: { op: 'and', args: [{ op: 'eq', field: 'region', value: 'x' }, { op: 'not', arg: { op: 'gt', field: 'nope', value: 1 } }] } }), openPolicy(), 'unknown_field');
  });

  it('dp_required: the default policy and a policy that requires DP', () => {
    refused(q(), null, 'dp_required');
    refused(q({ privacy: { minGroupSize: 20 } }), strict(), 'dp_required');
    expect(verdict(q(), openPolicy()).dp).toBeNull();
  });

  it('epsilon_range: below the owner\'s floor or above its ceiling', () => {
    refused(q(dp(0.05)), strict(), 'epsilon_range');
    refused(q(dp(1.5)), strict(), 'epsilon_range');
    refused(q(dp(2)), null, 'epsilon_range');
    refused(q(dp(0.001)), null, 'epsilon_range');
  });

  it('min_group_size: a query may not ask for less than the owner\'s minimum', () => {
    refused(q({ privacy: { dp: { epsilon: 0.5 }, minGroupSize: 9 } }), strict(), 'min_group_size');
    refused(q({ privacy: { minGroupSize: 1 } }), openPolicy(), 'min_group_size');
  });

  it('dimension: grouping by a field the policy does not list', () => {
    refused(q({ groupBy: ['email'], ...dp() }), strict(), 'dimension');
    refused(q({ groupBy: ['region', 'orders.total'], ...dp() }), strict(), 'dimension');
    expect(verdict(q({ groupBy: ['vip'], ...dp() }), strict()).publicDomains.size).toBe(0);
  });

  it('extrema: min, max and quantiles only when the owner allows exact extrema', () => {
    const noExtrema = openPolicy({ exactExtrema: false });
    refused(q({}, [{ name: 'x', op: 'max', field: 'orders.total' }]), noExtrema, 'extrema');
    refused(q({}, [{ name: 'x', op: 'min', field: 'orders.total' }]), noExtrema, 'extrema');
    refused(q({}, [{ name: 'x', op: 'quantiles', field: 'orders.total', q: [0.5] }]), noExtrema, 'extrema');
    // Listed as an allowed operation does not override exactExtrema.
    refused(q({ privacy: { minGroupSize: 10 } }, [{ name: 'x', op: 'max', field: 'orders.count' }]), { ...strict(), dp: { ...strict().dp, required: false } }, 'extrema');
    expect(() => verdict(q({}, [{ name: 'x', op: 'max', field: 'orders.total' }]), openPolicy())).not.toThrow();
  });

  it('aggregate: an operation or field the policy does not list', () => {
    refused(q(dp(), [{ name: 'h', op: 'histogram', field: 'complaint', bins: [0, 1] }]), strict(), 'aggregate');
    refused(q(dp(), [{ name: 's', op: 'sum', field: 'vip', clamp: [0, 1] }]), strict(), 'aggregate');
    refused(q({}, [{ name: 'd', op: 'distinctCount', field: 'email' }]), openPolicy({ aggregates: { email: { ops: ['topTerms'] } } }), 'aggregate');
    // count is always allowed.
    expect(() => verdict(q(dp()), strict())).not.toThrow();
  });

  it('clamp: wider than the owner\'s bounds, or two clamps of one field', () => {
    const e = refused(q(dp(), [{ name: 's', op: 'sum', field: 'orders.total', clamp: [-1, 500] }]), strict(), 'clamp');
    expect(e.message).toContain('[0, 10000]');
    refused(q(dp(), [{ name: 's', op: 'mean', field: 'orders.total', clamp: [0, 10_001] }]), strict(), 'clamp');
    refused(q(dp(), [{ name: 's', op: 'sum', field: 'orders.total', clamp: [0, 5] }, { name: 'm', op: 'mean', field: 'orders.total', clamp: [0, 6] }]), strict(), 'clamp');
    refused(q({}, [{ name: 's', op: 'sum', field: 'orders.total', clamp: [0, 5] }, { name: 'm', op: 'mean', field: 'orders.total', clamp: [1, 5] }]), openPolicy(), 'clamp');
    // Exactly the bounds, or within them, is fine.
    expect(verdict(q(dp(), [{ name: 's', op: 'sum', field: 'orders.total', clamp: [0, 10_000] }]), strict()).clamps.get('orders.total')).toEqual([0, 10_000]);
  });

  it('filter: an operator or field the policy does not list, at any depth', () => {
    refused(q({ filter: { op: 'ne', field: 'region', value: 'x' }, ...dp() }), strict(), 'filter');
    refused(q({ filter: { op: 'eq', field: 'email', value: 'x' }, ...dp() }), strict(), 'filter');
    refused(q({ filter: { op: 'or', args: [{ op: 'in', field: 'region', values: ['a'] }, { op: 'not', arg: { op: 'lt', field: 'orders.count', value: 3 } }] }, ...dp() }), strict(), 'filter');
    expect(() => verdict(q({ filter: { op: 'and', args: [{ op: 'in', field: 'region', values: ['a'] }, { op: 'gt', field: 'orders.count', value: 3 }] }, ...dp() }), strict())).not.toThrow();
  });

  it('a malformed query is ERR_QUERY_INVALID, before any policy rule', () => {
    expectCode(() => verdict({ version: 1, aggregates: [], extra: 1 }, strict()), 'ERR_QUERY_INVALID');
    expectCode(() => verdict(null, null), 'ERR_QUERY_INVALID', '$');
    expectCode(() => verdict(q({ groupBy: ['a..b'] }), openPolicy()), 'ERR_QUERY_INVALID', '$.groupBy[0]');
  });

  it('clamp under DP: the owner\'s bounds stand in for a missing query clamp; neither is refused', () => {
    const r = verdict(q(dp(), [{ name: 's', op: 'sum', field: 'orders.total' }, { name: 'm', op: 'mean', field: 'orders.total' }]), strict());
    expect(r.clamps).toEqual(new Map([['orders.total', [0, 10_000]]]));
    const e = refused(q(dp(1), [{ name: 's', op: 'sum', field: 'orders.total' }]), null, 'clamp');
    expect(e.message).toContain('orders.total');
    refused(q(dp(), [{ name: 'm', op: 'mean', field: 'orders.count' }]), { ...strict(), aggregates: '*' }, 'clamp');
    // Exact mode needs no clamp.
    expect(verdict(q({}, [{ name: 's', op: 'sum', field: 'orders.total' }]), openPolicy()).clamps.size).toBe(0);
  });

  // README "Release policy" lists `dp_op` among the refusal reasons. validateQuery
  // (enclave/analytics/query.ts) runs first and answers a DP query with a non-DP operation itself,
  // with ERR_QUERY_INVALID ($.aggregates[i].op), so the policy check's `dp_op` is unreachable.
  // Reported as a source bug; this states the documented behaviour and fails until it is fixed.
  it('dp_op: an operation differential privacy does not cover is refused by the policy check (documented reason)', () => {
    refused(q(dp(), [{ name: 'x', op: 'distinctCount', field: 'email' }]), null, 'dp_op');
  });
  it('dp_op: whichever check answers, a DP query with a non-DP operation is refused', () => {
    for (const op of ['distinctCount', 'min', 'max', 'stddev']) {
      let thrown: unknown;
      try {
        verdict(q(dp(), [{ name: 'x', op, field: 'orders.total' }]), openPolicy());
      } catch (e) {
        thrown = e;
      }
      expect((thrown as { code?: string }).code).toMatch(/^ERR_QUERY_(REFUSED|INVALID)$/);
    }
  });

  it('property: any JSON query gives a verdict or ERR_QUERY_INVALID / ERR_QUERY_REFUSED', () => {
    const field = fc.constantFrom('region', 'email', 'orders.total', 'vip', 'nope', 'a..b');
    const agg = fc.oneof(
      fc.constant(count),
      fc.record({ name: fc.constantFrom('a', 'b', 'c'), op: fc.constantFrom('sum', 'mean', 'max', 'min', 'sentiment', 'distinctCount'), field }),
      fc.record({ name: fc.constantFrom('d', 'e'), op: fc.constantFrom('sum', 'mean'), field, clamp: fc.tuple(fc.integer({ min: -10, max: 10 }), fc.integer({ min: 0, max: 20_000 })) }),
    );
    const query = fc.record(
      {
        version: fc.constantFrom(1, 1, 1, 2),
        groupBy: fc.array(field, { maxLength: 3 }),
        aggregates: fc.array(agg, { minLength: 1, maxLength: 4 }),
        privacy: fc.record({ dp: fc.record({ epsilon: fc.double({ min: 0.001, max: 12, noNaN: true }) }), minGroupSize: fc.integer({ min: 1, max: 40 }) }, { requiredKeys: [] }),
        filter: fc.record({ op: fc.constantFrom('eq', 'ne', 'gt'), field, value: fc.integer() }),
      },
      { requiredKeys: ['version', 'aggregates'] },
    );
    const policies = [null, strict(), openPolicy(), openPolicy({ exactExtrema: false })];
    fc.assert(
      fc.property(fc.oneof(query, fc.jsonValue()), fc.constantFrom(...policies), (v, p) => {
        onlyProjectErrors(() => verdict(v, p), ['ERR_QUERY_INVALID', 'ERR_QUERY_REFUSED']);
      }),
      { numRuns: 500 },
    );
  });
});

describe('checkQueryAgainstPolicy: field types from the sealed schema', () => {
  const schema = { spend: 'number', note: 'string', mixed: 'mixed', flag: 'boolean' } as const;
  const verdict = (aggregates: unknown[], filter?: unknown) =>
    checkQueryAgainstPolicy({ version: 1, aggregates, ...(filter ? { filter } : {}) }, { policy: openPolicy(), schema: { ...schema } }, new Date(0));
  it('numeric operations need a number field; text operations a string field (reason type)', () => {
    for (const [op, field] of [['sum', 'note'], ['mean', 'mixed'], ['histogram', 'flag'], ['sentiment', 'spend'], ['sentiment', 'mixed']] as const) {
      const a = op === 'histogram' ? { name: 'x', op, field, bins: [0, 1] } : { name: 'x', op, field, ...(op === 'sum' || op === 'mean' ? { clamp: [0, 1] } : {}) };
      let e: unknown;
      try {
        verdict([a]);
      } catch (x) {
        e = x;
      }
      expect((e as { code?: string }).code, `${op} ${field}`).toBe('ERR_QUERY_REFUSED');
      expect((e as { reason?: string }).reason, `${op} ${field}`).toBe('type');
    }
    expect(() => verdict([{ name: 'x', op: 'count' }], { op: 'gte', field: 'note', value: 3 })).toThrow(/needs a number field; "note" is a string/);
    expect(() => verdict([{ name: 'x', op: 'count' }], { op: 'lt', field: 'spend', value: 'abc' })).toThrow(/needs a string field/);
  });
  it('the matching types pass', () => {
    expect(() => verdict([{ name: 's', op: 'sum', field: 'spend', clamp: [0, 9] }, { name: 't', op: 'sentiment', field: 'note' }], { op: 'gte', field: 'spend', value: 3 })).not.toThrow();
  });
});
