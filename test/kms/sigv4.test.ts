/**
 * The KMS simulator authenticates every request with AWS Signature Version 4 and answers as AWS does.
 * Requests are signed by the real @aws-sdk/client-kms (then one signed part is changed on the way out),
 * or by @smithy/signature-v4 for requests no SDK would send.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CreateKeyCommand, ListKeysCommand, type KMSClient } from '@aws-sdk/client-kms';
import { startKmsSimulator, type KmsSimulator } from '../../host/kms-sim/server.js';
import { formatAmzDate, parseAmzDate, SIGNATURE_MISMATCH } from '../../host/kms-sim/sigv4.js';
import type { SimCredentials } from '../../host/kms-sim/principals.js';
import { NOW, kmsClient, tempDir } from './helpers.js';
import { kmsRequest, sendRaw, signRaw, signedSend, tamperingClient, type Tamper } from './signing.js';

let tmp: ReturnType<typeof tempDir>;
let sim: KmsSimulator;
let root: SimCredentials;
let session: SimCredentials;
let user: SimCredentials;
const logs: string[] = [];
const clients: KMSClient[] = [];

/** The error an SDK call ends in: AWS's name and message. */
async function failure(p: Promise<unknown>): Promise<{ name: string; message: string; status?: number }> {
  try {
    await p;
  } catch (e) {
    const err = e as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: err.name, message: err.message, ...(err.$metadata?.httpStatusCode ? { status: err.$metadata.httpStatusCode } : {}) };
  }
  return { name: 'no error', message: '' };
}

function client(c: SimCredentials | { accessKeyId: string; secretAccessKey: string; sessionToken?: string }, now = NOW): KMSClient {
  const k = kmsClient(sim, c, now);
  clients.push(k);
  return k;
}

beforeAll(async () => {
  tmp = tempDir();
  sim = await startKmsSimulator({ stateDir: tmp.dir, now: () => NOW, log: (l) => logs.push(l) });
  root = sim.credentials;
  session = await sim.addPrincipal({ principal: 'arn:aws:iam::111122223333:role/enclave-parent', session: true, sessionName: 'i-0123456789abcdef0' });
  user = await sim.addPrincipal({ principal: 'arn:aws:iam::111122223333:user/alice' });
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  await sim?.close();
  tmp?.cleanup();
});

describe('SigV4: good signatures', () => {
  it('the real SDK signs with the root key, an IAM user key and a role session; each is accepted as itself', async () => {
    for (const c of [root, user, session]) expect((await client(c).send(new ListKeysCommand({}))).Keys).toBeInstanceOf(Array);
    expect(session.principal).toBe('arn:aws:sts::111122223333:assumed-role/enclave-parent/i-0123456789abcdef0');
    expect(session.accessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/);
    expect(user.accessKeyId).toMatch(/^AKIA[A-Z2-7]{16}$/);
    expect(logs).toContain(`ListKeys 200 ${session.principal}`);
    expect(logs).toContain('ListKeys 200 arn:aws:iam::111122223333:user/alice');
  });

  it('headers the client did not sign may be added or changed (user-agent, a proxy header)', async () => {
    const t = tamperingClient(sim, root);
    clients.push(t.client);
    t.tamper((r) => {
      r.headers['user-agent'] = 'something else';
      r.headers['x-unsigned-extra'] = '1';
    });
    expect((await t.client.send(new ListKeysCommand({}))).Keys).toBeInstanceOf(Array);
  });

  it('a request signed within 15 minutes of the server clock is accepted, either side', async () => {
    for (const skew of [-14, 14]) expect((await client(root, new Date(NOW.getTime() + skew * 60_000)).send(new ListKeysCommand({}))).Keys).toBeInstanceOf(Array);
  });
});

