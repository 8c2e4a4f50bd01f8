import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, GenerateDataKeyCommand, GetKeyPolicyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { buildEnclaveKeyPolicy, evaluateKeyPolicy, parseKeyPolicy, type RequestContext } from '../../host/key-policy.js';
import { run as policyCli } from '../../host/cli/policy.js';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';
import { startKmsSimulator, type KmsSimulator } from '../../host/kms-sim/server.js';
import { openCiphertextForRecipient } from '../../enclave/cms.js';
import { ToolkitError } from '../../attestation/errors.js';
import { NOW, kmsClient, pcr, simEnclave, tempDir } from './helpers.js';

const ACCOUNT = '111122223333';
const ARN = `arn:aws:kms:us-east-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;

function ctx(action: string, keys: Record<string, string[]> = {}, account = ACCOUNT): RequestContext {
  return { action, resource: ARN, account, keys: new Map(Object.entries(keys)) };
}

const policy = (...Statement: unknown[]) => parseKeyPolicy(JSON.stringify({ Version: '2012-10-17', Statement }));
const allow = (extra: object = {}) => ({ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', ...extra });

function cliIO(): { io: CliIO; out: () => string; err: () => string } {
  const o = new PassThrough();
  const e = new PassThrough();
  let out = '';
  let err = '';
  o.on('data', (c: Buffer) => (out += c.toString()));
  e.on('data', (c: Buffer) => (err += c.toString()));
  return { io: { stdout: o, stderr: e, stdin: new PassThrough(), env: {}, now: () => NOW }, out: () => out, err: () => err };
}

describe('key policy evaluation', () => {
  it('no statement applies -> implicit deny; Deny wins over Allow', () => {
    expect(evaluateKeyPolicy(policy(allow({ Action: 'kms:Encrypt' })), ctx('kms:Decrypt'))).toBe('implicit-deny');
    expect(evaluateKeyPolicy(policy(allow(), { Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*' }), ctx('kms:Decrypt'))).toBe('explicit-deny');
    expect(evaluateKeyPolicy(policy(allow()), ctx('kms:Decrypt'))).toBe('allow');
  });

  it('actions with wildcards, case-insensitive; principals by account', () => {
    const p = policy(allow({ Action: ['kms:Generate*', 'kms:describekey'] }));
    expect(evaluateKeyPolicy(p, ctx('kms:GenerateDataKeyWithoutPlaintext'))).toBe('allow');
    expect(evaluateKeyPolicy(p, ctx('kms:DescribeKey'))).toBe('allow');
    expect(evaluateKeyPolicy(p, ctx('kms:Decrypt'))).toBe('implicit-deny');
    const q = policy(allow({ Principal: { AWS: ['arn:aws:iam::444455556666:role/x'] } }));
    expect(evaluateKeyPolicy(q, ctx('kms:Decrypt'))).toBe('implicit-deny');
    expect(evaluateKeyPolicy(q, ctx('kms:Decrypt', {}, '444455556666'))).toBe('allow');
    const r = policy(allow({ Resource: 'arn:aws:kms:us-east-1:111122223333:key/other' }));
    expect(evaluateKeyPolicy(r, ctx('kms:Decrypt'))).toBe('implicit-deny');
  });

  it('StringEquals / IgnoreCase / Like over attestation and context keys; missing keys', () => {
    const h = 'ab'.repeat(48);
    const p = policy(allow({ Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': h.toUpperCase() } } }));
    expect(evaluateKeyPolicy(p, ctx('kms:Decrypt', { 'kms:RecipientAttestation:ImageSha384': [h] }))).toBe('allow');
    expect(evaluateKeyPolicy(p, ctx('kms:Decrypt', { 'kms:RecipientAttestation:ImageSha384': ['cd'.repeat(48)] }))).toBe('implicit-deny');
    expect(evaluateKeyPolicy(p, ctx('kms:Decrypt'))).toBe('implicit-deny');
    const exact = policy(allow({ Condition: { StringEquals: { 'kms:RecipientAttestation:PCR0': h.toUpperCase() } } }));
    expect(evaluateKeyPolicy(exact, ctx('kms:Decrypt', { 'kms:RecipientAttestation:PCR0': [h] }))).toBe('implicit-deny');
    const like = policy(allow({ Condition: { StringLike: { 'kms:EncryptionContext:dataset': ['sales-*', 'x?'] } } }));
    expect(evaluateKeyPolicy(like, ctx('kms:Decrypt', { 'kms:EncryptionContext:dataset': ['sales-2026'] }))).toBe('allow');
    expect(evaluateKeyPolicy(like, ctx('kms:Decrypt', { 'kms:EncryptionContext:dataset': ['xy'] }))).toBe('allow');
    expect(evaluateKeyPolicy(like, ctx('kms:Decrypt', { 'kms:EncryptionContext:dataset': ['hr'] }))).toBe('implicit-deny');
    // Several keys AND, several values OR.
    const and = policy(allow({ Condition: { StringEquals: { 'kms:RecipientAttestation:PCR0': ['a', 'b'], 'kms:RecipientAttestation:PCR1': 'c' } } }));
    expect(evaluateKeyPolicy(and, ctx('kms:Decrypt', { 'kms:RecipientAttestation:PCR0': ['b'], 'kms:RecipientAttestation:PCR1': ['c'] }))).toBe('allow');
    expect(evaluateKeyPolicy(and, ctx('kms:Decrypt', { 'kms:RecipientAttestation:PCR0': ['b'] }))).toBe('implicit-deny');
  });

  it('Null, negated operators on missing keys, ForAnyValue / ForAllValues', () => {
    const deny = policy(allow(), { Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*', Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } } });
    expect(evaluateKeyPolicy(deny, ctx('kms:Decrypt'))).toBe('explicit-deny');
    expect(evaluateKeyPolicy(deny, ctx('kms:Decrypt', { 'kms:RecipientAttestation:ImageSha384': ['00'] }))).toBe('allow');
    const notEq = policy(allow(), { Effect: 'Deny', Principal: '*', Action: '*', Resource: '*', Condition: { StringNotEquals: { 'kms:RecipientAttestation:PCR0': 'aa' } } });
    expect(evaluateKeyPolicy(notEq, ctx('kms:Decrypt'))).toBe('explicit-deny');
    expect(evaluateKeyPolicy(notEq, ctx('kms:Decrypt', { 'kms:RecipientAttestation:PCR0': ['aa'] }))).toBe('allow');
    const any = policy(allow({ Condition: { 'ForAnyValue:StringEquals': { 'kms:EncryptionContextKeys': ['dataset', 'tenant'] } } }));
    expect(evaluateKeyPolicy(any, ctx('kms:Decrypt', { 'kms:EncryptionContextKeys': ['other', 'tenant'] }))).toBe('allow');
    expect(evaluateKeyPolicy(any, ctx('kms:Decrypt', { 'kms:EncryptionContextKeys': ['other'] }))).toBe('implicit-deny');
    const all = policy(allow({ Condition: { 'ForAllValues:StringLike': { 'kms:EncryptionContextKeys': ['data*'] } } }));
    expect(evaluateKeyPolicy(all, ctx('kms:Decrypt', { 'kms:EncryptionContextKeys': ['dataset', 'data-owner'] }))).toBe('allow');
    expect(evaluateKeyPolicy(all, ctx('kms:Decrypt', { 'kms:EncryptionContextKeys': ['dataset', 'tenant'] }))).toBe('implicit-deny');
  });

  it('malformed policies are refused with ERR_POLICY_INVALID and a reason', () => {
    const cases: [string, string][] = [
      ['not json', 'json'],
      ['[]', 'type'],
      ['{"Statement":[]}', 'statement'],
      [JSON.stringify({ Statement: { Effect: 'Maybe', Principal: '*', Action: 'kms:*' } }), 'effect'],
      [JSON.stringify({ Statement: { Effect: 'Allow', Action: 'kms:*' } }), 'principal'],
      [JSON.stringify({ Statement: { Effect: 'Allow', Principal: { Service: 'x' }, Action: 'kms:*' } }), 'principal'],
      [JSON.stringify({ Statement: { Effect: 'Allow', Principal: '*', Action: 's3:GetObject' } }), 'action'],
      [JSON.stringify({ Statement: { Effect: 'Allow', Principal: '*', NotAction: 'kms:*' } }), 'statement_element'],
      [JSON.stringify({ Statement: { Effect: 'Allow', Principal: '*', Action: 'kms:*', Condition: { NumericEquals: { a: '1' } } } }), 'condition_operator'],
      [JSON.stringify({ Statement: { Effect: 'Allow', Principal: '*', Action: 'kms:*', Condition: { 'ForAnyValue:Null': { a: 'true' } } } }), 'condition_operator'],
      [JSON.stringify({ Statement: { Effect: 'Allow', Principal: '*', Action: 'kms:*', Condition: { StringEquals: { a: 5 } } } }), 'type'],
      ['{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*"},"Extra":1}', 'element'],
      ['x'.repeat(40000), 'size'],
    ];
    for (const [text, reason] of cases) {
      let err: unknown;
      try {
        parseKeyPolicy(text);
      } catch (e) {
        err = e;
      }
      expect(err, text.slice(0, 60)).toBeInstanceOf(ToolkitError);
      expect({ code: (err as ToolkitError).code, reason: (err as ToolkitError).reason }).toEqual({ code: 'ERR_POLICY_INVALID', reason });
    }
  });
});

describe('`enclavekit policy`', () => {
  let tmp: ReturnType<typeof tempDir>;
  let sim: KmsSimulator;
  let kms: KMSClient;

  beforeAll(async () => {
    tmp = tempDir();
    const enclave = await simEnclave();
    sim = await startKmsSimulator({ stateDir: tmp.dir, now: () => NOW, trustSimulator: true, simulatorRoots: [enclave.ca.rootDer] });
    kms = kmsClient(sim.url);
  });
  afterAll(async () => {
    kms?.destroy();
    await sim?.close();
    tmp?.cleanup();
  });

  it('prints a policy the simulator accepts and enforces', async () => {
    const good = pcr(0x11);
    const { io, out } = cliIO();
    const code = await policyCli(
      ['--pcr', `0=${Buffer.from(good).toString('hex')}`, '--pcr', `8=${'00'.repeat(48)}`, '--image-sha384', Buffer.from(good).toString('hex').toUpperCase(), '--account', ACCOUNT, '--role', `arn:aws:iam::${ACCOUNT}:role/enclave-parent`],
      io,
    );
    expect(code).toBe(0);
    const text = out().trim();
    const doc = JSON.parse(text);
    expect(doc.Version).toBe('2012-10-17');
    const enclaveStmt = doc.Statement.find((s: { Sid: string }) => s.Sid === 'EnclaveImageDecrypts');
    expect(enclaveStmt.Principal.AWS).toBe(`arn:aws:iam::${ACCOUNT}:role/enclave-parent`);
    expect(enclaveStmt.Condition.StringEqualsIgnoreCase).toEqual({
      'kms:RecipientAttestation:ImageSha384': Buffer.from(good).toString('hex'),
      'kms:RecipientAttestation:PCR0': Buffer.from(good).toString('hex'),
      'kms:RecipientAttestation:PCR8': '00'.repeat(48),
    });

    const key = (await kms.send(new CreateKeyCommand({ Policy: text }))).KeyMetadata!.KeyId!;
    expect((await kms.send(new GetKeyPolicyCommand({ KeyId: key }))).Policy).toBe(text);
    const blob = (await kms.send(new EncryptCommand({ KeyId: key, Plaintext: new TextEncoder().encode('k') }))).CiphertextBlob!;
    const enclave = await simEnclave();
    const right = await enclave.document(new Map([[0, good], [8, new Uint8Array(48)]]));
    const d = await kms.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: right } }));
    expect(new TextDecoder().decode(openCiphertextForRecipient(d.CiphertextForRecipient!, enclave.privateKey))).toBe('k');
    const wrongPcr8 = await enclave.document(new Map([[0, good], [8, pcr(1)]]));
    await expect(kms.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: { AttestationDocument: wrongPcr8 } }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
    await expect(kms.send(new GenerateDataKeyCommand({ KeyId: key, KeySpec: 'AES_256', Recipient: { AttestationDocument: wrongPcr8 } }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
    await expect(kms.send(new DecryptCommand({ CiphertextBlob: blob }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
  });

  it('bad arguments are usage errors (exit 2)', async () => {
    const bad = [
      [],
      ['--pcr', '0=abcd', '--account', ACCOUNT],
      ['--pcr', `32=${'00'.repeat(48)}`, '--account', ACCOUNT],
      ['--pcr', `0=${'00'.repeat(48)}`],
      ['--pcr', `0=${'00'.repeat(48)}`, '--account', '12'],
      ['--pcr', `0=${'00'.repeat(48)}`, '--role', 'not-an-arn'],
      ['--pcr', `0=${'00'.repeat(48)}`, '--image-sha384', '11'.repeat(48), '--account', ACCOUNT],
      ['--bogus'],
    ];
    for (const args of bad) {
      const { io, err } = cliIO();
      expect(await main(['policy', ...args], io), args.join(' ')).toBe(2);
      expect(err()).toMatch(/^enclavekit policy: /);
    }
  });
});
