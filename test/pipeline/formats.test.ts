import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MAX_MANIFEST_KEYS, MAX_SCHEMA_FIELDS, UNSEALED_MANIFEST_MESSAGE, decodeAttestedDocument, decodeCanonical, decodeRefusal, decodeResult, encodeCanonical,
  encodeRefusal, encodeResult, fieldAad, formatField, keyEncryptionContext, manifestBody, parseField, parseManifest, validateManifest,
  type RefusalDocument, type ResultDocument,
} from '../../enclave/protocol/index.js';
import { JOB_REFUSED_MESSAGE } from '../../enclave/job.js';
import { expectCode, onlyProjectErrors } from './helpers.js';

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('field format', () => {
  const iv = new Uint8Array(12).fill(1);
  const body = new Uint8Array(20).fill(2);
  const f = formatField('k0', iv, body);

  it('round-trips and has the documented shape', () => {
    expect(f).toBe(`ekf1.k0.${Buffer.from(iv).toString('base64url')}.${Buffer.from(body).toString('base64url')}`);
    const p = parseField(f);
    expect(p.keyRef).toBe('k0');
    expect(p.iv).toEqual(iv);
    expect(p.ciphertext).toEqual(body.subarray(0, 4));
    expect(p.tag).toEqual(body.subarray(4));
  });

  it('rejects every malformation with a reason and never echoes the input', () => {
    const cases: [unknown, string][] = [
      [42, 'type'], ['ekf2.k0.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA', 'version'], ['nodots', 'structure'],
      ['ekf1.k0.AAAAAAAAAAAAAAAA', 'structure'], ['ekf1.k0.AAAAAAAAAAAAAAAA.AAAA.AAAA', 'structure'],
      ['ekf1.k/0.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA', 'key_ref'], ['ekf1..AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA', 'key_ref'],
      ['ekf1.k0.AAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA', 'iv'], ['ekf1.k0.AAAAAAAAAAAAAAA=.AAAAAAAAAAAAAAAAAAAAAA', 'iv'],
      ['ekf1.k0.AAAAAAAAAAAAAAAA.AAAA', 'tag'], ['ekf1.k0.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAB', 'base64'],
      ['ekf1.k0.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA==', 'base64'], ['ekf1.k0.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAA+AA', 'base64'],
      ['ekf1.k0.AAAAAAAAAAAAAAAA.A', 'base64'], ['x'.repeat(2_000_000), 'too_long'],
    ];
    for (const [input, reason] of cases) {
      const e = expectCode(() => parseField(input), 'ERR_FIELD_FORMAT', reason);
      if (typeof input === 'string') expect(e.message.includes(input.slice(8, 24)) && input.length > 8).toBe(false);
    }
  });

  it('AAD is injective: shifting bytes between components changes it', () => {
    expect(fieldAad('ab', 'c', 'd', 'k')).not.toEqual(fieldAad('a', 'bc', 'd', 'k'));
    expect(fieldAad('d', 'r', 'a.b', 'k')).not.toEqual(fieldAad('d', 'r', 'a', 'b.k'));
    expect(toHex(fieldAad('d', '1', 'x', 'k0'))).toBe(
      Buffer.from('ekf1-aad').toString('hex') + '00000001' + '64' + '00000001' + '31' + '00000001' + '78' + '00000002' + '6b30',
    );
  });

  it('property: any string gives a parsed field or ERR_FIELD_FORMAT', () => {
    const alphabet = fc.constantFrom(...'ekf1.k0AZaz09-_=+/ \u00e9'.split(''));
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: alphabet, maxLength: 80 }), fc.string({ unit: alphabet }).map((s) => 'ekf1.k0.' + s)), (s) => {
        onlyProjectErrors(() => {
          const p = parseField(s);
          expect(p.iv.length).toBe(12);
          expect(p.tag.length).toBe(16);
          expect(formatField(p.keyRef, p.iv, new Uint8Array(Buffer.concat([p.ciphertext, p.tag])))).toBe(s);
        }, ['ERR_FIELD_FORMAT']);
      }),
      { numRuns: 300 },
    );
  });
});