describe('SigV4: every signed part, tampered, is an InvalidSignatureException', () => {
  const cases: [string, Tamper, RegExp | string][] = [
    ['method', (r) => void (r.method = 'PUT'), SIGNATURE_MISMATCH],
    ['path', (r) => void (r.path = '/other'), SIGNATURE_MISMATCH],
    ['path (dot segment)', (r) => void (r.path = '/./x'), SIGNATURE_MISMATCH],
    ['query added', (r) => void (r.query = { Action: 'ListKeys' }), SIGNATURE_MISMATCH],
    ['x-amz-target (the operation)', (r) => void (r.headers['x-amz-target'] = 'TrentService.CreateKey'), SIGNATURE_MISMATCH],
    ['content-type', (r) => void (r.headers['content-type'] = 'application/x-amz-json-1.0'), SIGNATURE_MISMATCH],
    ['host', (r) => void (r.headers.host = `localhost:${sim.port}`), SIGNATURE_MISMATCH],
    ['a signed header removed', (r) => void delete r.headers['x-amz-user-agent'], SIGNATURE_MISMATCH],
    ['SignedHeaders shortened', (r) => void (r.headers.authorization = r.headers.authorization!.replace('x-amz-user-agent', '').replace(';,', ',')), SIGNATURE_MISMATCH],
    ['body (same length, hash header kept)', (r) => void (r.body = '[]'), /x-amz-content-sha256/],
    [
      'body and its hash header together',
      (r) => {
        r.body = '[]';
        r.headers['x-amz-content-sha256'] = '4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945';
      },
      SIGNATURE_MISMATCH,
    ],
    ['body hash header: UNSIGNED-PAYLOAD', (r) => void (r.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD'), /x-amz-content-sha256/],
    ['x-amz-date one second later', (r) => void (r.headers['x-amz-date'] = formatAmzDate(new Date(parseAmzDate(r.headers['x-amz-date']!)!.getTime() + 1000))), SIGNATURE_MISMATCH],
    ['signature, one hex digit', (r) => void (r.headers.authorization = r.headers.authorization!.replace(/Signature=(.)/, (_, c: string) => `Signature=${c === '0' ? '1' : '0'}`)), SIGNATURE_MISMATCH],
    ['signature, not hex', (r) => void (r.headers.authorization = r.headers.authorization!.replace(/Signature=.*/, 'Signature=zz')), SIGNATURE_MISMATCH],
    ['scope region', (r) => void (r.headers.authorization = r.headers.authorization!.replace('/us-east-1/', '/us-west-2/')), "Credential should be scoped to a valid region, not 'us-west-2'."],
    ['scope service', (r) => void (r.headers.authorization = r.headers.authorization!.replace('/kms/', '/s3/')), "Credential should be scoped to correct service: 'kms'."],
    ['scope date', (r) => void (r.headers.authorization = r.headers.authorization!.replace(/\/(\d{8})\//, '/20260531/')), /^Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20260531' != '20260601'/],
    ['scope terminator', (r) => void (r.headers.authorization = r.headers.authorization!.replace('aws4_request', 'aws5_request')), /valid terminator: 'aws4_request', not 'aws5_request'/],
  ];
  for (const [what, tamper, message] of cases)
    it(what, async () => {
      const t = tamperingClient(sim, root);
      clients.push(t.client);
      t.tamper(tamper);
      const f = await failure(t.client.send(new ListKeysCommand({})));
      expect(f.name).toBe('InvalidSignatureException');
      if (typeof message === 'string') expect(f.message).toBe(message);
      else expect(f.message).toMatch(message);
      expect(f.status).toBe(400);
    });

  it('a client configured for another region is told so', async () => {
    const t = tamperingClient(sim, root, NOW, 'eu-west-1');
    clients.push(t.client);
    expect(await failure(t.client.send(new ListKeysCommand({})))).toMatchObject({ name: 'InvalidSignatureException', message: "Credential should be scoped to a valid region, not 'eu-west-1'." });
  });

  it('a wrong secret is an InvalidSignatureException', async () => {
    expect(await failure(client({ ...user, secretAccessKey: `${user.secretAccessKey.slice(0, -1)}x` }).send(new ListKeysCommand({})))).toMatchObject({ name: 'InvalidSignatureException', message: SIGNATURE_MISMATCH });
  });

  it('a tampered CreateKey creates nothing', async () => {
    const before = (await client(root).send(new ListKeysCommand({ Limit: 1000 }))).Keys!.length;
    const t = tamperingClient(sim, root);
    clients.push(t.client);
    t.tamper((r) => void (r.body = JSON.stringify({ Description: 'x'.repeat(String(r.body).length - 18) })));
    expect((await failure(t.client.send(new CreateKeyCommand({ Description: 'original description' })))).name).toBe('InvalidSignatureException');
    expect((await client(root).send(new ListKeysCommand({ Limit: 1000 }))).Keys!.length).toBe(before);
  });
});

describe('SigV4: keys, dates, tokens', () => {
  it('an unknown access key is an UnrecognizedClientException, AWS-shaped or not', async () => {
    for (const accessKeyId of ['AKIAAAAAAAAAAAAAAAAA', 'ASIAQQQQQQQQQQQQQQQQ', 'not-a-key', '..%2F..%2Fcredentials'])
      expect(await failure(client({ accessKeyId, secretAccessKey: root.secretAccessKey }).send(new ListKeysCommand({})))).toMatchObject({
        name: 'UnrecognizedClientException',
        message: 'The security token included in the request is invalid.',
        status: 400,
      });
  });

  it('X-Amz-Date more than 15 minutes off the server clock: "Signature expired" / "not yet current"', async () => {
    const late = await failure(client(root, new Date(NOW.getTime() - 16 * 60_000)).send(new ListKeysCommand({})));
    expect(late.name).toBe('InvalidSignatureException');
    expect(late.message).toMatch(/^Signature expired: 20260601T1144\d\dZ is now earlier than 20260601T114500Z \(20260601T120000Z - 15 min\.\)$/);
    const early = await failure(client(root, new Date(NOW.getTime() + 16 * 60_000)).send(new ListKeysCommand({})));
    expect(early.name).toBe('InvalidSignatureException');
    expect(early.message).toMatch(/^Signature not yet current: 20260601T1216\d\dZ is still later than 20260601T121500Z \(20260601T120000Z \+ 15 min\.\)$/);
  });

  it('the SDK corrects its clock from the Date header and retries, as against AWS', async () => {
    // kmsClient makes no retries: build one with the SDK's default (3 attempts), three hours slow.
    const { KMSClient } = await import('@aws-sdk/client-kms');
    const retrying = new KMSClient({ region: 'us-east-1', endpoint: sim.url, credentials: { ...root }, systemClockOffset: -3 * 3600_000 + (NOW.getTime() - Date.now()) });
    clients.push(retrying);
    const refusedBefore = logs.filter((l) => l === 'ListKeys 400 InvalidSignatureException').length;
    expect((await retrying.send(new ListKeysCommand({}))).Keys).toBeInstanceOf(Array);
    // The first attempt was refused ("Signature expired"), the retry signed with the corrected clock.
    expect(logs.filter((l) => l === 'ListKeys 400 InvalidSignatureException').length).toBe(refusedBefore + 1);
  });

  it('temporary credentials: a missing or wrong session token is refused; a token with a long-term key too', async () => {
    const noToken = { accessKeyId: session.accessKeyId, secretAccessKey: session.secretAccessKey };
    expect(await failure(client(noToken).send(new ListKeysCommand({})))).toMatchObject({ name: 'UnrecognizedClientException' });
    const wrong = { ...noToken, sessionToken: `${session.sessionToken!.slice(0, -4)}AAAA` };
    expect(await failure(client(wrong).send(new ListKeysCommand({})))).toMatchObject({ name: 'UnrecognizedClientException' });
    const other = await sim.addPrincipal({ principal: 'arn:aws:iam::111122223333:role/other', session: true });
    expect(await failure(client({ ...noToken, sessionToken: other.sessionToken! }).send(new ListKeysCommand({})))).toMatchObject({ name: 'UnrecognizedClientException' });
    expect(await failure(client({ ...user, sessionToken: session.sessionToken! }).send(new ListKeysCommand({})))).toMatchObject({ name: 'UnrecognizedClientException' });
  });

  it('a body hash of UNSIGNED-PAYLOAD, even signed, does not leave the body unauthenticated', async () => {
    const r = kmsRequest(sim.url, 'ListKeys');
    const signed = await signRaw({ ...r, headers: { ...r.headers, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }, root);
    expect(signed.headers.authorization).toContain('x-amz-content-sha256');
    const res = await sendRaw(sim.url, signed);
    expect([res.json.__type, res.json.message]).toEqual(['InvalidSignatureException', "The provided 'x-amz-content-sha256' header does not match what was computed."]);
  });

  it('a session token that is sent but not signed is refused', async () => {
    const req = await signRaw(kmsRequest(sim.url, 'ListKeys'), session, { unsignable: ['x-amz-security-token'] });
    expect(req.headers.authorization).not.toContain('x-amz-security-token');
    expect((await sendRaw(sim.url, req)).json.__type).toBe('UnrecognizedClientException');
    // The same request with the token signed is fine.
    expect((await signedSend(sim.url, kmsRequest(sim.url, 'ListKeys'), session)).status).toBe(200);
  });

  it('expired temporary credentials: ExpiredTokenException (a valid signature is not enough)', async () => {
    const old = await sim.addPrincipal({ principal: 'arn:aws:iam::111122223333:role/enclave-parent', session: true, expiresInSeconds: 900, now: new Date(NOW.getTime() - 900_000) });
    expect(old.expiration).toEqual(NOW);
    expect(await failure(client(old).send(new ListKeysCommand({})))).toMatchObject({ name: 'ExpiredTokenException', message: 'The security token included in the request is expired', status: 400 });
    const fresh = await sim.addPrincipal({ principal: 'arn:aws:iam::111122223333:role/enclave-parent', session: true, expiresInSeconds: 900, now: new Date(NOW.getTime() - 899_000) });
    expect((await client(fresh).send(new ListKeysCommand({}))).Keys).toBeInstanceOf(Array);
    // An expired session with a wrong signature is still a signature failure: expiry is judged last.
    expect((await failure(client({ ...old, secretAccessKey: 'wrong-secret-wrong-secret' }).send(new ListKeysCommand({})))).name).toBe('InvalidSignatureException');
  });
});

describe('SigV4: malformed or missing authentication', () => {
  const send = (headers: Record<string, string>) => {
    const r = kmsRequest(sim.url, 'ListKeys');
    return sendRaw(sim.url, { ...r, headers: { ...r.headers, ...headers } });
  };

  it('no Authorization: MissingAuthenticationTokenException; a broken one: IncompleteSignatureException', async () => {
    expect((await send({})).json).toEqual({ __type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' });
    const date = formatAmzDate(NOW);
    const cases: Record<string, string>[] = [
      { authorization: 'AWS4-HMAC-SHA256', 'x-amz-date': date },
      { authorization: 'AWS4-HMAC-SHA256 Credential=AKIAAAAAAAAAAAAAAAAA/20260601/us-east-1/kms/aws4_request', 'x-amz-date': date },
      { authorization: `AWS AKIAAAAAAAAAAAAAAAAA:${'a'.repeat(28)}`, 'x-amz-date': date },
      { authorization: 'AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host;x-amz-date, Signature=00', 'x-amz-date': date },
      { authorization: `AWS4-HMAC-SHA256 Credential=${root.accessKeyId}/20260601/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}` },
      { authorization: `AWS4-HMAC-SHA256 Credential=${root.accessKeyId}/20260601/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`, 'x-amz-date': '2026-06-01T12:00:00Z' },
      { authorization: `AWS4-HMAC-SHA256 Credential=${root.accessKeyId}/20260601/us-east-1/kms/aws4_request, SignedHeaders=x-amz-date, Signature=${'0'.repeat(64)}`, 'x-amz-date': date },
      { authorization: `AWS4-HMAC-SHA256 Credential=${root.accessKeyId}/20260601/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=${'0'.repeat(64)}`, 'x-amz-date': date },
    ];
    for (const h of cases) expect({ h, type: (await send(h)).json.__type }).toEqual({ h, type: 'IncompleteSignatureException' });
  });

  it('presigned query-string authentication is not accepted', async () => {
    const r = kmsRequest(sim.url, 'ListKeys');
    const res = await sendRaw(sim.url, { ...r, path: `/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${root.accessKeyId}%2F20260601%2Fus-east-1%2Fkms%2Faws4_request` });
    expect(res.json.__type).toBe('MissingAuthenticationTokenException');
  });

  it('property: any Authorization header (and X-Amz-Date) gets an AWS-shaped 4xx, never a crash', async () => {
    const near = fc
      .tuple(
        fc.constantFrom('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA256 ', 'aws4-hmac-sha256', 'AWS4-ECDSA-P256-SHA256', ''),
        fc.array(
          fc.oneof(
            fc.constantFrom(
              `Credential=${root.accessKeyId}/20260601/us-east-1/kms/aws4_request`,
              `Credential=${session.accessKeyId}/20260601/us-east-1/kms/aws4_request`,
              'SignedHeaders=content-type;host;x-amz-date;x-amz-target',
              'SignedHeaders=__proto__;constructor;host;x-amz-date',
              `Signature=${'ab'.repeat(32)}`,
              'Credential=',
              '=',
              ',,,',
            ),
            fc.string({ maxLength: 80 }),
            fc.string({ unit: 'binary', maxLength: 40 }),
          ),
          { maxLength: 6 },
        ),
      )
      .map(([alg, parts]) => `${alg} ${parts.join(', ')}`);
    const headerSafe = (s: string) => s.replace(/[^\t\x20-\x7e\x80-\xff]/g, '').slice(0, 6000);
    const ALLOWED = new Set(['MissingAuthenticationTokenException', 'IncompleteSignatureException', 'InvalidSignatureException', 'UnrecognizedClientException']);
    await fc.assert(
      fc.asyncProperty(fc.oneof(near, fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 })), fc.option(fc.oneof(fc.constant(formatAmzDate(NOW)), fc.string({ maxLength: 20 }))), async (auth, date) => {
        const headers: Record<string, string> = { authorization: headerSafe(auth) };
        if (date !== null) headers['x-amz-date'] = headerSafe(date);
        if (headers.authorization!.trim() === '') delete headers.authorization;
        if (headers['x-amz-date'] === '') delete headers['x-amz-date'];
        const r = await send(headers);
        expect(r.status).toBe(400);
        expect(ALLOWED.has(String(r.json.__type)), JSON.stringify(r.json)).toBe(true);
        expect(r.headers['x-amzn-errortype']).toBe(r.json.__type);
      }),
      { numRuns: 300 },
    );
    // Still serving.
    expect((await client(root).send(new ListKeysCommand({}))).Keys).toBeInstanceOf(Array);
  });
});

describe('SigV4: nothing secret is logged', () => {
  it('no log line carries a secret key, a session token or a signature', async () => {
    // Make sure the log has seen failures of every kind too.
    await failure(client({ ...root, secretAccessKey: 'wrong-wrong-wrong-wrong' }).send(new ListKeysCommand({})));
    await failure(client({ accessKeyId: session.accessKeyId, secretAccessKey: session.secretAccessKey, sessionToken: 'bad-token' }).send(new ListKeysCommand({})));
    const signed = await signRaw(kmsRequest(sim.url, 'ListKeys'), root);
    const signature = /Signature=([0-9a-f]{64})/.exec(signed.headers.authorization!)![1]!;
    await sendRaw(sim.url, signed);
    expect(logs.length).toBeGreaterThan(20);
    const text = logs.join('\n');
    for (const secret of [root.secretAccessKey, user.secretAccessKey, session.secretAccessKey, session.sessionToken!, signature, 'wrong-wrong-wrong-wrong', 'bad-token'])
      expect(text.includes(secret), secret.slice(0, 6)).toBe(false);
    // Nor the access key ids: the log names callers by ARN.
    for (const id of [root.accessKeyId, user.accessKeyId, session.accessKeyId]) expect(text).not.toContain(id);
  });
});
