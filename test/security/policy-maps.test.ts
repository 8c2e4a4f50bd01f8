// A policy is read with Object.keys/entries. Given a Map (natural: VerifiedNitroDocument.pcrs and
// the host's Expectations.pcrs are Maps), those see nothing, so `{ pcrs: new Map(...) }` checked no
// PCR at all and any image verified: a policy that failed open on a plain JS call.
import { describe, expect, it } from 'vitest';
import { verifyNitro } from '../../attestation/index.js';
import { compileNitroPolicy, type NitroPolicy } from '../../attestation/nitro/policy.js';
import { parseSnpPolicy } from '../../attestation/sevsnp/policy.js';
import { AttestationError } from '../../attestation/errors.js';
import { loadDoc } from '../nitro/helpers.js';

const NOW = new Date('2022-10-13T09:00:00Z');
const WRONG = 'ab'.repeat(48);

function policyCode(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationError);
    return (e as AttestationError).code;
  }
  return undefined;
}

describe('policies given as Maps fail closed', () => {
  it('Nitro: pcrs as a Map is ERR_POLICY_INVALID, not an unchecked document', () => {
    const policy = { pcrs: new Map([[0, WRONG]]) } as unknown as NitroPolicy;
    expect(policyCode(() => verifyNitro(loadDoc('evervault-1.cose'), { now: NOW, policy }))).toBe('ERR_POLICY_INVALID');
    expect(policyCode(() => compileNitroPolicy(policy))).toBe('ERR_POLICY_INVALID');
  });

  it('Nitro: the policy itself as a Map, or pcrs as an array, is ERR_POLICY_INVALID', () => {
    expect(policyCode(() => compileNitroPolicy(new Map([['pcrs', { 0: WRONG }]]) as unknown as NitroPolicy))).toBe('ERR_POLICY_INVALID');
    expect(policyCode(() => compileNitroPolicy({ pcrs: [WRONG] } as unknown as NitroPolicy))).toBe('ERR_POLICY_INVALID');
  });

  it('Nitro: plain objects (literal, JSON, null prototype, frozen) still work', () => {
    const wrongPcr0 = (p: NitroPolicy) => policyCode(() => verifyNitro(loadDoc('evervault-1.cose'), { now: NOW, policy: p }));
    expect(wrongPcr0({ pcrs: { 0: WRONG } })).toBe('ERR_ATTESTATION_POLICY');
    expect(wrongPcr0(JSON.parse(`{"pcrs":{"PCR0":"${WRONG}"}}`) as NitroPolicy)).toBe('ERR_ATTESTATION_POLICY');
    expect(wrongPcr0(Object.freeze({ pcrs: Object.assign(Object.create(null), { 0: WRONG }) }))).toBe('ERR_ATTESTATION_POLICY');
  });

  it('SEV-SNP: a Map anywhere in the policy is ERR_POLICY_INVALID', () => {
    expect(policyCode(() => parseSnpPolicy(new Map([['measurement', WRONG]])))).toBe('ERR_POLICY_INVALID');
    expect(policyCode(() => parseSnpPolicy({ minTcb: new Map([['snp', 99]]) }))).toBe('ERR_POLICY_INVALID');
    expect(policyCode(() => parseSnpPolicy({ guestPolicy: new Map([['allowDebug', false]]) }))).toBe('ERR_POLICY_INVALID');
    expect(policyCode(() => parseSnpPolicy({ minTcb: { snp: 1 }, guestPolicy: { allowDebug: false } }))).toBeUndefined();
    expect(policyCode(() => parseSnpPolicy(undefined))).toBeUndefined();
  });
});
