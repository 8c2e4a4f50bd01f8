/** Loader for the real SEV-SNP vectors in test/vectors/sev-snp (see SOURCE.md there). */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const VEC_DIR = fileURLToPath(new URL('../vectors/sev-snp/', import.meta.url));

export interface SnpVector {
  id: string;
  report: Uint8Array;
  leaf: Uint8Array;
  leafPath: string;
  reportPath: string;
  kind: 'vcek' | 'vlek';
  product: 'Milan' | 'Genoa' | 'Turin';
  version: number;
  /** A time inside every certificate's validity: the leaf's notBefore plus a day. */
  at: Date;
  meta: Record<string, any>;
}

export function loadVectors(): SnpVector[] {
  const index = JSON.parse(readFileSync(VEC_DIR + 'index.json', 'utf8')) as { vectors: { id: string }[] };
  return index.vectors.map(({ id }) => {
    const meta = JSON.parse(readFileSync(`${VEC_DIR}${id}.json`, 'utf8'));
    const leafPath = ['vcek.der', 'vcek.pem', 'vlek.der'].map((e) => `${VEC_DIR}${id}.${e}`).find((p) => existsSync(p))!;
    return {
      id,
      report: new Uint8Array(readFileSync(`${VEC_DIR}${id}.report.bin`)),
      reportPath: `${VEC_DIR}${id}.report.bin`,
      leaf: new Uint8Array(readFileSync(leafPath)),
      leafPath,
      kind: leafPath.includes('.vlek.') ? 'vlek' : 'vcek',
      product: meta.product,
      version: meta.report_version,
      at: new Date(new Date(meta.endorsement_cert.not_before).getTime() + 86_400_000),
      meta,
    };
  });
}

export const vecFile = (name: string) => new Uint8Array(readFileSync(VEC_DIR + name));
