/**
 * The GHCB certificate table that the extended report (SNP_GET_EXT_REPORT, configfs-tsm `auxblob`)
 * carries next to a report: 24-byte entries `{GUID[16], u32le offset, u32le length}` ended by an
 * all-zero entry, offsets counted from the start of the table, DER certificates after it
 * (sev-snp.md §4.1, GHCB spec #56421). The simulator emits the same, so simulated evidence is
 * `report || table`, exactly what a real guest gets, and verifies with nothing else.
 */
import { fromHex } from '../../attestation/bytes.js';

export const SNP_CERT_GUID = Object.freeze({
  VCEK: '63da758d-e664-4564-adc5-f4b93be8accd',
  VLEK: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
  /** ASK, also used for the ASVK. */
  ASK: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  ARK: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
});

export type SnpCertTableEntry = { guid: keyof typeof SNP_CERT_GUID; der: Uint8Array };

export function buildSnpCertTable(entries: readonly SnpCertTableEntry[]): Uint8Array {
  const header = (entries.length + 1) * 24;
  let total = header;
  for (const e of entries) total += e.der.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  let off = header;
  entries.forEach((e, i) => {
    out.set(fromHex(SNP_CERT_GUID[e.guid].replace(/-/g, '')), i * 24);
    dv.setUint32(i * 24 + 16, off, true);
    dv.setUint32(i * 24 + 20, e.der.length, true);
    out.set(e.der, off);
    off += e.der.length;
  });
  return out;
}
