/**
 * A loopback instance metadata service (IMDSv2) for tests, answering as EC2 does for what the AWS
 * SDK's `fromInstanceMetadata` asks:
 *
 *   PUT /latest/api/token   with X-aws-ec2-metadata-token-ttl-seconds: 1..21600 -> a session token
 *                           (400 without a valid TTL; 403 with X-Forwarded-For, as EC2 refuses proxied PUTs)
 *   GET /latest/meta-data/iam/security-credentials/          -> the role name
 *   GET /latest/meta-data/iam/security-credentials/ROLE      -> {Code, LastUpdated, Type, AccessKeyId,
 *                                                               SecretAccessKey, Token, Expiration}
 *   GET /latest/meta-data/instance-id                        -> the instance id
 *
 * Every GET needs a live token in X-aws-ec2-metadata-token (IMDSv2 only, HttpTokens=required): 401
 * otherwise. Unknown paths: 404. Listens on 127.0.0.1 only. Point the SDK at it with its documented
 * setting: AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface ImdsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** ISO 8601, as IMDS writes it. */
  expiration: string;
}

export interface ImdsOptions {
  roleName: string;
  instanceId?: string;
  /** The credentials served now (read at each request, so a test can rotate or spoil them). */
  credentials: () => ImdsCredentials;
}

export interface ImdsRequest {
  method: string;
  path: string;
  /** Whether a valid session token came with it. */
  token: boolean;
  status: number;
}

export interface ImdsServer {
  url: string;
  /** What was asked, in order (no header values). */
  requests: ImdsRequest[];
  close(): Promise<void>;
}

const CREDS_PATH = '/latest/meta-data/iam/security-credentials/';

export async function startImds(o: ImdsOptions): Promise<ImdsServer> {
  const tokens = new Map<string, number>();
  const requests: ImdsRequest[] = [];
  const answer = (req: IncomingMessage, res: ServerResponse, status: number, body: string, type = 'text/plain', hadToken = false) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '', token: hadToken, status });
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), server: 'EC2ws' });
    res.end(body);
  };
  const server = createServer((req, res) => {
    req.resume();
    const path = req.url ?? '';
    if (req.method === 'PUT' && path === '/latest/api/token') {
      if (req.headers['x-forwarded-for'] !== undefined) return answer(req, res, 403, 'Forbidden');
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return answer(req, res, 400, 'Bad Request');
      const t = randomBytes(42).toString('base64');
      tokens.set(t, Date.now() + ttl * 1000);
      return answer(req, res, 200, t);
    }
    if (req.method !== 'GET') return answer(req, res, 405, 'Method Not Allowed');
    const t = req.headers['x-aws-ec2-metadata-token'];
    const exp = typeof t === 'string' ? tokens.get(t) : undefined;
    if (exp === undefined || exp < Date.now()) return answer(req, res, 401, 'Unauthorized');
    if (path === CREDS_PATH) return answer(req, res, 200, o.roleName, 'text/plain', true);
    if (path === CREDS_PATH + o.roleName) {
      const c = o.credentials();
      const body = JSON.stringify(
        {
          Code: 'Success',
          LastUpdated: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
          Type: 'AWS-HMAC',
          AccessKeyId: c.accessKeyId,
          SecretAccessKey: c.secretAccessKey,
          Token: c.sessionToken,
          Expiration: c.expiration,
        },
        null,
        2,
      );
      return answer(req, res, 200, body, 'text/plain', true);
    }
    if (path === '/latest/meta-data/instance-id' && o.instanceId !== undefined) return answer(req, res, 200, o.instanceId, 'text/plain', true);
    return answer(req, res, 404, 'Not Found', 'text/plain', true);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Point the AWS SDK's default chain at this IMDS only: no environment keys, no shared files, no containers. */
export function isolateSdkEnvironment(imdsUrl: string, scratchDir: string): () => void {
  const names = [
    'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_CREDENTIAL_EXPIRATION', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE',
    'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN',
    'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN',
    'AWS_EC2_METADATA_DISABLED', 'AWS_EC2_METADATA_SERVICE_ENDPOINT', 'AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE', 'AWS_EC2_METADATA_V1_DISABLED',
  ];
  const saved = new Map(names.map((n) => [n, process.env[n]]));
  for (const n of names) delete process.env[n];
  process.env.AWS_CONFIG_FILE = `${scratchDir}/no-aws-config`;
  process.env.AWS_SHARED_CREDENTIALS_FILE = `${scratchDir}/no-aws-credentials`;
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imdsUrl;
  // As on an instance whose metadata options say HttpTokens=required.
  process.env.AWS_EC2_METADATA_V1_DISABLED = 'true';
  return () => {
    for (const [n, v] of saved) {
      if (v === undefined) delete process.env[n];
      else process.env[n] = v;
    }
  };
}
