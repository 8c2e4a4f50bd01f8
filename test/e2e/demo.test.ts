import { describe, it, expect } from 'vitest';
import { PassThrough } from 'node:stream';
import { main } from '../../host/cli/main.js';

describe('enclavekit demo', () => {
  it('exits 0, prints verified aggregates, the policy refusal and the KMS denial for the other image', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    stdout.on('data', (c) => (out += c));
    stderr.on('data', () => {});
    // A smaller dataset than `npm run demo` (100k) keeps the suite fast; the path is the same.
    const code = await main(['demo', '--records', '20000'], { stdout, stderr, stdin: new PassThrough(), env: {}, now: () => new Date() });
    expect(out).toContain('result VERIFIED');
    expect(out).toMatch(/KMS DENIED image B the data key: .*AccessDeniedException/);
    expect(out).toMatch(/20000 records, \d+ groups released, \d+ suppressed/);
    expect(out).toMatch(/query grouping by email REFUSED by the owner's release policy before any key was fetched or record read .*ERR_QUERY_REFUSED \(dimension\)/);
    expect(out).toContain('audit log: 3 entries (image A verified, the email query refused, image B denied)');
    expect(out).toContain('evidence re-verified');
    expect(code).toBe(0);
  }, 120_000);
});
