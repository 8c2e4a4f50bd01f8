/**
 * Attack 04b: the key policy `enclavekit policy` prints lets the account hand out data keys without
 * any enclave.
 *
 * Finding: without `--key-admin`, the generated policy granted the account root (so any principal of
 * the account that IAM allows, the host operator's parent-instance role included) GenerateDataKey
 * without a Recipient, and the key admin (or root) could create data keys. A host with such a
 * principal gets plaintext data keys under the owner's KMS key: it can mint data (and seals) the
 * worker would take for the owner's.
 * Stopped by: host/cli/policy.ts requires `--key-admin`, `--data-owner` and `--role` (distinct IAM
 * role/user ARNs; never the account root, an account id or `*`), and host/key-policy.ts
 * `buildEnclaveKeyPolicy` refuses anything else (TypeError). The policy grants the key admin
 * key-management actions only, data keys without a Recipient to the data owner only, Decrypt /
 * GenerateDataKey to the role only with matching attestation, and denies every Decrypt / ReEncrypt
 * without attestation to everyone.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../host/cli/main.js';
import type { CliIO } from '../../host/cli/io.js';
import { buildEnclaveKeyPolicy, evaluateKeyPolicy, parseKeyPolicy, type RequestContext } from '../../host/key-policy.js';

const ACCOUNT = '111122223333';
const KEY = `arn:aws:kms:us-east-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
const ROOT = `arn:aws:iam::${ACCOUNT}:root`;
const ADMIN = `arn:aws:iam::${ACCOUNT}:role/key-admin`;
const OWNER = `arn:aws:iam::${ACCOUNT}:role/data-owner`;
const PARENT = `arn:aws:iam::${ACCOUNT}:role/enclave-parent`;
const STRANGER = `arn:aws:iam::${ACCOUNT}:user/someone-else`;
const PCR0 = 'ab'.repeat(48);

function cliIO(): { io: CliIO; out: () => string; err: () => string } {
  const o = new PassThrough();
  const e = new PassThrough();
  let out = '';
  let err = '';
  o.on('data', (c: Buffer) => (out += c.toString()));
  e.on('data', (c: Buffer) => (err += c.toString()));
  return { io: { stdout: o, stderr: e, stdin: new PassThrough(), env: {}, now: () => new Date() }, out: () => out, err: () => err };
}

/** A request as KMS sees it: who calls (principal ARN), what, and whether a Recipient attested PCR0. */
function request(action: string, principal: string, attested = false, account = ACCOUNT): RequestContext {
  const keys = new Map<string, string[]>(attested ? [['kms:RecipientAttestation:ImageSha384', [PCR0]], ['kms:RecipientAttestation:PCR0', [PCR0]]] : []);
  return { action, resource: KEY, account, principal, keys } as RequestContext;
}

const DATA_KEY_ACTIONS = ['kms:GenerateDataKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:Encrypt'];

