/** `enclavekit verify REPORT --cert ...` on the real vectors, through the dispatcher and directly. */
import { describe, expect, it } from 'vitest';
import { PassThrough, Readable } from 'node:stream';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../host/cli/main.js';
import { runSnp } from '../../host/cli/verify-snp.js';
import type { CliIO } from '../../host/cli/io.js';
import { VEC_DIR, vecFile } from './_vectors.js';

function makeIO(stdin: Uint8Array = new Uint8Array()) {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (c) => (o += c));
  err.on('data', (c) => (e += c));
  const io: CliIO = { stdout: out, stderr: err, stdin: Readable.from([Buffer.from(stdin)]), env: {}, now: () => new Date('2025-09-01T00:00:00Z') };
  return { io, out: () => o, err: () => e };
}
const v = (n: string) => VEC_DIR + n;
const tmp = mkdtempSync(join(tmpdir(), 'ek-snp-cli-'));

describe('enclavekit verify (SEV-SNP)', () => {
  it('verifies a real Genoa report with its VCEK and the built-in roots (JSON)', async () => {
    const t = makeIO();
    const code = await main(['verify', v('oak-2.report.bin'), '--cert', v('oak-2.vcek.der'), '--json'], t.io);
    expect(code).toBe(0);
    const j = JSON.parse(t.out());
    expect(j).toMatchObject({ valid: true, format: 'sev-snp', platform: 'sev-snp' });
    expect(j.claims.product).toBe('Genoa');
    expect(j.claims.measurement).toMatch(/^c57729018b0a6fb9/);
    expect(j.claims.reported_tcb).toEqual({ bootloader: 10, tee: 0, snp: 25, microcode: 84, raw: '0a00000000001954' });
    expect(j.claims.signing_key).toBe('VCEK');
    expect(j.claims.policy_flags.DEBUG).toBe(false);
    expect(typeof j.claims.vmpl).toBe('number');
  });

  it('Turin with the KDS cert_chain (CRLF) and --product; a PEM VCEK; hex input via stdin', async () => {
    const t = makeIO();
    expect(
      await main(['verify', v('oak-1.report.bin'), '--cert', v('oak-1.vcek.der'), '--chain', v('cert_chain-turin.pem'), '--product', 'Turin', '--at', '2025-08-01T00:00:00Z', '--json'], t.io),
    ).toBe(0);
    expect(JSON.parse(t.out()).claims.reported_tcb.fmc).toBe(0);
    const hex = Buffer.from(vecFile('teekit-2.report.bin')).toString('hex');
    const s = makeIO(new TextEncoder().encode(hex));
    expect(await main(['verify', '-', '--cert', v('teekit-2.vcek.pem'), '--at', '2025-12-07T00:00:00Z'], s.io)).toBe(0);
    expect(s.out()).toMatch(/^VALID sev-snp evidence/);
    expect(s.out()).toContain('VMPL');
  });

  it('base64 report and the VLEK sample at a pinned time; expired after 2025-12-10', async () => {
    const b64 = join(tmp, 'vlek.b64');
    writeFileSync(b64, Buffer.from(vecFile('trustee-vlek-1.report.bin')).toString('base64'));
    const t = makeIO();
    expect(await runSnp([b64, '--cert', v('trustee-vlek-1.vlek.der'), '--chain', v('cert_chain-vlek-milan.pem'), '--at', '2025-06-01T00:00:00Z', '--json'], t.io)).toBe(0);
    expect(JSON.parse(t.out()).claims.csp_id).toBe('CN=cc-us-east-2.amazonaws.com');
    const x = makeIO();
    expect(await runSnp([b64, '--cert', v('trustee-vlek-1.vlek.der'), '--at', '2026-01-01T00:00:00Z', '--json'], x.io)).toBe(1);
    expect(JSON.parse(x.out())).toMatchObject({ valid: false, code: 'ERR_SNP_CHAIN_INVALID', reason: 'expired' });
  });

  it('a debug guest fails without --allow-debug, passes with it', async () => {
    const a = makeIO();
    expect(await runSnp([v('gsg-1.report.bin'), '--cert', v('gsg-1.vcek.der'), '--at', '2022-10-01T00:00:00Z', '--json'], a.io)).toBe(1);
    expect(JSON.parse(a.out()).violations).toEqual([{ field: 'POLICY.DEBUG', expected: '0', actual: '1' }]);
    const b = makeIO();
    expect(await runSnp([v('gsg-1.report.bin'), '--cert', v('gsg-1.vcek.der'), '--at', '2022-10-01T00:00:00Z', '--allow-debug'], b.io)).toBe(0);
  });

  it('--measurement / --report-data / --policy report every violation', async () => {
    const pol = join(tmp, 'policy.json');
    writeFileSync(pol, JSON.stringify({ hostData: 'ff'.repeat(32), vmpl: 1, minTcb: { microcode: 100 } }));
    const t = makeIO();
    const code = await runSnp(
      [v('oak-2.report.bin'), '--cert', v('oak-2.vcek.der'), '--measurement', '00'.repeat(48), '--report-data', 'abcd', '--policy', pol, '--json'],
      t.io,
    );
    expect(code).toBe(1);
    const fields = JSON.parse(t.out()).violations.map((x: { field: string }) => x.field).sort();
    expect(fields).toEqual(['HOST_DATA', 'MEASUREMENT', 'REPORTED_TCB.microcode', 'REPORT_DATA', 'VMPL']);
    const ok = makeIO();
    expect(await runSnp([v('oak-2.report.bin'), '--cert', v('oak-2.vcek.der'), '--measurement', '00'.repeat(48), '--measurement', vecFile('oak-2.report.bin').subarray(0x90, 0xc0).reduce((s, b) => s + b.toString(16).padStart(2, '0'), '')], ok.io)).toBe(0);
  });

  it('--ark replaces the built-in roots: the Milan ARK cannot verify a Genoa report', async () => {
    const t = makeIO();
    expect(await runSnp([v('oak-2.report.bin'), '--cert', v('oak-2.vcek.der'), '--ark', v('ark-milan.pem'), '--json'], t.io)).toBe(1);
    expect(JSON.parse(t.out())).toMatchObject({ code: 'ERR_SNP_CHAIN_INVALID', reason: 'no_root' });
    const g = makeIO();
    expect(await runSnp([v('oak-2.report.bin'), '--cert', v('oak-2.vcek.der'), '--ark', v('ark-genoa.pem')], g.io)).toBe(0);
  });

  it('bad input is exit 1 with a code; bad usage is exit 2', async () => {
    const junk = join(tmp, 'junk.bin');
    writeFileSync(junk, new Uint8Array(0x4a0));
    const a = makeIO();
    expect(await runSnp([junk, '--cert', v('oak-2.vcek.der'), '--json'], a.io)).toBe(1);
    expect(JSON.parse(a.out())).toMatchObject({ valid: false, code: 'ERR_SNP_REPORT_INVALID', reason: 'version' });
    const b = makeIO();
    expect(await runSnp([v('oak-2.report.bin'), '--cert', v('oak-2.report.bin'), '--json'], b.io)).toBe(1);
    expect(JSON.parse(b.out()).code).toMatch(/^ERR_(INPUT_ENCODING|CERT_INVALID)$/);
    const c = makeIO();
    expect(await main(['verify', v('oak-2.report.bin'), '--cert', v('oak-2.vcek.der'), '--product', 'Venice'], c.io)).toBe(2);
    const d = makeIO();
    expect(await main(['verify', v('oak-2.report.bin'), '--cert', join(tmp, 'missing.der')], d.io)).toBe(2);
    const e = makeIO();
    expect(await main(['verify', v('oak-2.report.bin'), '--cert', v('oak-2.vcek.der'), '--at', 'yesterday'], e.io)).toBe(2);
    const pol = join(tmp, 'bad-policy.json');
    writeFileSync(pol, JSON.stringify({ measurment: 'ab' }));
    const f = makeIO();
    expect(await main(['verify', v('oak-2.report.bin'), '--cert', v('oak-2.vcek.der'), '--policy', pol], f.io)).toBe(2);
    const g = makeIO();
    expect(await main(['verify', v('oak-2.report.bin')], g.io)).toBe(2);
  });
});