const ARN = 'arn:aws:kms:us-east-1:111122223333:key/test-key';
/** A version 2 manifest by hand (validateManifest checks shape only; seal.test.ts checks the MACs). */
const goodManifest = () => ({
  version: 2, datasetId: 'ds', idField: 'id', fields: ['a', 'b.c'],
  schema: { id: 'string', a: 'string', 'b.c': 'number', d: 'boolean', e: 'mixed' },
  keys: {
    k0: { keyId: ARN, ciphertextBlob: 'AQID', encryptionContext: keyEncryptionContext('ds', 'k0') },
    k1: { keyId: 'arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/0a1b-2c3d', ciphertextBlob: 'AQIDBA==', encryptionContext: keyEncryptionContext('ds', 'k1') },
  },
  records: 20, digest: 'ab'.repeat(48), policy: null as unknown, seal: { k0: 'cd'.repeat(48), k1: 'ef'.repeat(48) },
});
const policy = { version: 1, minGroupSize: 10, dimensions: '*', aggregates: '*', filters: '*', dp: { required: true, epsilonMin: 0.1, epsilonMax: 1, budget: 3, delta: 1e-6 }, exactExtrema: false };

describe('manifest (version 2, sealed)', () => {
  it('accepts a good manifest, with and without a policy, and round-trips through JSON', () => {
    expect(validateManifest(goodManifest())).toEqual(goodManifest());
    const withPolicy = { ...goodManifest(), policy };
    expect(validateManifest(structuredClone(withPolicy))).toEqual(withPolicy);
    expect(parseManifest(JSON.stringify(withPolicy))).toEqual(withPolicy);
    expect(parseManifest(new TextEncoder().encode(JSON.stringify(withPolicy)))).toEqual(withPolicy);
    const zero = { ...goodManifest(), records: 0 };
    expect(validateManifest(zero).records).toBe(0);
    expect(manifestBody(validateManifest(goodManifest()))).not.toHaveProperty('seal');
  });

  it('refuses version 1 as unsealed, saying how to re-encrypt', () => {
    const v1 = { version: 1, datasetId: 'ds', idField: 'id', fields: ['a'], keys: { k0: { keyId: 'arn:x', ciphertextBlob: 'AQID', encryptionContext: { x: 'y' } } } };
    const e = expectCode(() => validateManifest(v1), 'ERR_MANIFEST_INVALID', 'unsealed');
    expect(e.message).toBe(`manifest.version: ${UNSEALED_MANIFEST_MESSAGE}`);
    expect(e.message).toContain('re-encrypt');
    expectCode(() => parseManifest(JSON.stringify(v1)), 'ERR_MANIFEST_INVALID', 'unsealed');
  });

  it('rejects each defect naming its path', () => {
    const manyKeys = Object.fromEntries(Array.from({ length: MAX_MANIFEST_KEYS + 1 }, (_, i) => [`k${i}`, { keyId: ARN, ciphertextBlob: 'AQID', encryptionContext: keyEncryptionContext('ds', `k${i}`) }]));
    const manySchema = Object.fromEntries(Array.from({ length: MAX_SCHEMA_FIELDS + 1 }, (_, i) => [`f${i}`, 'string']));
    const bad: [(m: any) => void, string][] = [
      [(m) => { m.extra = 1; }, '.extra'],
      [(m) => { m.version = 3; }, '.version'], [(m) => { m.version = '2'; }, '.version'], [(m) => { delete m.version; }, '.version'],
      [(m) => { m.datasetId = 'a b'; }, '.datasetId'], [(m) => { m.datasetId = ''; }, '.datasetId'], [(m) => { m.datasetId = 'x'.repeat(129); }, '.datasetId'],
      [(m) => { delete m.idField; }, '.idField'], [(m) => { m.idField = 'a..b'; }, '.idField'], [(m) => { m.idField = 7; }, '.idField'],
      [(m) => { m.fields = []; }, '.fields'], [(m) => { m.fields = 'a'; }, '.fields'], [(m) => { m.fields = Array.from({ length: 257 }, (_, i) => `f${i}`); }, '.fields'],
      [(m) => { m.fields = ['a', 'a']; }, '.fields[1]'], [(m) => { m.fields = ['b', 'b.c']; }, '.fields[1]'], [(m) => { m.fields = ['b.c', 'b']; }, '.fields[1]'],
      [(m) => { m.fields = ['id']; }, '.fields[0]'], [(m) => { m.fields = ['__proto__']; }, '.fields[0]'], [(m) => { m.fields = [3]; }, '.fields[0]'],
      [(m) => { m.schema = []; }, '.schema'], [(m) => { m.schema = null; }, '.schema'], [(m) => { delete m.schema; }, '.schema'],
      [(m) => { m.schema['a..b'] = 'string'; }, '.schema'], [(m) => { m.schema = { ...manySchema, a: 'string', 'b.c': 'number' }; }, '.schema'],
      [(m) => { delete m.schema.a; }, '.schema'], [(m) => { m.schema.a = 'date'; }, '.schema.a'], [(m) => { m.schema.d = null; }, '.schema.d'],
      [(m) => { m.keys = {}; }, '.keys'], [(m) => { m.keys = []; }, '.keys'], [(m) => { m.keys = manyKeys; }, '.keys'],
      [(m) => { m.keys['bad ref'] = m.keys.k0; }, '.keys.bad ref'], [(m) => { m.keys.k0 = 'x'; }, '.keys.k0'], [(m) => { m.keys.k0.extra = 1; }, '.keys.k0.extra'],
      [(m) => { delete m.keys.k0.keyId; }, '.keys.k0.keyId'], [(m) => { m.keys.k0.keyId = 'alias/demo'; }, '.keys.k0.keyId'],
      [(m) => { m.keys.k0.keyId = '1234abcd-12ab-34cd-56ef-1234567890ab'; }, '.keys.k0.keyId'],
      [(m) => { m.keys.k0.keyId = 'arn:aws:kms:us-east-1:12345:key/x'; }, '.keys.k0.keyId'],
      [(m) => { m.keys.k0.keyId = 'arn:aws:kms:us-east-1:111122223333:alias/demo'; }, '.keys.k0.keyId'],
      [(m) => { m.keys.k0.keyId = 'arn:aws:s3:us-east-1:111122223333:key/x'; }, '.keys.k0.keyId'],
      [(m) => { m.keys.k0.keyId = ARN + '\n'; }, '.keys.k0.keyId'],
      [(m) => { m.keys.k0.ciphertextBlob = 'not base64!'; }, '.keys.k0.ciphertextBlob'], [(m) => { m.keys.k0.ciphertextBlob = ''; }, '.keys.k0.ciphertextBlob'],
      [(m) => { m.keys.k0.ciphertextBlob = 'AQI'; }, '.keys.k0.ciphertextBlob'], [(m) => { m.keys.k0.ciphertextBlob = 'A'.repeat(8196); }, '.keys.k0.ciphertextBlob'],
      [(m) => { m.keys.k0.encryptionContext = { a: 1 }; }, '.keys.k0.encryptionContext'],
      [(m) => { m.keys.k0.encryptionContext = keyEncryptionContext('ds', 'k1'); }, '.keys.k0.encryptionContext'],
      [(m) => { m.keys.k0.encryptionContext = keyEncryptionContext('other', 'k0'); }, '.keys.k0.encryptionContext'],
      [(m) => { m.keys.k0.encryptionContext = { ...keyEncryptionContext('ds', 'k0'), extra: 'x' }; }, '.keys.k0.encryptionContext'],
      [(m) => { delete m.keys.k0.encryptionContext['enclavekit:key-ref']; }, '.keys.k0.encryptionContext'],
      [(m) => { m.keys.k0.encryptionContext = 'ds'; }, '.keys.k0.encryptionContext'],
      [(m) => { m.records = -1; }, '.records'], [(m) => { m.records = 1.5; }, '.records'], [(m) => { m.records = '20'; }, '.records'],
      [(m) => { m.records = 2 ** 53; }, '.records'], [(m) => { delete m.records; }, '.records'],
      [(m) => { m.digest = m.digest.toUpperCase(); }, '.digest'], [(m) => { m.digest = 'ab'.repeat(32); }, '.digest'], [(m) => { m.digest = null; }, '.digest'],
      [(m) => { m.policy = { ...policy, minGroupSize: 0 }; }, 'policy'], [(m) => { m.policy = 'strict'; }, 'policy'], [(m) => { delete m.policy; }, '.policy'],
      [(m) => { m.seal = []; }, '.seal'], [(m) => { delete m.seal; }, '.seal'], [(m) => { m.seal.k9 = m.seal.k0; }, '.seal.k9'], [(m) => { delete m.seal.k1; }, '.seal.k1'],
      [(m) => { m.seal.k0 = m.seal.k0.toUpperCase(); }, '.seal.k0'], [(m) => { m.seal.k0 = 'cd'.repeat(32); }, '.seal.k0'], [(m) => { m.seal.k0 = 1; }, '.seal.k0'],
    ];
    for (const [mut, path] of bad) {
      const m = goodManifest();
      mut(m);
      expectCode(() => validateManifest(m), 'ERR_MANIFEST_INVALID', path);
      expectCode(() => parseManifest(JSON.stringify(m)), 'ERR_MANIFEST_INVALID', path);
    }
    for (const v of [null, [], 'manifest', 2, new Uint8Array(1)]) expectCode(() => validateManifest(v), 'ERR_MANIFEST_INVALID', '$');
    expectCode(() => parseManifest('{'), 'ERR_MANIFEST_INVALID', 'json');
    expectCode(() => parseManifest(''), 'ERR_MANIFEST_INVALID', 'json');
    expectCode(() => parseManifest(new Uint8Array([0xff])), 'ERR_MANIFEST_INVALID', 'utf8');
  });

  it('property: any bytes, any JSON and any single-byte change of a manifest give a manifest or ERR_MANIFEST_INVALID', () => {
    const text = Buffer.from(JSON.stringify({ ...goodManifest(), policy }));
    const accepted = (m: unknown) => expect(parseManifest(JSON.stringify(m))).toEqual(m);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => onlyProjectErrors(() => accepted(parseManifest(b)), ['ERR_MANIFEST_INVALID'])), { numRuns: 300 });
    fc.assert(fc.property(fc.jsonValue(), (v) => onlyProjectErrors(() => accepted(validateManifest(v)), ['ERR_MANIFEST_INVALID'])), { numRuns: 300 });
    fc.assert(
      fc.property(fc.nat(text.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const b = new Uint8Array(text);
        b[i]! ^= x;
        onlyProjectErrors(() => accepted(parseManifest(b)), ['ERR_MANIFEST_INVALID']);
      }),
      { numRuns: 500 },
    );
    // Any member of a good manifest replaced by any JSON value.
    const paths: string[][] = [];
    const walk = (v: unknown, path: string[]) => {
      if (path.length > 0) paths.push(path);
      if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
    };
    walk({ ...goodManifest(), policy }, []);
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.jsonValue(), (path, value) => {
        const m = { ...goodManifest(), policy: structuredClone(policy) } as any;
        let o = m;
        for (const k of path.slice(0, -1)) o = o[k];
        o[path.at(-1)!] = value;
        onlyProjectErrors(() => accepted(parseManifest(JSON.stringify(m))), ['ERR_MANIFEST_INVALID']);
      }),
      { numRuns: 500 },
    );
  });
});

