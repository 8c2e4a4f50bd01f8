import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
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

const ADMIN = `arn:aws:iam::${ACCOUNT}:role/key-admin`;
const OWNER = `arn:aws:iam::${ACCOUNT}:role/data-owner`;
const PARENT = `arn:aws:iam::${ACCOUNT}:role/enclave-parent`;
const OWNERS = ['--key-admin', ADMIN, '--data-owner', OWNER];
const ALL = [...OWNERS, '--role', PARENT];

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

  it('negated operators under ForAnyValue / ForAllValues follow IAM, missing keys included', () => {
    const K = 'kms:EncryptionContextKeys';
    const allowed = ['dataset', 'key-ref'];
    const cases: [string, string[] | undefined, boolean][] = [
      // [operator, request values (undefined = key absent), condition holds?]
      ['ForAnyValue:StringNotEquals', ['dataset', 'evil'], true], // one value matches none of the policy's
      ['ForAnyValue:StringNotEquals', ['dataset', 'key-ref'], false],
      ['ForAnyValue:StringNotEquals', ['evil'], true],
      ['ForAnyValue:StringNotEquals', undefined, false], // ForAnyValue: absent key is false
      ['ForAnyValue:StringNotEquals', [], false],
      ['ForAnyValue:StringNotEqualsIgnoreCase', ['DATASET', 'Key-Ref'], false],
      ['ForAnyValue:StringNotEqualsIgnoreCase', ['DATASET', 'evil'], true],
      ['ForAnyValue:StringNotLike', ['dataset', 'evil'], true],
      ['ForAnyValue:StringNotLike', undefined, false],
      ['ForAllValues:StringNotEquals', ['evil', 'worse'], true], // every value matches none
      ['ForAllValues:StringNotEquals', ['dataset', 'evil'], false],
      ['ForAllValues:StringNotEquals', undefined, true], // ForAllValues: absent key is true
      ['ForAllValues:StringNotEqualsIgnoreCase', ['DATASET'], false],
      ['ForAllValues:StringNotLike', ['evil'], true],
      ['ForAnyValue:StringEquals', ['evil', 'dataset'], true],
      ['ForAnyValue:StringEquals', undefined, false],
      ['ForAnyValue:StringLike', ['evil'], false],
      ['ForAllValues:StringEquals', ['dataset', 'evil'], false],
      ['ForAllValues:StringEquals', undefined, true],
      ['ForAllValues:StringEqualsIgnoreCase', ['DATASET', 'KEY-REF'], true],
      // Plain operators: absent key makes positive ones false and negated ones true.
      ['StringEquals', undefined, false],
      ['StringLike', undefined, false],
      ['StringEqualsIgnoreCase', undefined, false],
      ['StringNotEquals', undefined, true],
      ['StringNotEqualsIgnoreCase', undefined, true],
      ['StringNotLike', undefined, true],
      ['StringNotEquals', ['dataset'], false],
      ['StringNotEquals', ['evil'], true],
      ['StringNotEqualsIgnoreCase', ['DATASET'], false],
      ['StringNotLike', ['data*'], true],
    ];
    for (const [op, values, holds] of cases) {
      // As an Allow (holds -> allow) and as a Deny over an Allow-all (holds -> explicit deny).
      const a = policy(allow({ Condition: { [op]: { [K]: allowed } } }));
      const d = policy(allow(), { Effect: 'Deny', Principal: '*', Action: '*', Resource: '*', Condition: { [op]: { [K]: allowed } } });
      const keys: Record<string, string[]> = values === undefined ? {} : { [K]: values };
      const label = `${op} ${JSON.stringify(values)}`;
      expect(evaluateKeyPolicy(a, ctx('kms:Decrypt', keys)), label).toBe(holds ? 'allow' : 'implicit-deny');
      expect(evaluateKeyPolicy(d, ctx('kms:Decrypt', keys)), label).toBe(holds ? 'explicit-deny' : 'allow');
    }
  });

  it('principals: an account (id or root) matches every principal of it; a role or user only itself (and its sessions) when the caller is known', () => {
    const role = `arn:aws:iam::${ACCOUNT}:role/path/enclave-parent`;
    const p = policy(allow({ Principal: { AWS: role } }));
    const as = (principal: string | undefined, account = ACCOUNT): RequestContext => ({ ...ctx('kms:Decrypt', {}, account), ...(principal ? { principal } : {}) });
    expect(evaluateKeyPolicy(p, as(role))).toBe('allow');
    expect(evaluateKeyPolicy(p, as(`arn:aws:sts::${ACCOUNT}:assumed-role/enclave-parent/i-0abc`))).toBe('allow');
    expect(evaluateKeyPolicy(p, as(`arn:aws:sts::${ACCOUNT}:assumed-role/other/i-0abc`))).toBe('implicit-deny');
    expect(evaluateKeyPolicy(p, as(`arn:aws:iam::${ACCOUNT}:root`))).toBe('implicit-deny');
    expect(evaluateKeyPolicy(p, as(`arn:aws:iam::${ACCOUNT}:user/enclave-parent`))).toBe('implicit-deny');
    // No caller identity (the simulator): any principal of the account.
    expect(evaluateKeyPolicy(p, as(undefined))).toBe('allow');
    expect(evaluateKeyPolicy(p, as(undefined, '444455556666'))).toBe('implicit-deny');
    for (const whole of [ACCOUNT, `arn:aws:iam::${ACCOUNT}:root`]) {
      const q = policy(allow({ Principal: { AWS: whole } }));
      expect(evaluateKeyPolicy(q, as(role)), whole).toBe('allow');
      expect(evaluateKeyPolicy(q, as(`arn:aws:iam::444455556666:role/x`, '444455556666')), whole).toBe('implicit-deny');
    }
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
    kms = kmsClient(sim);
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
      ['--pcr', `0=${Buffer.from(good).toString('hex')}`, '--pcr', `8=${'00'.repeat(48)}`, '--image-sha384', Buffer.from(good).toString('hex').toUpperCase(), '--account', ACCOUNT, '--role', `arn:aws:iam::${ACCOUNT}:role/enclave-parent`, ...OWNERS],
      io,
    );
    expect(code).toBe(0);
    const text = out().trim();
    const doc = JSON.parse(text);
    expect(doc.Version).toBe('2012-10-17');
    const enclaveStmt = doc.Statement.find((s: { Sid: string }) => s.Sid === 'EnclaveImageDecrypts');
    expect(enclaveStmt.Principal.AWS).toBe(`arn:aws:iam::${ACCOUNT}:role/enclave-parent`);
    expect(enclaveStmt.Action).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    const byId = (sid: string) => doc.Statement.find((s: { Sid: string }) => s.Sid === sid);
    expect(byId('KeyAdministration').Principal.AWS).toBe(ADMIN);
    expect(byId('KeyAdministration').Action.filter((a: string) => /encrypt|decrypt|generate|grant|^kms:\*$|^\*$/i.test(a))).toEqual([]);
    expect(byId('DataOwnerCreatesDataKeys')).toMatchObject({
      Principal: { AWS: OWNER },
      Action: ['kms:GenerateDataKey', 'kms:Encrypt', 'kms:DescribeKey'],
      Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } },
    });
    expect(byId('DenyDecryptWithoutAttestation')).toMatchObject({ Effect: 'Deny', Principal: '*', Action: ['kms:Decrypt', 'kms:ReEncrypt*'] });
    expect(text).not.toContain(':root');
    expect(enclaveStmt.Condition.StringEqualsIgnoreCase).toEqual({
      'kms:RecipientAttestation:ImageSha384': Buffer.from(good).toString('hex'),
      'kms:RecipientAttestation:PCR0': Buffer.from(good).toString('hex'),
      'kms:RecipientAttestation:PCR8': '00'.repeat(48),
    });

    // Each principal signs as itself (role sessions), and the simulator evaluates the policy for it.
    const as = async (arn: string) => kmsClient(sim, await sim.addPrincipal({ principal: arn, session: true }));
    const [admin, owner, parent] = [await as(ADMIN), await as(OWNER), await as(`arn:aws:iam::${ACCOUNT}:role/enclave-parent`)];
    try {
      const key = (await admin.send(new CreateKeyCommand({ Policy: text }))).KeyMetadata!.KeyId!;
      expect((await admin.send(new GetKeyPolicyCommand({ KeyId: key }))).Policy).toBe(text);
      // The account root is named nowhere: not even it may read the policy.
      await expect(kms.send(new GetKeyPolicyCommand({ KeyId: key }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
      const blob = (await owner.send(new EncryptCommand({ KeyId: key, Plaintext: new TextEncoder().encode('k') }))).CiphertextBlob!;
      const enclave = await simEnclave();
      const right = await enclave.document(new Map([[0, good], [8, new Uint8Array(48)]]));
      const d = await parent.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: right } }));
      expect(new TextDecoder().decode(openCiphertextForRecipient(d.CiphertextForRecipient!, enclave.privateKey))).toBe('k');
      // The right document, but signed by the data owner or the admin: not theirs to decrypt.
      for (const c of [owner, admin]) await expect(c.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: { AttestationDocument: right } }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
      const wrongPcr8 = await enclave.document(new Map([[0, good], [8, pcr(1)]]));
      await expect(parent.send(new DecryptCommand({ CiphertextBlob: blob, Recipient: { AttestationDocument: wrongPcr8 } }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
      await expect(parent.send(new GenerateDataKeyCommand({ KeyId: key, KeySpec: 'AES_256', Recipient: { AttestationDocument: wrongPcr8 } }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
      await expect(parent.send(new DecryptCommand({ CiphertextBlob: blob }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
    } finally {
      for (const c of [admin, owner, parent]) c.destroy();
    }
  });

  it('several values of one PCR (a rolling deploy) become a list: either image decrypts', async () => {
    const [a, b] = [pcr(0x21), pcr(0x22)];
    const h = (x: Uint8Array) => Buffer.from(x).toString('hex');
    const { io, out } = cliIO();
    expect(await policyCli(['--pcr', `0=${h(a)}`, '--pcr', `0=${h(b)}`, '--pcr', `0=${h(a).toUpperCase()}`, '--role', PARENT, ...OWNERS], io)).toBe(0);
    const text = out().trim();
    const stmt = JSON.parse(text).Statement.find((s: { Sid: string }) => s.Sid === 'EnclaveImageDecrypts');
    expect(stmt.Condition.StringEqualsIgnoreCase).toEqual({ 'kms:RecipientAttestation:PCR0': [h(a), h(b)] });
    const p = parseKeyPolicy(text);
    for (const v of [a, b]) expect(evaluateKeyPolicy(p, ctx('kms:Decrypt', { 'kms:RecipientAttestation:ImageSha384': [h(v)], 'kms:RecipientAttestation:PCR0': [h(v)] }))).toBe('allow');
    expect(evaluateKeyPolicy(p, ctx('kms:Decrypt', { 'kms:RecipientAttestation:ImageSha384': [h(pcr(0x23))], 'kms:RecipientAttestation:PCR0': [h(pcr(0x23))] }))).toBe('implicit-deny');
    // The builder takes the same lists.
    expect(JSON.parse(buildEnclaveKeyPolicy({ pcrs: new Map([[0, [a, b]]]), imageSha384: [b, a], keyAdmin: ADMIN, dataOwner: OWNER, role: PARENT })).Statement[2].Condition.StringEqualsIgnoreCase).toEqual({
      'kms:RecipientAttestation:ImageSha384': [h(b), h(a)],
      'kms:RecipientAttestation:PCR0': [h(a), h(b)],
    });
  });

  it('buildEnclaveKeyPolicy refuses missing, equal or whole-account principals (TypeError)', () => {
    const pcrs = new Map([[0, pcr(1)]]);
    const ok = { pcrs, keyAdmin: ADMIN, dataOwner: OWNER, role: PARENT };
    expect(() => buildEnclaveKeyPolicy(ok)).not.toThrow();
    // The role may live in another account (the host operator's); admin and owner must be in --account.
    expect(() => buildEnclaveKeyPolicy({ ...ok, role: 'arn:aws:iam::444455556666:role/parent', account: ACCOUNT })).not.toThrow();
    const bad: Record<string, unknown>[] = [
      { keyAdmin: undefined },
      { dataOwner: undefined },
      { role: undefined },
      { dataOwner: ADMIN },
      { role: OWNER },
      { role: ADMIN },
      { keyAdmin: `arn:aws:iam::${ACCOUNT}:root` },
      { dataOwner: ACCOUNT },
      { role: '*' },
      { dataOwner: `arn:aws:sts::${ACCOUNT}:assumed-role/x/y` },
      { keyAdmin: 'arn:aws:iam::444455556666:role/admin', account: ACCOUNT },
      { account: '12' },
    ];
    for (const b of bad) expect(() => buildEnclaveKeyPolicy({ ...ok, ...b } as typeof ok), JSON.stringify(b)).toThrow(TypeError);
  });

  it('the README\'s concrete `enclavekit policy` example runs (placeholders filled in) and prints a policy', async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### Key policies and `enclavekit policy`'));
    const block = section.slice(section.indexOf('```sh') + 5, section.indexOf('```', section.indexOf('```sh') + 5));
    const commands = block
      .replace(/\\\n\s*/g, ' ')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('enclavekit policy') && !l.includes('['));
    expect(commands.length).toBeGreaterThan(0);
    let n = 0;
    for (const c of commands) {
      const args = c.replace(/<[^>]*>/g, () => (++n).toString(16).padStart(2, '0').repeat(48)).split(/\s+/).slice(2);
      const { io, out, err } = cliIO();
      expect(await main(['policy', ...args], io), `${c}\n${err()}`).toBe(0);
      expect(JSON.parse(out()).Statement).toHaveLength(4);
    }
  });

  it('bad arguments are usage errors (exit 2)', async () => {
    const bad = [
      [],
      ['--pcr', '0=abcd', ...ALL],
      ['--pcr', `32=${'00'.repeat(48)}`, ...ALL],
      ['--pcr', `0=${'00'.repeat(48)}`],
      ['--pcr', `0=${'00'.repeat(48)}`, '--account', ACCOUNT],
      ['--pcr', `0=${'00'.repeat(48)}`, '--account', '12', ...ALL],
      ['--pcr', `0=${'00'.repeat(48)}`, '--role', 'not-an-arn', ...OWNERS],
      ['--pcr', `0=${'00'.repeat(48)}`, '--image-sha384', '11'.repeat(48), ...ALL],
      ['--pcr', `0=${'00'.repeat(48)}`, '--role', PARENT, '--key-admin', ADMIN],
      ['--pcr', `0=${'00'.repeat(48)}`, '--role', PARENT, '--data-owner', OWNER],
      ['--pcr', `0=${'00'.repeat(48)}`, '--key-admin', ADMIN, '--data-owner', OWNER],
      ['--pcr', `0=${'00'.repeat(48)}`, '--role', PARENT, '--key-admin', ADMIN, '--data-owner', ADMIN],
      ['--pcr', `0=${'00'.repeat(48)}`, '--role', PARENT, '--key-admin', `arn:aws:iam::${ACCOUNT}:root`, '--data-owner', OWNER],
      ['--bogus'],
    ];
    for (const args of bad) {
      const { io, err } = cliIO();
      expect(await main(['policy', ...args], io), args.join(' ')).toBe(2);
      expect(err()).toMatch(/^enclavekit policy: /);
    }
  });
});
