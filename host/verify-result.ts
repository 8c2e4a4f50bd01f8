/**
 * The host's checks on what a worker sends back. Two moments:
 *
 * - after `hello`: the worker's evidence verifies to a trusted root, carries our nonce and a public
 *   key, and its measurements are the expected ones. Only then do we send it a manifest.
 * - after `job_end`: the result's evidence verifies the same way, carries the job's nonce and
 *   `user_data = SHA-384(result bytes)`, comes from the same worker key as the hello evidence, and
 *   the decoded result is for our job, our dataset digest, our query and our record count.
 *
 * Simulator evidence verifies only when the caller passes the simulator root explicitly, and then
 * the result must say `platform: simulator`.
 */
import { AttestationPolicyError, ToolkitError, type PolicyViolation } from '../attestation/errors.js';
import { equalBytes, toHex } from '../attestation/bytes.js';
import { verifyNitro, verifyEvidence, SNP_REPORT_SIZE, type VerifiedNitroDocument } from '../attestation/index.js';
import { snpReportData } from '../attestation/sevsnp/binding.js';
import { decodeRefusal, decodeResult, queryDigest, sha384, type RefusalDocument, type ResultDocument } from '../enclave/protocol/index.js';

export interface Expectations {
  /** Expected PCR values by index (Nitro). */
  pcrs?: ReadonlyMap<number, Uint8Array>;
  /** Expected MEASUREMENT (SEV-SNP). */
  measurement?: Uint8Array;
  /** DER roots of a simulator, trusted only because the caller passed them. */
  simulatorRoots?: readonly Uint8Array[];
  /** DER ARKs of an SEV-SNP simulator, trusted only because the caller passed them. */
  snpSimulatorRoots?: readonly Uint8Array[];
  /** Verification time. */
  now: Date;
}

export interface VerifiedEvidence {
  format: 'nitro' | 'sev-snp';
  platform: 'nitro' | 'sev-snp' | 'simulator';
  /** PCRs (Nitro) as index -> hex; empty for SEV-SNP. */
  pcrs: Record<string, string>;
  /** MEASUREMENT hex (SEV-SNP), else undefined. */
  measurement?: string;
  publicKey?: Uint8Array;
}

export interface VerifiedResult {
  result: ResultDocument;
  resultDigest: Uint8Array;
  evidence: VerifiedEvidence;
}

function requireExpectations(x: Expectations): void {
  if ((x.pcrs === undefined || x.pcrs.size === 0) && x.measurement === undefined)
    throw new ToolkitError('ERR_CONFIG_INVALID', 'no expected PCRs or measurement: refusing to trust any image', { reason: 'no_expectations' });
}

function fromNitro(d: VerifiedNitroDocument): VerifiedEvidence {
  const pcrs: Record<string, string> = {};
  for (const [i, v] of d.pcrs) pcrs[String(i)] = toHex(v);
  const out: VerifiedEvidence = { format: 'nitro', platform: d.platform, pcrs };
  if (d.publicKey !== undefined) out.publicKey = d.publicKey;
  return out;
}

/** Which format: a Nitro document is COSE_Sign1 (a CBOR array, 0x84, or tagged 0xd2); an SNP report is not. */
function isNitro(evidence: Uint8Array): boolean {
  return evidence.length > 0 && (evidence[0] === 0x84 || evidence[0] === 0xd2);
}

/** SEV-SNP evidence from a worker is the 0x4A0-byte report followed by its certificate table. */
const SNP_REPORT_BYTES = SNP_REPORT_SIZE;

/**
 * Verify evidence against expectations plus exact `nonce`/`userData`/`publicKey` values.
 * `publicKey` is what the worker claims as its key (sent beside the evidence); Nitro evidence must
 * carry the same, SEV-SNP evidence must bind it in REPORT_DATA. Throws AttestationError /
 * AttestationPolicyError (all violations at once).
 */
export function verifyWorkerEvidence(
  evidence: Uint8Array,
  x: Expectations,
  bind: { nonce: Uint8Array; userData?: Uint8Array; publicKey?: Uint8Array },
): VerifiedEvidence {
  requireExpectations(x);
  if (isNitro(evidence)) {
    if (x.pcrs === undefined || x.pcrs.size === 0)
      throw new ToolkitError('ERR_CONFIG_INVALID', 'the worker sent Nitro evidence but only a SEV-SNP measurement is expected', { reason: 'no_expectations' });
    const pcrs: Record<string, Uint8Array> = {};
    for (const [i, v] of x.pcrs) pcrs[String(i)] = v;
    const d = verifyNitro(evidence, {
      now: x.now,
      ...(x.simulatorRoots ? { simulatorRoots: x.simulatorRoots } : {}),
      policy: {
        pcrs,
        nonce: bind.nonce,
        ...(bind.userData ? { userData: bind.userData } : {}),
        ...(bind.publicKey ? { publicKey: bind.publicKey } : {}),
      },
    });
    const v = fromNitro(d);
    if (v.publicKey === undefined || v.publicKey.length === 0)
      throw new AttestationPolicyError([{ field: 'public_key', expected: 'the worker recipient key', actual: '(absent)' }]);
    return v;
  }
  if (x.measurement === undefined)
    throw new ToolkitError('ERR_CONFIG_INVALID', 'the worker sent SEV-SNP evidence but no MEASUREMENT is expected (--expect-measurement)', { reason: 'no_expectations' });
  if (bind.publicKey === undefined)
    throw new AttestationPolicyError([{ field: 'public_key', expected: 'the worker recipient key beside SEV-SNP evidence', actual: '(absent)' }]);
  if (evidence.length < SNP_REPORT_BYTES)
    throw new ToolkitError('ERR_SNP_REPORT_INVALID', `SEV-SNP evidence of ${evidence.length} bytes is shorter than a report`, { reason: 'length' });
  const v = verifyEvidence(
    { evidence: evidence.subarray(0, SNP_REPORT_BYTES), certs: { certTable: evidence.subarray(SNP_REPORT_BYTES) }, format: 'sev-snp' },
    {
      now: x.now,
      expect: 'sev-snp',
      snp: {
        ...(x.snpSimulatorRoots ? { simulatorRoots: x.snpSimulatorRoots } : {}),
        policy: { measurement: x.measurement, reportData: snpReportData({ publicKey: bind.publicKey, userData: bind.userData ?? null, nonce: bind.nonce }) },
      },
    },
  );
  const m = v.measurements.get('MEASUREMENT');
  return { format: 'sev-snp', platform: v.platform, pcrs: {}, ...(m ? { measurement: toHex(m) } : {}), publicKey: bind.publicKey };
}