describe('canonical CBOR', () => {
  it('encodes deterministically: sorted keys, shortest ints and floats', () => {
    expect(toHex(encodeCanonical({ b: 1, a: 2, aa: 3 }))).toBe('a3616102616201626161' + '03');
    expect(toHex(encodeCanonical([0, 23, 24, 255, 256, 65536, -1, -25, 2 ** 32]))).toBe('89' + '00' + '17' + '1818' + '18ff' + '190100' + '1a00010000' + '20' + '3818' + '1b0000000100000000');
    expect(toHex(encodeCanonical([1.5, 0.1, 100000.5, 1e300, -0]))).toBe('85' + 'f93e00' + 'fb3fb999999999999a' + 'fa47c35040' + 'fb7e37e43c8800759c' + '00');
    expect(toHex(encodeCanonical({ s: 'é', b: new Uint8Array([1]), n: null, t: true, u: undefined }))).toBe('a4' + '6162' + '4101' + '616e' + 'f6' + '6173' + '62c3a9' + '6174' + 'f5');
    expect(() => encodeCanonical(NaN)).toThrow(TypeError);
    expect(() => encodeCanonical(new Map())).toThrow(TypeError);
    expect(() => encodeCanonical(10n)).toThrow(TypeError);
  });

  it('round-trips and rejects non-canonical encodings of the same value', () => {
    const v = { query: { version: 1 }, x: [1, 2.5, 'a', null, false], y: new Uint8Array([9]) };
    expect(decodeCanonical(encodeCanonical(v), 'ERR_RESULT_INVALID', 't')).toEqual(v);
    const nonCanonical = [
      'a2616201616102', // unsorted keys
      'a2616101616102', // duplicate key
      '1817', // 23 as two bytes
      '190017', // long-form int
      'f93c00', // 1.0 as float
      'fa3fc00000', // 1.5 as f32 (f16 suffices)
      '9f01ff', // indefinite array
      '7f6161ff', // indefinite text
      'a10102', // integer key
      'c11a00000001', // tag
      'f7', // undefined
      '0102', // trailing bytes
      'a1', // truncated
    ];
    for (const h of nonCanonical) expectCode(() => decodeCanonical(hex(h), 'ERR_RESULT_INVALID', 't'), 'ERR_RESULT_INVALID');
  });
});

