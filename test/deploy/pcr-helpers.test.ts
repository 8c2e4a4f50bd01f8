/**
 * PCR3 (the parent's IAM role) and PCR4 (the parent instance id) as AWS documents them, with AWS's
 * own published examples as vectors (AWS Nitro Enclaves User Guide, "Cryptographic attestation" >
 * "Where to get an enclave's measurements", https://docs.aws.amazon.com/enclaves/latest/user/set-up-attestation.html#where):
 *
 *   ROLEARN="arn:aws:iam::123456789012:role/Webserver" -> 78fce75d...6921e6
 *   INSTANCE_ID="i-1234567890abcdef0"                  -> 08f996b5...e79ce0
 *
 * and `enclavekit policy --pcr3-role-arn / --pcr4-instance-id`, several values per PCR included.
 */
import { describe, it, expect } from 'vitest';
import { PassThrough } from 'node:stream';
import { pcr3ForRoleArn, pcr4ForInstanceId } from '../../host/key-policy.js';
import { simBootPcrs } from '../../attestation/sim/image.js';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const AWS_PCR3 = '78fce75db17cd4e0a3fb8dad3ad128ca5e77edbb2b2c7f75329dccd99aa5f6ef4fc1f1a452e315b9e98f9e312e6921e6';
const AWS_PCR4 = '08f996b5d43e047a9eb51e7f548bfee7e164fd7dc8f65541f2ac09d6545ac812719327281c401a67a10fcba87ae79ce0';

function io(): CliIO & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c) => (o += c));
  stderr.on('data', (c) => (e += c));
  return { stdout, stderr, stdin: new PassThrough(), env: {}, now: () => new Date(), out: () => o, err: () => e };
}

const principals = ['--key-admin', 'arn:aws:iam::111122223333:role/kms-admin', '--data-owner', 'arn:aws:iam::111122223333:role/data-owner', '--role', 'arn:aws:iam::444455556666:role/enclave-parent'];

describe('PCR3 / PCR4 helpers', () => {
  it('match AWS\'s published examples', () => {
    expect(hex(pcr3ForRoleArn('arn:aws:iam::123456789012:role/Webserver'))).toBe(AWS_PCR3);
    expect(hex(pcr4ForInstanceId('i-1234567890abcdef0'))).toBe(AWS_PCR4);
  });

  it('agree with the simulated platform, which issues PCR3/PCR4 the same way', () => {
    const pcrs = simBootPcrs({ imageId: new Uint8Array(48), iamRoleArn: 'arn:aws:iam::444455556666:role/enclave-parent', instanceId: 'i-0abc0123456789def' });
    expect(hex(pcrs.get(3)!)).toBe(hex(pcr3ForRoleArn('arn:aws:iam::444455556666:role/enclave-parent')));
    expect(hex(pcrs.get(4)!)).toBe(hex(pcr4ForInstanceId('i-0abc0123456789def')));
  });

  it('take a role ARN (with a path, other partitions) and an instance id, nothing else', () => {
    expect(() => pcr3ForRoleArn('arn:aws:iam::123456789012:role/service-role/my-path/Web_server+1')).not.toThrow();
    expect(() => pcr3ForRoleArn('arn:aws-us-gov:iam::123456789012:role/x')).not.toThrow();
    for (const bad of ['arn:aws:iam::123456789012:instance-profile/Webserver', 'arn:aws:sts::123456789012:assumed-role/Webserver/i-123', 'arn:aws:iam::12345:role/x', 'Webserver', ''])
      expect(() => pcr3ForRoleArn(bad)).toThrow(RangeError);
    expect(() => pcr4ForInstanceId('i-12345678')).not.toThrow();
    for (const bad of ['i-123', 'I-1234567890ABCDEF0', 'i-1234567890abcdef0 ', 'ami-12345678']) expect(() => pcr4ForInstanceId(bad)).toThrow(RangeError);
  });

  it('enclavekit policy adds them as PCR3/PCR4 conditions, several values being alternatives (rolling deploys)', async () => {
    const t = io();
    const code = await main(
      ['policy', '--pcr', `0=${'aa'.repeat(48)}`, '--pcr', `0=${'bb'.repeat(48)}`, '--pcr3-role-arn', 'arn:aws:iam::123456789012:role/Webserver',
        '--pcr4-instance-id', 'i-1234567890abcdef0', '--pcr4-instance-id', 'i-0fedcba9876543210', ...principals],
      t,
    );
    expect(t.err()).toBe('');
    expect(code).toBe(0);
    const policy = JSON.parse(t.out()) as { Statement: { Sid?: string; Condition?: Record<string, Record<string, unknown>> }[] };
    const conds = JSON.stringify(policy.Statement.map((s) => s.Condition ?? {}));
    expect(conds).toContain(AWS_PCR3);
    expect(conds).toContain(AWS_PCR4);
    expect(conds).toContain(hex(pcr4ForInstanceId('i-0fedcba9876543210')));
    expect(conds).toContain('aa'.repeat(48));
    expect(conds).toContain('bb'.repeat(48));
  });

  it('a bad ARN or instance id is a usage error (exit 2)', async () => {
    const t = io();
    expect(await main(['policy', '--pcr', `0=${'aa'.repeat(48)}`, '--pcr3-role-arn', 'arn:aws:iam::123456789012:user/bob', ...principals], t)).toBe(2);
    expect(t.err()).toMatch(/--pcr3-role-arn: PCR3 expects an IAM role ARN/);
    const u = io();
    expect(await main(['policy', '--pcr', `0=${'aa'.repeat(48)}`, '--pcr4-instance-id', 'i-nope', ...principals], u)).toBe(2);
  });
});
