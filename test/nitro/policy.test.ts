/** Policy: fail closed, every violation at once, one negative test per rule. */
import { describe, it, expect, beforeAll } from 'vitest';
import { verifyNitro } from '../../attestation/index.js';
import { AttestationPolicyError } from '../../attestation/errors.js';
import { createNitroSimCa, issueNitroDocument, type NitroSimCa } from '../../attestation/sim/nitro.js';
import { checkNitroPolicy, compileNitroPolicy, type NitroPolicy } from '../../attestation/nitro/policy.js';
import { toHex } from '../../attestation/bytes.js';
import { attErr, loadDoc, pcr, PROD_PCRS } from './helpers.js';

const NOW = new Date('2026-03-01T12:00:00Z');
let ca: NitroSimCa;
let bytes: Uint8Array;
const nonce = Uint8Array.of(1, 2, 3);
const userData = Uint8Array.of(4, 5);
const publicKey = Uint8Array.of(6);

beforeAll(async () => {
  ca = await createNitroSimCa({ now: NOW });
  bytes = await issueNitroDocument(ca, { moduleId: 'i-0-enc0', timestamp: NOW, pcrs: PROD_PCRS(), nonce, userData, publicKey });
});

const verify = (policy: NitroPolicy, extra: { now?: Date; allowDebug?: boolean } = {}) =>
  verifyNitro(bytes, { now: extra.now ?? NOW, simulatorRoots: [ca.rootDer], policy, allowDebug: extra.allowDebug });

function violations(policy: NitroPolicy, now = NOW) {
  const e = attErr(() => verify(policy, { now }));
  expect(e).toBeInstanceOf(AttestationPolicyError);
  expect(e.code).toBe('ERR_ATTESTATION_POLICY');
  return (e as AttestationPolicyError).violations;
}

describe('Nitro policy', () => {
  it('a policy that matches passes (hex either case, bytes, PCRn keys, allowed lists)', () => {
    const r = verify({
      pcrs: { 0: toHex(pcr(1)).toUpperCase(), PCR1: [toHex(pcr(9)), pcr(2)], '2': pcr(3) },
      nonce: '010203',
      userData,
      publicKey: '0x06',
      maxAgeSeconds: 60,
    });
    expect(r.nonce).toEqual(nonce);
  });

  it('reports every violation at once with spec field names and hex values', () => {
    const v = violations({ pcrs: { 0: pcr(9), 4: [pcr(8), pcr(7)], 16: pcr(1) }, nonce: '00', userData: '00', publicKey: '00', maxAgeSeconds: 10 }, new Date(NOW.getTime() + 60_000));
    expect(v.map((x) => x.field)).toEqual(['PCR0', 'PCR4', 'PCR16', 'nonce', 'user_data', 'public_key', 'timestamp']);
    expect(v[0]).toEqual({ field: 'PCR0', expected: toHex(pcr(9)), actual: toHex(pcr(1)) });
    expect(v[1]!.expected).toBe(`${toHex(pcr(8))} | ${toHex(pcr(7))}`);
    expect(v[2]!.actual).toBe('(absent)');
  });

  it.each([
    ['PCR value', { pcrs: { 2: pcr(0) } }, 'PCR2'],
    ['PCR absent from the document', { pcrs: { 31: pcr(0) } }, 'PCR31'],
    ['nonce', { nonce: '0102' }, 'nonce'],
    ['user_data', { userData: '0405ff' }, 'user_data'],
    ['public_key', { publicKey: '07' }, 'public_key'],
  ] as const)('violation: %s', (_t, policy, field) => {
    expect(violations(policy as NitroPolicy).map((x) => x.field)).toEqual([field]);
  });

  it('maxAgeSeconds counts from now, and a document from the future is refused too', () => {
    expect(violations({ maxAgeSeconds: 5 }, new Date(NOW.getTime() + 6_000))[0]!.field).toBe('timestamp');
    expect(verify({ maxAgeSeconds: 5 }, { now: new Date(NOW.getTime() + 5_000) }).moduleId).toBe('i-0-enc0');
    // Before the leaf starts the chain fails first, so check the future rule on claims directly.
    const claims = { timestamp: NOW, pcrs: PROD_PCRS() };
    const e = attErr(() => checkNitroPolicy(claims, { maxAgeSeconds: 5 }, new Date(NOW.getTime() - 61_000), false)) as AttestationPolicyError;
    expect(e.violations[0]!.field).toBe('timestamp');
    expect(() => checkNitroPolicy(claims, { maxAgeSeconds: 5 }, new Date(NOW.getTime() - 59_000), false)).not.toThrow();
  });

  it('an expected nonce/user_data/public_key that the document lacks is a violation (fails closed)', () => {
    const claims = { timestamp: NOW, pcrs: PROD_PCRS() };
    const e = attErr(() => checkNitroPolicy(claims, { nonce: '00', userData: '', publicKey: '01' }, NOW, false)) as AttestationPolicyError;
    expect(e.violations.map((x) => [x.field, x.actual])).toEqual([['nonce', '(absent)'], ['user_data', '(absent)'], ['public_key', '(absent)']]);
  });

  it('debug-mode documents are rejected unless allowDebug, with or without a policy', async () => {
    const dbg = new Map([[0, pcr(0)], [1, pcr(0)], [2, pcr(0)], [4, pcr(4)]]);
    const d = await issueNitroDocument(ca, { moduleId: 'i-0-enc0', timestamp: NOW, pcrs: dbg });
    const e = attErr(() => verifyNitro(d, { now: NOW, simulatorRoots: [ca.rootDer] })) as AttestationPolicyError;
    expect(e.violations.map((x) => x.field)).toEqual(['debug_mode']);
    expect(verifyNitro(d, { now: NOW, simulatorRoots: [ca.rootDer], allowDebug: true }).pcrs.get(4)).toEqual(pcr(4));
    // The real debug document evervault-2 too.
    expect(attErr(() => verifyNitro(loadDoc('evervault-2.cose'), { now: new Date('2022-10-12T13:50:06Z') })).code).toBe('ERR_ATTESTATION_POLICY');
  });

  it.each([
    ['unknown key', { pcr: {} }],
    ['PCR index 32', { pcrs: { 32: pcr(0) } }],
    ['PCR key text', { pcrs: { foo: pcr(0) } }],
    ['PCR not hex', { pcrs: { 0: 'zz' } }],
    ['PCR wrong length', { pcrs: { 0: '00' } }],
    ['empty allowed list', { pcrs: { 0: [] } }],
    ['nonce not hex', { nonce: 'xyz' }],
    ['negative maxAge', { maxAgeSeconds: -1 }],
    ['maxAge not a number', { maxAgeSeconds: '5' }],
  ])('a malformed policy is ERR_POLICY_INVALID, never a skipped check: %s', (_t, policy) => {
    const e = attErr(() => compileNitroPolicy(policy as NitroPolicy));
    expect(e.code).toBe('ERR_POLICY_INVALID');
    expect(attErr(() => verify(policy as NitroPolicy)).code).toBe('ERR_POLICY_INVALID');
  });
});