const doc = (): ResultDocument => ({
  version: 2, jobId: 'j', datasetId: 'd', datasetDigest: new Uint8Array(48), sealDigest: new Uint8Array(48).fill(5), keyArns: [ARN],
  query: { version: 1, aggregates: [{ name: 'n', op: 'count' }] },
  queryDigest: new Uint8Array(48).fill(1), counts: { records: 20, matched: 20, groups: 1, suppressedGroups: 2 },
  groups: [{ key: ['eu', null], count: 20, aggregates: { n: 20, m: 1.25, q: [{ q: 0.5, value: 3 }] } }],
  privacy: { minGroupSize: 10, dp: null }, ledger: { generation: 1, spent: 0 },
  audit: { instance: new Uint8Array(16).fill(2), seq: 0, prev: new Uint8Array(48) }, platform: 'simulator', workerVersion: '0.1.0',
});
const dpDoc = (): ResultDocument => ({
  ...doc(),
  counts: { records: 20, matched: null, groups: 1, suppressedGroups: null },
  privacy: { minGroupSize: 10, dp: { mechanism: 'discrete-laplace', epsilon: 1, delta: 1e-6, threshold: 42, budget: { limit: 3, spent: 1 } } },
  ledger: { generation: 4, spent: 1 },
  audit: { instance: new Uint8Array(16).fill(2), seq: 7, prev: new Uint8Array(48).fill(9) },
});
/** The refusal once records flowed: constant code, reason and text. */
const refusal = (): RefusalDocument => ({
  version: 2, refused: true, jobId: 'j', datasetId: 'd', sealDigest: new Uint8Array(48).fill(5), queryDigest: new Uint8Array(48).fill(1),
  code: 'ERR_JOB_REFUSED', reason: 'refused', message: JOB_REFUSED_MESSAGE, ledger: { generation: 2, spent: 0.5 },
  audit: { instance: new Uint8Array(16).fill(2), seq: 3, prev: new Uint8Array(48).fill(4) }, platform: 'nitro', workerVersion: '0.1.0',
});
/** A refusal before the seal was checked and before the ledger admitted the job. */
const earlyRefusal = (): RefusalDocument => ({
  ...refusal(), sealDigest: null, ledger: null, code: 'ERR_QUERY_REFUSED', reason: 'dp_required', message: "the owner's release policy requires differential privacy ($.privacy.dp)",
});

