// Key-policy wildcards must match in bounded time: both the pattern (any key policy, which any
// loopback caller of the simulator can set) and the text (an encryption-context value of up to
// 8 KiB) are caller-chosen. The former RegExp translation (`*` -> `.*`) backtracked exponentially.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { evaluateKeyPolicy, parseKeyPolicy, type RequestContext } from '../../host/key-policy.js';

const ACCOUNT = '111122223333';
const ARN = `arn:aws:kms:us-east-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;

const ctx = (action: string, keys: Record<string, string[]> = {}, resource = ARN): RequestContext => ({
  action,
  resource,
  account: ACCOUNT,
  keys: new Map(Object.entries(keys)),
});
const like = (pattern: string, op = 'StringLike') =>
  parseKeyPolicy(
    JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', Condition: { [op]: { 'kms:EncryptionContext:x': pattern } } }] }),
  );
const decide = (pattern: string, value: string, op = 'StringLike') => evaluateKeyPolicy(like(pattern, op), ctx('kms:Decrypt', { 'kms:EncryptionContext:x': [value] }));

describe('key policy wildcards', () => {
  it('a pathological StringLike pattern against a long value answers at once', () => {
    const t = Date.now();
    expect(decide('*a'.repeat(40) + 'b', 'a'.repeat(8000))).toBe('implicit-deny');
    expect(decide('*a'.repeat(40) + 'b', 'a'.repeat(8000), 'StringNotLike')).toBe('allow');
    expect(Date.now() - t).toBeLessThan(2000);
  });

  it('a pathological Resource pattern answers at once', () => {
    const p = parseKeyPolicy(JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*a'.repeat(60) + 'b' }] }));
    const t = Date.now();
    expect(evaluateKeyPolicy(p, ctx('kms:Decrypt', {}, 'a'.repeat(2000)))).toBe('implicit-deny');
    expect(Date.now() - t).toBeLessThan(2000);
  });

  it('keeps IAM semantics: * any run, ? one character, everything else literal', () => {
    expect(decide('abc', 'abc')).toBe('allow');
    expect(decide('abc', 'abcd')).toBe('implicit-deny');
    expect(decide('a*c', 'ac')).toBe('allow');
    expect(decide('a*c', 'a\nb\nc')).toBe('allow');
    expect(decide('a?c', 'abc')).toBe('allow');
    expect(decide('a?c', 'ac')).toBe('implicit-deny');
    expect(decide('a.c', 'abc')).toBe('implicit-deny');
    expect(decide('a.c', 'a.c')).toBe('allow');
    expect(decide('(x)+[y]^$|\\', '(x)+[y]^$|\\')).toBe('allow');
    expect(decide('*', '')).toBe('allow');
    expect(decide('**?', '')).toBe('implicit-deny');
    expect(decide('ABC', 'abc')).toBe('implicit-deny');
    // Actions compare case-insensitively, as IAM does.
    const p = parseKeyPolicy(JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 'kms:DECR?PT', Resource: '*' }] }));
    expect(evaluateKeyPolicy(p, ctx('kms:Decrypt'))).toBe('allow');
    expect(evaluateKeyPolicy(p, ctx('kms:Encrypt'))).toBe('implicit-deny');
  });

  it('agrees with an anchored RegExp translation on small inputs', () => {
    const toRe = (p: string) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's');
    const alpha = fc.constantFrom('a', 'b', '*', '?', '.');
    fc.assert(
      fc.property(fc.array(alpha, { minLength: 1, maxLength: 8 }), fc.array(fc.constantFrom('a', 'b', '.'), { maxLength: 10 }), (pa, ta) => {
        const pattern = pa.join('');
        const text = ta.join('');
        expect(decide(pattern, text) === 'allow').toBe(toRe(pattern).test(text));
      }),
      { numRuns: 300 },
    );
  });

  it('many conditions against a wide encryption context cost one pass over the context', () => {
    const cond: Record<string, string> = {};
    for (let i = 0; i < 28; i++) cond[`k${i}`] = 'v';
    // StringNotEquals on absent keys holds, so every condition is evaluated (~2400 of them).
    const st = { Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', Condition: { StringNotEquals: cond } };
    const p = parseKeyPolicy(JSON.stringify({ Statement: Array.from({ length: 85 }, () => st) }));
    const keys: Record<string, string[]> = {};
    for (let i = 0; i < 8000; i++) keys[`kms:EncryptionContext:${i.toString(36)}`] = ['v'];
    const t = Date.now();
    expect(evaluateKeyPolicy(p, ctx('kms:Decrypt', keys))).toBe('allow');
    // A scan per condition took ~0.8 s here; one pass takes a few ms.
    expect(Date.now() - t).toBeLessThan(300);
  });

  it('condition key names still match case-insensitively, first spelling winning', () => {
    const p = parseKeyPolicy(
      JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', Condition: { StringEquals: { 'KMS:EncryptionContext:Dept': 'a' } } }] }),
    );
    expect(evaluateKeyPolicy(p, ctx('kms:Decrypt', { 'kms:encryptioncontext:dept': ['a'] }))).toBe('allow');
    expect(evaluateKeyPolicy(p, ctx('kms:Decrypt', { 'kms:EncryptionContext:Dept': ['a'], 'kms:encryptioncontext:dept': ['b'] }))).toBe('allow');
    expect(evaluateKeyPolicy(p, ctx('kms:Decrypt', { 'kms:EncryptionContext:Dept': ['b'] }))).toBe('implicit-deny');
  });
});
