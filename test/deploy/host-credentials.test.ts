/**
 * The host's credential resolution (host/credentials.ts) through the AWS SDK's default chain:
 * short-lived only by default, stale instance-metadata credentials refused even when the SDK
 * "extends" them, too-short validity refreshed, and no credential in any error or log line, also
 * when the metadata service answers with garbage that contains one.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ToolkitError } from '../../attestation/errors.js';
import { checkHandoverCredentials, credentialsPayload, describeCredentials, parentCredentials, staticCredentials } from '../../host/credentials.js';
import { validateMessage } from '../../enclave/protocol/index.js';
import { startImds, isolateSdkEnvironment, type ImdsServer, type ImdsCredentials } from './imds.js';

const AKID = 'ASIAIOSFODNN7EXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const TOKEN = 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ' + 'B'.repeat(200);
const iso = (ms: number) => new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

let dir: string;
let imds: ImdsServer;
let serving: ImdsCredentials;
/** When set, IMDS serves what this returns (one call per credentials fetch). */
let imdsNext: (() => ImdsCredentials) | undefined;
let restore: () => void;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ek-hostcred-'));
  serving = { accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: TOKEN, expiration: iso(6 * 3600_000) };
  imds = await startImds({ roleName: 'parent-role', credentials: () => imdsNext?.() ?? serving });
  restore = isolateSdkEnvironment(imds.url, dir);
});
afterAll(async () => {
  restore();
  await imds.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  serving = { accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: TOKEN, expiration: iso(6 * 3600_000) };
  delete process.env.AWS_ACCESS_KEY_ID;
  delete process.env.AWS_SECRET_ACCESS_KEY;
});

async function failure(p: Promise<unknown>): Promise<ToolkitError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ToolkitError) return e;
    throw e;
  }
  throw new Error('expected a failure');
}

const noSecret = (text: string) => {
  for (const s of [AKID, SECRET, TOKEN.slice(0, 24), 'wJalrXUtnFEMI']) expect(text).not.toContain(s);
};

describe('parentCredentials (the SDK default chain, IMDSv2 here)', () => {
  it('returns the instance profile\'s short-lived credentials, which make a valid credentials message', async () => {
    const c = await parentCredentials()();
    expect(c).toMatchObject({ accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: TOKEN });
    expect(c.expiration!.getTime()).toBeGreaterThan(Date.now() + 5 * 3600_000);
    expect(() => validateMessage({ t: 'credentials', id: 0, ...credentialsPayload(c) })).not.toThrow();
    const d = describeCredentials(c);
    expect(d).toMatch(/^short-lived credentials valid until .* \(\d+ min\)$/);
    noSecret(d);
  });

  it('stale credentials from IMDS are refused (the SDK extends them; their true expiry counts) and the SDK warning goes to our log only', async () => {
    serving = { ...serving, expiration: iso(-3600_000) };
    const lines: string[] = [];
    const warned: unknown[] = [];
    const orig = console.warn;
    console.warn = (...a: unknown[]) => void warned.push(a);
    try {
      const e = await failure(parentCredentials({ log: (l) => lines.push(l) })());
      expect(e).toMatchObject({ code: 'ERR_CONFIG_INVALID', reason: 'credentials_expired' });
      expect(e.message).toMatch(/expired at .*serves stale credentials/);
      noSecret(e.message + lines.join('\n'));
    } finally {
      console.warn = orig;
    }
    expect(warned).toEqual([]);
    expect(lines.some((l) => /credential expiration extension/.test(l))).toBe(true);
  });

  it('credentials about to expire are fetched again; if still too short, refused', async () => {
    const soon = { ...serving, expiration: iso(60_000) };
    const later = { ...serving, expiration: iso(3600_000) };
    const queue = [soon, later];
    const fetchesBefore = imds.requests.filter((r) => r.path.endsWith('/parent-role')).length;
    serving = soon;
    const orig = imdsNext;
    imdsNext = () => queue.shift() ?? later;
    try {
      const c = await parentCredentials({ minValidityMs: 120_000 })();
      expect(c.expiration!.toISOString().replace(/\.\d{3}Z$/, 'Z')).toBe(later.expiration);
      expect(imds.requests.filter((r) => r.path.endsWith('/parent-role')).length - fetchesBefore).toBe(2);
      imdsNext = () => soon;
      const e = await failure(parentCredentials({ minValidityMs: 120_000 })());
      expect(e).toMatchObject({ code: 'ERR_CONFIG_INVALID', reason: 'credentials_expiring' });
    } finally {
      imdsNext = orig;
    }
  });

  it('IMDS answering garbage that contains a secret: the error names the failure, never the text', async () => {
    const srv: Server = createServer((req, res) => {
      req.resume();
      if (req.method === 'PUT') return void res.end('tok');
      if (req.url === '/latest/meta-data/iam/security-credentials/') return void res.end('r');
      res.end(`{"AccessKeyId": "${AKID}", "SecretAccessKey": "${SECRET}", oops`);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    try {
      const lines: string[] = [];
      const e = await failure(parentCredentials({ log: (l) => lines.push(l), metadataRetries: 0 })());
      expect(e).toMatchObject({ code: 'ERR_CONFIG_INVALID', reason: 'credentials_unavailable' });
      expect(e.message).toMatch(/^no AWS credentials for the parent instance: /);
      noSecret(e.message + lines.join('\n'));
    } finally {
      process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it('no metadata service and nothing else: a clear failure naming the chain', async () => {
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = 'http://127.0.0.1:9';
    try {
      const e = await failure(parentCredentials({ metadataRetries: 0, metadataTimeoutMs: 500 })());
      expect(e).toMatchObject({ code: 'ERR_CONFIG_INVALID', reason: 'credentials_unavailable' });
      expect(e.message).toMatch(/no AWS credentials for the parent instance: .*(Could not load credentials from any providers|instance metadata)/i);
    } finally {
      process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
    }
  });

  it('long-term access keys (environment) are refused unless allowed', async () => {
    process.env.AWS_ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE';
    process.env.AWS_SECRET_ACCESS_KEY = SECRET;
    const e = await failure(parentCredentials()());
    expect(e).toMatchObject({ code: 'ERR_CONFIG_INVALID', reason: 'credentials_long_term' });
    noSecret(e.message);
    const c = await parentCredentials({ allowLongTerm: true })();
    expect(c.accessKeyId).toBe('AKIAIOSFODNN7EXAMPLE');
    expect(c.sessionToken).toBeUndefined();
  });
});

describe('checkHandoverCredentials', () => {
  const base = { accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: TOKEN, expiration: new Date(Date.now() + 3600_000) };
  it('checks the AWS formats without echoing values', async () => {
    for (const bad of [{ ...base, accessKeyId: 'short' }, { ...base, secretAccessKey: 'has a space in it ....' }, { ...base, sessionToken: 'x' }, { ...base, expiration: new Date(NaN) }, null, {}]) {
      let e: unknown;
      try {
        checkHandoverCredentials(bad);
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(ToolkitError);
      expect((e as ToolkitError).reason).toBe('credentials_invalid');
      noSecret((e as Error).message);
    }
  });
  it('staticCredentials checks at each call', async () => {
    await expect(staticCredentials({ ...base, expiration: new Date(Date.now() - 1) })()).rejects.toMatchObject({ reason: 'credentials_expired' });
    expect((await staticCredentials(base)()).accessKeyId).toBe(AKID);
  });
});