describe('result document (version 2)', () => {
  it('round-trips canonically, exact and DP', () => {
    for (const d of [doc(), dpDoc()]) {
      const bytes = encodeResult(d);
      expect(decodeResult(bytes)).toEqual(d);
      expect(toHex(encodeResult(decodeResult(bytes)))).toBe(toHex(bytes));
      const a = decodeAttestedDocument(bytes);
      expect(a.kind).toBe('result');
      expect(a.doc).toEqual(d);
    }
  });

  it('rejects schema violations', () => {
    const muts: [(d: any) => void, string][] = [
      [(d) => { d.extra = 1; }, '.extra'], [(d) => { delete d.sealDigest; }, '.sealDigest'], [(d) => { delete d.ledger; }, '.ledger'], [(d) => { delete d.audit; }, '.audit'],
      [(d) => { d.version = 1; }, '.version'], [(d) => { d.version = 3; }, '.version'],
      [(d) => { d.platform = 'sgx'; }, '.platform'], [(d) => { d.jobId = ''; }, '.jobId'], [(d) => { d.workerVersion = ''; }, '.workerVersion'],
      [(d) => { d.datasetDigest = new Uint8Array(32); }, '.datasetDigest'], [(d) => { d.sealDigest = new Uint8Array(47); }, '.sealDigest'],
      [(d) => { d.sealDigest = null; }, '.sealDigest'], [(d) => { d.queryDigest = new Uint8Array(0); }, '.queryDigest'],
      [(d) => { d.keyArns = []; }, '.keyArns'], [(d) => { d.keyArns = ['']; }, '.keyArns'], [(d) => { d.keyArns = ARN; }, '.keyArns'], [(d) => { d.keyArns = [1]; }, '.keyArns'],
      [(d) => { d.query = []; }, '.query'],
      [(d) => { d.counts.groups = 2; }, '.counts.groups'], [(d) => { d.counts.records = -1; }, '.counts.records'],
      [(d) => { d.counts.matched = 1.5; }, '.counts.matched'], [(d) => { d.counts.suppressedGroups = -1; }, '.counts.suppressedGroups'],
      [(d) => { d.counts.extra = 0; }, '.counts.extra'],
      [(d) => { d.groups[0].key = [{}]; }, '.groups[0].key'], [(d) => { d.groups[0].count = '20'; }, '.groups[0].count'],
      [(d) => { d.privacy.minGroupSize = -1; }, '.privacy.minGroupSize'],
      [(d) => { d.privacy.dp = { mechanism: 'laplace', epsilon: 1, delta: 1e-6, threshold: 1, budget: { limit: 1, spent: 1 } }; }, '.privacy.dp.mechanism'],
      [(d) => { d.privacy.dp = { mechanism: 'discrete-laplace', epsilon: 0, delta: 1e-6, threshold: 1, budget: { limit: 1, spent: 1 } }; }, '.privacy.dp.epsilon'],
      [(d) => { d.privacy.dp = { mechanism: 'discrete-laplace', epsilon: 1, delta: 0, threshold: 1, budget: { limit: 1, spent: 1 } }; }, '.privacy.dp.delta'],
      [(d) => { d.privacy.dp = { mechanism: 'discrete-laplace', epsilon: 1, delta: 1e-6, threshold: -1, budget: { limit: 1, spent: 1 } }; }, '.privacy.dp.threshold'],
      [(d) => { d.privacy.dp = { mechanism: 'discrete-laplace', epsilon: 1, delta: 1e-6, threshold: 1, budget: { limit: -1, spent: 1 } }; }, '.privacy.dp.budget'],
      [(d) => { d.privacy.dp = { mechanism: 'discrete-laplace', epsilon: 1, delta: 1e-6, threshold: 1, budget: null }; }, '.privacy.dp.budget'],
      [(d) => { d.privacy.dp = { mechanism: 'discrete-laplace', epsilon: 1, delta: 1e-6, threshold: 1 }; }, '.privacy.dp.budget'],
      [(d) => { d.privacy.dp = { mechanism: 'discrete-laplace', epsilon: 1, delta: 1e-6, threshold: 1, budget: { limit: 1, spent: 1, left: 0 } }; }, '.privacy.dp.budget.left'],
      [(d) => { d.ledger = null; }, '.ledger'], [(d) => { d.ledger.generation = 0; }, '.ledger.generation'], [(d) => { d.ledger.generation = 1.5; }, '.ledger.generation'],
      [(d) => { d.ledger.spent = -1; }, '.ledger.spent'], [(d) => { d.ledger.extra = 1; }, '.ledger.extra'],
      [(d) => { d.audit.instance = new Uint8Array(8); }, '.audit.instance'], [(d) => { d.audit.seq = -1; }, '.audit.seq'],
      [(d) => { d.audit.prev = new Uint8Array(32); }, '.audit.prev'], [(d) => { d.audit = {}; }, '.audit.instance'],
    ];
    for (const [m, path] of muts) {
      const d = doc();
      m(d);
      expectCode(() => encodeResult(d), 'ERR_RESULT_INVALID', path);
      expectCode(() => decodeResult(encodeCanonical(d)), 'ERR_RESULT_INVALID', path);
      expectCode(() => decodeAttestedDocument(encodeCanonical(d)), 'ERR_RESULT_INVALID', path);
    }
    expectCode(() => decodeResult(new Uint8Array(0)), 'ERR_RESULT_INVALID', '$');
  });

  it('property: any bytes, and any single-byte change of a result, give a result or ERR_RESULT_INVALID', () => {
    const bytes = encodeResult(dpDoc());
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), (b) => onlyProjectErrors(() => decodeResult(b), ['ERR_RESULT_INVALID'])), { numRuns: 300 });
    fc.assert(
      fc.property(fc.nat(bytes.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const b = bytes.slice();
        b[i]! ^= x;
        onlyProjectErrors(() => {
          const d = decodeResult(b);
          expect(toHex(encodeResult(d))).toBe(toHex(b)); // anything accepted is canonical
        }, ['ERR_RESULT_INVALID']);
      }),
      { numRuns: 300 },
    );
    // fc.jsonValue sometimes makes an own "__proto__" key, which no decoder gives back as written
    // (cbor-x renames it): the encoder refuses such a value, and so does the decoder (below).
    const hasProto = (v: unknown): boolean =>
      v !== null && typeof v === 'object' && (Object.prototype.hasOwnProperty.call(v, '__proto__') || Object.values(v).some(hasProto));
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        if (hasProto(v)) {
          expect(() => encodeCanonical(v)).toThrow(/__proto__/);
          return;
        }
        const b = encodeCanonical(v);
        expect(toHex(encodeCanonical(decodeCanonical(b, 'ERR_RESULT_INVALID', 't')))).toBe(toHex(b));
      }),
      { numRuns: 200 },
    );
  });

  it('a "__proto__" key is refused both ways, never renamed', () => {
    const v = JSON.parse('{"a":[{"__proto__":1}]}') as unknown;
    expect(() => encodeCanonical(v)).toThrow(/__proto__/);
    // {"a": [{"__proto__": 1}]} hand-encoded, with the key's head short and long
    for (const h of ['a1616181a1695f5f70726f746f5f5f01', 'a1616181a178095f5f70726f746f5f5f01']) {
      expectCode(() => decodeCanonical(hex(h), 'ERR_RESULT_INVALID', 't'), 'ERR_RESULT_INVALID');
      expect(() => decodeCanonical(hex(h), 'ERR_RESULT_INVALID', 't')).toThrow(expect.objectContaining({ reason: 'proto_key' }));
    }
    // "__proto_" and "__proto__x" are ordinary keys
    expect(decodeCanonical(hex('a1685f5f70726f746f5f01'), 'ERR_RESULT_INVALID', 't')).toEqual({ __proto_: 1 });
  });
});