describe('attack 04b: data keys without attestation from the generated key policy', () => {
  it('the command line without --key-admin / --data-owner (what a deploy script ran) exits 2; if it printed a policy, that policy grants nothing unattested', async () => {
    for (const args of [
      ['--pcr', `0=${PCR0}`, '--account', ACCOUNT],
      ['--pcr', `0=${PCR0}`, '--role', PARENT],
      ['--pcr', `0=${PCR0}`, '--role', PARENT, '--key-admin', ADMIN],
      ['--pcr', `0=${PCR0}`, '--role', PARENT, '--data-owner', OWNER],
    ]) {
      const { io, out, err } = cliIO();
      const code = await main(['policy', ...args], io);
      if (out().trim().length > 0) {
        const p = parseKeyPolicy(out());
        for (const who of [ROOT, STRANGER, PARENT])
          for (const action of ['kms:GenerateDataKey', 'kms:Decrypt'])
            expect(evaluateKeyPolicy(p, request(action, who)), `${args.join(' ')}: ${who} ${action}`).not.toBe('allow');
      }
      expect(code, args.join(' ')).toBe(2);
      expect(err()).toMatch(/^enclavekit policy: /);
    }
  });

  it('root, an account id, "*", a repeated principal: refused by the CLI (exit 2) and the builder (TypeError)', async () => {
    const pcrs = new Map([[0, new Uint8Array(Buffer.from(PCR0, 'hex'))]]);
    const bad: [string, string, string][] = [
      [ROOT, OWNER, PARENT],
      [ADMIN, ROOT, PARENT],
      [ADMIN, OWNER, ROOT],
      [ACCOUNT, OWNER, PARENT],
      [ADMIN, '*', PARENT],
      [ADMIN, ADMIN, PARENT],
      [ADMIN, OWNER, OWNER],
      [ADMIN, OWNER, ADMIN],
    ];
    for (const [keyAdmin, dataOwner, role] of bad) {
      const label = `${keyAdmin} ${dataOwner} ${role}`;
      expect(() => buildEnclaveKeyPolicy({ pcrs, keyAdmin, dataOwner, role } as Parameters<typeof buildEnclaveKeyPolicy>[0]), label).toThrow(TypeError);
      const { io } = cliIO();
      expect(await main(['policy', '--pcr', `0=${PCR0}`, '--key-admin', keyAdmin, '--data-owner', dataOwner, '--role', role], io), label).toBe(2);
    }
  });

  it('the policy printed with the required principals: nobody but the data owner gets a data key without attestation', async () => {
    const { io, out } = cliIO();
    expect(await main(['policy', '--pcr', `0=${PCR0}`, '--key-admin', ADMIN, '--data-owner', OWNER, '--role', PARENT], io)).toBe(0);
    const text = out();
    const p = parseKeyPolicy(text);

    // Without attestation: root, a stranger of the account, the key admin, the enclave's role, and
    // anyone from another account get no data key and no Decrypt.
    for (const who of [ROOT, STRANGER, ADMIN, PARENT])
      for (const action of DATA_KEY_ACTIONS) expect(evaluateKeyPolicy(p, request(action, who)), `${who} ${action}`).not.toBe('allow');
    for (const action of DATA_KEY_ACTIONS)
      expect(evaluateKeyPolicy(p, request(action, 'arn:aws:iam::999999999999:root', false, '999999999999')), action).not.toBe('allow');

    // Even with a matching attestation, only the role decrypts; the key admin never does.
    expect(evaluateKeyPolicy(p, request('kms:Decrypt', PARENT, true))).toBe('allow');
    expect(evaluateKeyPolicy(p, request('kms:GenerateDataKey', PARENT, true))).toBe('allow');
    for (const who of [ROOT, STRANGER, ADMIN]) expect(evaluateKeyPolicy(p, request('kms:Decrypt', who, true)), who).not.toBe('allow');

    // The data owner: data keys and Encrypt without a Recipient; never a plain Decrypt.
    expect(evaluateKeyPolicy(p, request('kms:GenerateDataKey', OWNER))).toBe('allow');
    expect(evaluateKeyPolicy(p, request('kms:Encrypt', OWNER))).toBe('allow');
    expect(evaluateKeyPolicy(p, request('kms:Decrypt', OWNER))).toBe('explicit-deny');
    expect(evaluateKeyPolicy(p, request('kms:ReEncryptFrom', OWNER))).toBe('explicit-deny');

    // And structurally: no Allow of a data-key action to "*" or to an account root / account id.
    const doc = JSON.parse(text) as { Statement: { Effect: string; Principal: unknown; Action: string | string[] }[] };
    for (const s of doc.Statement) {
      if (s.Effect !== 'Allow') continue;
      const principals = s.Principal === '*' ? ['*'] : ([] as string[]).concat((s.Principal as { AWS: string | string[] }).AWS);
      const actions = ([] as string[]).concat(s.Action).map((a) => a.toLowerCase());
      const dataKey = actions.some((a) => a === '*' || a === 'kms:*' || /^kms:(decrypt|generatedatakey|reencrypt)/.test(a));
      if (!dataKey) continue;
      for (const pr of principals) expect(pr === '*' || /:root$/.test(pr) || /^\d{12}$/.test(pr), `${pr} ${actions.join(',')}`).toBe(false);
    }
  });
});
