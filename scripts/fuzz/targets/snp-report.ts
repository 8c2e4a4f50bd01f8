/**
 * The SEV-SNP report: parseSnpReport (sizes, versions, must-be-zero ranges, signature slots), then the
 * whole verifySevSnp with the report's own VCEK/VLEK at a time inside its validity (real reports under
 * AMD's pinned ARKs, simulated ones under the simulator ARK), so a mutated report that still parses
 * reaches the product, chain, signature, binding and policy checks. Simulated reports are verified a
 * second time re-signed with the simulated VCEK/VLEK, so mutated claims get past the signature.
 */
import { KeyObject, sign } from 'node:crypto';
import { detectEvidenceFormat, parseSnpReport, toHex, verifySevSnp, type SnpCerts, type SnpPolicy } from '../../../attestation/index.js';
import { simSnp, snpVectors } from '../seeds.js';
import type { FuzzTarget } from '../types.js';
import { runAllSync } from './_util.js';

interface Subject {
  report: Uint8Array;
  vlek: boolean;
  certs: SnpCerts;
  at: Date;
  simulatorRoots: Uint8Array[];
  /** The simulated VCEK/VLEK's private key: a mutated simulated report is also verified re-signed. */
  key?: KeyObject;
}

/** Sign bytes 0x000..0x29F again and put r, s little-endian into their 72-byte slots (as the firmware does). */
function resign(report: Uint8Array, key: KeyObject): Uint8Array {
  const b = report.slice();
  b.fill(0, 0x2a0, 0x330);
  const sig = sign('sha384', b.subarray(0, 0x2a0), { key, dsaEncoding: 'ieee-p1363' });
  for (let i = 0; i < 48; i++) {
    b[0x2a0 + i] = sig[47 - i]!;
    b[0x2e8 + i] = sig[95 - i]!;
  }
  return b;
}
interface Ctx {
  subjects: Subject[];
  byMeasurement: Map<string, Subject>;
  byChip: Map<string, Subject>;
}

const POLICIES: (SnpPolicy | undefined)[] = [
  undefined,
  { guestPolicy: { allowDebug: true, allowMigrationAgent: true } },
  { guestPolicy: { allowDebug: true, requireSingleSocket: true, minAbi: { major: 1, minor: 0 } }, minTcb: { bootloader: 1, tee: 0, snp: 8, microcode: 100, fmc: 0 }, minLaunchTcb: { microcode: 1 }, minFirmware: { major: 1, minor: 55, build: 21 }, minBuild: 3, minGuestSvn: 0, vmpl: [0, 1], requireCommittedEqualsCurrent: true, reportData: '00', hostData: '00'.repeat(32), platformInfo: { requireEcc: true, allowTsme: false } },
];

const target: FuzzTarget<Ctx> = {
  name: 'snp-report',
  description: 'parseSnpReport and verifySevSnp (product, AMD chain, ECDSA signature, TCB/chip binding, policy) on mutated real and simulated reports',
  covers: ['attestation/sevsnp/abi.ts', 'attestation/sevsnp/verify.ts', 'attestation/sevsnp/policy.ts', 'attestation/sevsnp/cert.ts', 'attestation/evidence.ts'],
  format: 'bytes',
  maxLen: 0x4a0 + 64,
  async setup() {
    const subjects: Subject[] = snpVectors().map((v) => ({ report: v.report, vlek: v.kind === 'vlek', certs: v.kind === 'vlek' ? { vlek: v.leaf } : { vcek: v.leaf }, at: v.at, simulatorRoots: [] }));
    const sim = await simSnp();
    const c = sim.chain;
    subjects.push({ report: sim.vcekReport, vlek: false, certs: { vcek: c.vcek.der, ask: c.ask.der }, at: sim.at, simulatorRoots: [c.ark.der], key: KeyObject.from(c.vcek.privateKey) });
    subjects.push({ report: sim.vlekReport, vlek: true, certs: { vlek: c.vlek.der, asvk: c.asvk.der, ark: c.ark.der }, at: sim.at, simulatorRoots: [c.ark.der], key: KeyObject.from(c.vlek.privateKey) });
    const byMeasurement = new Map<string, Subject>();
    const byChip = new Map<string, Subject>();
    for (const s of subjects) {
      byMeasurement.set(toHex(s.report.subarray(0x90, 0xc0)) + (s.vlek ? 'L' : 'C'), s);
      byChip.set(toHex(s.report.subarray(0x1a0, 0x1e0)), s);
    }
    return { subjects, byMeasurement, byChip };
  },
  seeds: (ctx) => ctx.subjects.map((s) => s.report),
  run(input, ctx) {
    detectEvidenceFormat(input);
    const r = parseSnpReport(input);
    const vlek = r.signingKey === 'VLEK';
    const s =
      ctx.byMeasurement.get(toHex(r.measurement) + (vlek ? 'L' : 'C')) ??
      ctx.byChip.get(toHex(r.chipId)) ??
      ctx.subjects.find((x) => x.vlek === vlek)!;
    const opts = { now: s.at, cache: false as const, simulatorRoots: s.simulatorRoots, policy: POLICIES[input[0x50]! % POLICIES.length] };
    // A simulated report is also checked signed again, so that its mutated fields reach the binding
    // and policy checks instead of stopping at the signature.
    runAllSync([() => verifySevSnp(input, s.certs, opts), ...(s.key ? [() => verifySevSnp(resign(input, s.key!), s.certs, opts)] : [])]);
  },
};
export default target;
