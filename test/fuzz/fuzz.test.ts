/**
 * Hostile bytes (issue #14): every parser of untrusted input has a coverage-guided fuzz target
 * (scripts/fuzz/targets/), and CI runs each one briefly. Seconds per target: ENCLAVEKIT_FUZZ_SECONDS
 * (default 1; set e.g. 30 for a real campaign: `ENCLAVEKIT_FUZZ_SECONDS=30 npx vitest run test/fuzz`).
 * A finding (a throw that is not a ToolkitError, a hang, memory past the bound, a failed property)
 * fails the test with the saved input and the command that replays it.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Finding, TargetStats } from '../../scripts/fuzz/types.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECONDS = Number(process.env.ENCLAVEKIT_FUZZ_SECONDS ?? '1');
const JOBS = 2;

/** The parsers the issue names, by target. */
const REQUIRED = [
  'nitro-parse', // attestation/nitro/parse.ts
  'nitro-verify', // attestation/nitro/verify.ts (+ x509 path, policy)
  'snp-report', // attestation/sevsnp/abi.ts (+ verify)
  'snp-certtable', // attestation/sevsnp/certtable.ts
  'x509', // attestation/x509/*
  'amd-cert', // attestation/sevsnp/cert.ts (AMD certificates, CRLs)
  'cms', // enclave/cms.ts openCiphertextForRecipient
  'kms-sim-cms', // host/kms-sim/cms.ts (round trip with the enclave's parser)
  'cbor', // enclave/protocol/cbor.ts
  'frames', // enclave/protocol/frame.ts FrameDecoder
  'messages', // enclave/protocol/messages.ts validateMessage
  'field', // enclave/protocol/field.ts parseField / PackedFieldWriter
  'manifest', // enclave/protocol/manifest.ts parseManifest + seal.ts verifyManifestSeal
  'ledger', // enclave/protocol/seal.ts openLedger
  'query', // enclave/analytics/query.ts validateQuery
  'release-policy', // enclave/protocol/release-policy.ts
  'result', // enclave/protocol/result.ts
  'kms-server', // host/kms-sim/server.ts request handling
  'key-policy', // host/key-policy.ts parseKeyPolicy
  'evidence', // attestation/bytes.ts decodeEvidenceText, evidence.ts
  ...(existsSync(join(ROOT, 'scripts/fuzz/targets/eif.ts')) ? ['eif'] : []),
];

interface Report {
  targets: TargetStats[];
  findings: Omit<Finding, 'input'>[];
}

function runAll(dir: string): Promise<{ code: number | null; stdout: string; stderr: string; report: Report }> {
  return new Promise((resolve, reject) => {
    const out = join(dir, 'report.json');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'scripts/fuzz.ts', '--all', '--seconds', String(SECONDS), '--jobs', String(JOBS), '--findings', join(dir, 'findings'), '--json', out, '--quiet'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        resolve({ code, stdout, stderr, report: JSON.parse(readFileSync(out, 'utf8')) as Report });
      } catch (e) {
        reject(new Error(`the fuzz runner wrote no report (exit ${code}):\n${stderr}\n${stdout}`, { cause: e }));
      }
    });
  });
}

describe('fuzz targets (hostile bytes)', () => {
  it(
    `every parser of untrusted input survives ${SECONDS} s of coverage-guided fuzzing`,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'enclavekit-fuzz-ci-'));
      try {
        const { code, stdout, report } = await runAll(dir);
        const names = report.targets.map((t) => t.target);
        for (const r of REQUIRED) expect(names, `target ${r}`).toContain(r);
        const findings = report.findings.map((f) => `${f.target} ${f.kind} ${f.name}: ${f.message}\n  ${f.file}\n  replay: npm run fuzz -- ${f.target} --replay <file>`);
        expect(findings, findings.join('\n')).toEqual([]);
        for (const t of report.targets) {
          expect(t.execs, `${t.target} executions`).toBeGreaterThan(0);
          expect(t.coverage, `${t.target} coverage`).toBeGreaterThan(0);
          expect(stdout).toContain(`RESULT fuzz target=${t.target} execs=${t.execs} `);
        }
        expect(code).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    // Per target: worker start and setup (a few seconds at most) plus the fuzzing budget.
    (REQUIRED.length * (SECONDS + 8) * 1000) / JOBS + 60_000,
  );
});
