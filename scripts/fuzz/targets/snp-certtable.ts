/**
 * The extended-report certificate table (GHCB MSG_REPORT_REQ `certs`, configfs-tsm `auxblob`):
 * parseSnpCertTable, then verifySevSnp with the table as the only certificate source, so the
 * certificates found in it go through the AMD certificate parser and the chain rules.
 */
import { buildSnpCertTable, parseSnpCertTable, verifySevSnp } from '../../../attestation/index.js';
import { pemCerts, snpVectors, type SnpVector } from '../seeds.js';
import type { FuzzTarget } from '../types.js';
import { createHash } from 'node:crypto';

interface Ctx {
  vectors: SnpVector[];
  byLeaf: Map<string, SnpVector>;
  tables: Uint8Array[];
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const target: FuzzTarget<Ctx> = {
  name: 'snp-certtable',
  description: 'parseSnpCertTable, then verifySevSnp taking every certificate from the table',
  covers: ['attestation/sevsnp/certtable.ts', 'attestation/sevsnp/cert.ts', 'attestation/sevsnp/verify.ts'],
  format: 'der',
  maxLen: 16 * 1024,
  setup() {
    const vectors = snpVectors();
    const byLeaf = new Map(vectors.map((v) => [sha(v.leaf), v]));
    const tables: Uint8Array[] = [];
    for (const v of vectors) {
      const p = v.product.toLowerCase();
      const inter = pemCerts(`sev-snp/${v.kind === 'vlek' ? 'asvk' : 'ask'}-${p}.pem`)[0]!;
      const ark = pemCerts(`sev-snp/ark-${p}.pem`)[0]!;
      tables.push(buildSnpCertTable(v.kind === 'vlek' ? { vlek: v.leaf, ask: inter, ark } : { vcek: v.leaf, ask: inter, ark, cpuidEax: 0x00a00f11 }));
    }
    const v0 = vectors[0]!;
    tables.push(buildSnpCertTable({ vcek: v0.leaf }));
    return { vectors, byLeaf, tables };
  },
  seeds: (ctx) => ctx.tables,
  run(input, ctx) {
    const t = parseSnpCertTable(input);
    const leaf = t.vcek ?? t.vlek;
    const v = (leaf && ctx.byLeaf.get(sha(leaf))) ?? ctx.vectors[input.length % ctx.vectors.length]!;
    verifySevSnp(v.report, { certTable: input }, { now: v.at, cache: false, policy: { guestPolicy: { allowDebug: true } } });
  },
};
export default target;