describe('refusal document (version 2)', () => {
  it('round-trips canonically, after records flowed and before the seal was checked', () => {
    for (const d of [refusal(), earlyRefusal()]) {
      const bytes = encodeRefusal(d);
      expect(decodeRefusal(bytes)).toEqual(d);
      expect(toHex(encodeRefusal(decodeRefusal(bytes)))).toBe(toHex(bytes));
      const a = decodeAttestedDocument(bytes);
      expect(a.kind).toBe('refusal');
      expect(a.doc).toEqual(d);
    }
  });

  it('rejects schema violations', () => {
    const muts: [(d: any) => void, string][] = [
      [(d) => { d.extra = 1; }, '.extra'], [(d) => { delete d.code; }, '.code'], [(d) => { delete d.ledger; }, '.ledger'], [(d) => { delete d.audit; }, '.audit'],
      [(d) => { d.version = 1; }, '.version'], [(d) => { d.refused = false; }, '.refused'], [(d) => { d.refused = 1; }, '.refused'],
      [(d) => { d.jobId = ''; }, '.jobId'], [(d) => { d.datasetId = 'x'.repeat(129); }, '.datasetId'],
      [(d) => { d.sealDigest = new Uint8Array(32); }, '.sealDigest'], [(d) => { d.sealDigest = 'ab'.repeat(48); }, '.sealDigest'],
      [(d) => { d.queryDigest = null; }, '.queryDigest'],
      [(d) => { d.code = 'job refused'; }, '.code'], [(d) => { d.code = 'JOB_REFUSED'; }, '.code'], [(d) => { d.code = 'ERR_' + 'A'.repeat(61); }, '.code'],
      [(d) => { d.reason = 'r'.repeat(65); }, '.reason'], [(d) => { d.reason = null; }, '.reason'],
      [(d) => { d.message = 'm'.repeat(1025); }, '.message'], [(d) => { d.message = 5; }, '.message'],
      [(d) => { d.ledger = 'x'; }, '.ledger'], [(d) => { d.ledger.generation = 0; }, '.ledger.generation'], [(d) => { d.ledger.spent = -1; }, '.ledger.spent'],
      [(d) => { d.ledger.extra = 1; }, '.ledger.extra'],
      [(d) => { d.audit.instance = new Uint8Array(15); }, '.audit.instance'], [(d) => { d.audit.seq = 1.5; }, '.audit.seq'], [(d) => { d.audit.prev = null; }, '.audit.prev'],
      [(d) => { d.platform = 'sgx'; }, '.platform'], [(d) => { d.workerVersion = ''; }, '.workerVersion'],
    ];
    for (const [m, path] of muts) {
      const d = refusal();
      m(d);
      expectCode(() => encodeRefusal(d), 'ERR_RESULT_INVALID', path);
      expectCode(() => decodeRefusal(encodeCanonical(d)), 'ERR_RESULT_INVALID', path);
    }
    for (const b of [new Uint8Array(0), new Uint8Array(64 * 1024 + 1)]) expectCode(() => decodeRefusal(b), 'ERR_RESULT_INVALID', '$');
    // Trailing bytes after the document.
    const bytes = encodeRefusal(refusal());
    expectCode(() => decodeRefusal(new Uint8Array([...bytes, 0])), 'ERR_RESULT_INVALID');
    // A result is not a refusal, and a refusal is not a result.
    expectCode(() => decodeRefusal(encodeResult(doc())), 'ERR_RESULT_INVALID');
    expectCode(() => decodeResult(bytes), 'ERR_RESULT_INVALID');
    // decodeAttestedDocument tells them apart by `refused: true` and checks the schema it chose.
    expectCode(() => decodeAttestedDocument(encodeCanonical({ ...doc(), refused: true })), 'ERR_RESULT_INVALID');
    expectCode(() => decodeAttestedDocument(encodeCanonical({ ...refusal(), refused: false })), 'ERR_RESULT_INVALID');
    expectCode(() => decodeAttestedDocument(new Uint8Array(0)), 'ERR_RESULT_INVALID', '$');
  });

  it('property: any bytes, and any single-byte change of a refusal, give a refusal or ERR_RESULT_INVALID', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), (b) => onlyProjectErrors(() => decodeRefusal(b), ['ERR_RESULT_INVALID'])), { numRuns: 300 });
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), (b) => onlyProjectErrors(() => decodeAttestedDocument(b), ['ERR_RESULT_INVALID'])), { numRuns: 300 });
    for (const d of [refusal(), earlyRefusal()]) {
      const bytes = encodeRefusal(d);
      fc.assert(
        fc.property(fc.nat(bytes.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
          const b = bytes.slice();
          b[i]! ^= x;
          onlyProjectErrors(() => {
            const r = decodeRefusal(b);
            expect(toHex(encodeRefusal(r))).toBe(toHex(b)); // anything accepted is canonical
          }, ['ERR_RESULT_INVALID']);
          onlyProjectErrors(() => decodeAttestedDocument(b), ['ERR_RESULT_INVALID']);
        }),
        { numRuns: 300 },
      );
    }
  });
});
