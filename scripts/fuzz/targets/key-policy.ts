/**
 * AWS KMS key policies (host/key-policy.ts parseKeyPolicy, evaluateKeyPolicy): the strict grammar,
 * then an evaluation against requests with and without attestation values and encryption context.
 */
import { buildEnclaveKeyPolicy, defaultKeyPolicy, evaluateKeyPolicy, parseKeyPolicy, type RequestContext } from '../../../host/key-policy.js';
import { utf8 } from '../seeds.js';
import type { FuzzTarget } from '../types.js';

const text = new TextDecoder('utf-8', { fatal: false });
const hex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
const PCR0 = 'ab'.repeat(48);
const ARN = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const CONTEXTS: RequestContext[] = [
  { action: 'kms:Decrypt', resource: ARN, account: '111122223333', keys: new Map([['kms:RecipientAttestation:ImageSha384', [PCR0]], ['kms:RecipientAttestation:PCR0', [PCR0]], ['kms:EncryptionContextKeys', ['enclavekit:dataset', 'enclavekit:key-ref']], ['kms:EncryptionContext:enclavekit:dataset', ['ds']]]) },
  { action: 'kms:GenerateDataKey', resource: ARN, account: '111122223333', principal: 'arn:aws:sts::111122223333:assumed-role/enclave-parent/i-0abc', keys: new Map() },
  { action: 'kms:PutKeyPolicy', resource: ARN, account: '444455556666', principal: 'arn:aws:iam::444455556666:role/kms-admin', keys: new Map([['KMS:EncryptionContextKeys', ['a', 'b', 'c']]]) },
];

const target: FuzzTarget = {
  name: 'key-policy',
  description: 'parseKeyPolicy (strict AWS grammar) and evaluateKeyPolicy over three request contexts',
  covers: ['host/key-policy.ts'],
  format: 'json',
  maxLen: 32 * 1024 + 16,
  dict: ['Version', '2012-10-17', 'Id', 'Statement', 'Sid', 'Effect', 'Allow', 'Deny', 'Principal', 'AWS', 'Action', 'Resource', 'Condition', 'kms:*', 'kms:Decrypt', 'kms:Gen*', '*', '?',
    'StringEquals', 'StringNotEquals', 'StringEqualsIgnoreCase', 'StringNotEqualsIgnoreCase', 'StringLike', 'StringNotLike', 'Null', 'ForAnyValue:', 'ForAllValues:', 'kms:RecipientAttestation:ImageSha384', 'kms:RecipientAttestation:PCR0', 'kms:EncryptionContextKeys',
    'arn:aws:iam::111122223333:root', 'arn:aws:iam::111122223333:role/enclave-parent', '111122223333'],
  seeds: () => [
    utf8(defaultKeyPolicy('111122223333')),
    utf8(buildEnclaveKeyPolicy({ pcrs: new Map<number, Uint8Array | Uint8Array[]>([[0, [hex(PCR0), new Uint8Array(48).fill(0xcd)]], [8, new Uint8Array(48).fill(0xef)]]), imageSha384: [hex(PCR0)], keyAdmin: 'arn:aws:iam::111122223333:role/kms-admin', dataOwner: 'arn:aws:iam::111122223333:role/data-owner', role: 'arn:aws:iam::444455556666:role/enclave-parent', account: '111122223333' })),
    utf8(JSON.stringify({ Version: '2012-10-17', Statement: [
      { Sid: 'a', Effect: 'Deny', Principal: '*', Action: ['kms:Decrypt', 'kms:ReEncrypt*'], Resource: '*', Condition: { 'ForAnyValue:StringNotEquals': { 'kms:EncryptionContextKeys': ['enclavekit:dataset', 'enclavekit:key-ref'] }, Null: { 'kms:RecipientAttestation:ImageSha384': 'false' } } },
      { Effect: 'Allow', Principal: { AWS: ['111122223333', 'arn:aws:iam::111122223333:user/u1'] }, Action: 'kms:*', Condition: { 'ForAllValues:StringLike': { 'kms:EncryptionContext:*': ['a*b?c'] }, StringEqualsIgnoreCase: { 'kms:RecipientAttestation:PCR0': PCR0.toUpperCase() } } },
    ] })),
  ],
  run(input) {
    const p = parseKeyPolicy(text.decode(input));
    for (const c of CONTEXTS) evaluateKeyPolicy(p, c);
  },
};
export default target;