export interface ResultBinding {
  jobId: string;
  datasetId: string;
  datasetDigest: Uint8Array;
  query: Record<string, unknown>;
  records: number;
  /** The nonce sent in job_start. */
  nonce: Uint8Array;
  /** The public key from the hello evidence: the same worker must sign the result. */
  publicKey: Uint8Array;
  /** SHA-384 of the sealed manifest body the job ran on, and the owner's key ARNs in it. */
  sealDigest: Uint8Array;
  keyArns: readonly string[];
}

/** Verify a result frame; throws on the first failed check (policy violations listed together). */
export function verifyResult(resultBytes: Uint8Array, evidence: Uint8Array, x: Expectations, b: ResultBinding): VerifiedResult {
  const resultDigest = sha384(resultBytes);
  const ev = verifyWorkerEvidence(evidence, x, { nonce: b.nonce, userData: resultDigest, publicKey: b.publicKey });
  const result = decodeResult(resultBytes);
  const v: PolicyViolation[] = [];
  if (result.jobId !== b.jobId) v.push({ field: 'result.jobId', expected: b.jobId, actual: result.jobId });
  if (result.datasetId !== b.datasetId) v.push({ field: 'result.datasetId', expected: b.datasetId, actual: result.datasetId });
  if (!equalBytes(result.datasetDigest, b.datasetDigest))
    v.push({ field: 'result.datasetDigest', expected: toHex(b.datasetDigest), actual: toHex(result.datasetDigest) });
  const qd = queryDigest(b.query);
  if (!equalBytes(result.queryDigest, qd)) v.push({ field: 'result.queryDigest', expected: toHex(qd), actual: toHex(result.queryDigest) });
  if (result.counts.records !== b.records) v.push({ field: 'result.counts.records', expected: String(b.records), actual: String(result.counts.records) });
  if (!equalBytes(result.sealDigest, b.sealDigest)) v.push({ field: 'result.sealDigest', expected: toHex(b.sealDigest), actual: toHex(result.sealDigest) });
  const wantArns = [...new Set(b.keyArns)].sort().join(',');
  if (result.keyArns.join(',') !== wantArns) v.push({ field: 'result.keyArns', expected: wantArns, actual: result.keyArns.join(',') });
  const wantPlatform = ev.platform === 'simulator' ? 'simulator' : ev.format;
  if (result.platform !== wantPlatform) v.push({ field: 'result.platform', expected: wantPlatform, actual: result.platform });
  if (v.length > 0)
    throw new ToolkitError('ERR_RESULT_INVALID', `result does not match the job: ${v.map((x) => `${x.field} expected ${x.expected}, got ${x.actual}`).join('; ')}`, {
      reason: 'binding',
    });
  return { result, resultDigest, evidence: ev };
}

export interface VerifiedRefusal {
  refusal: RefusalDocument;
  refusalDigest: Uint8Array;
  evidence: VerifiedEvidence;
}

/** Verify an attested refusal: same evidence checks as a result, and it must be for our job. */
export function verifyRefusal(
  refusalBytes: Uint8Array,
  evidence: Uint8Array,
  x: Expectations,
  b: Pick<ResultBinding, 'jobId' | 'datasetId' | 'query' | 'nonce' | 'publicKey'>,
): VerifiedRefusal {
  const refusalDigest = sha384(refusalBytes);
  const ev = verifyWorkerEvidence(evidence, x, { nonce: b.nonce, userData: refusalDigest, publicKey: b.publicKey });
  const refusal = decodeRefusal(refusalBytes);
  const v: PolicyViolation[] = [];
  if (refusal.jobId !== b.jobId) v.push({ field: 'refusal.jobId', expected: b.jobId, actual: refusal.jobId });
  if (refusal.datasetId !== b.datasetId) v.push({ field: 'refusal.datasetId', expected: b.datasetId, actual: refusal.datasetId });
  const qd = queryDigest(b.query);
  if (!equalBytes(refusal.queryDigest, qd)) v.push({ field: 'refusal.queryDigest', expected: toHex(qd), actual: toHex(refusal.queryDigest) });
  if (v.length > 0)
    throw new ToolkitError('ERR_RESULT_INVALID', `refusal does not match the job: ${v.map((x) => `${x.field} expected ${x.expected}, got ${x.actual}`).join('; ')}`, { reason: 'binding' });
  return { refusal, refusalDigest, evidence: ev };
}
