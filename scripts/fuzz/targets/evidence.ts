/**
 * Evidence as it arrives at the CLI and the host (attestation/bytes.ts decodeEvidenceText: raw, hex,
 * base64 or PEM-armoured; evidence.ts detectEvidenceFormat; the SNP `report || cert table` split).
 */
import { decodeEvidenceText, detectEvidenceFormat, parseSnpCertTable } from '../../../attestation/index.js';
import { splitSnpEvidence } from '../../../enclave/platform/sev-snp-binding.js';
import { nitroVectors, snpVectors, utf8 } from '../seeds.js';
import type { FuzzTarget } from '../types.js';
import { runAllSync } from './_util.js';

const target: FuzzTarget = {
  name: 'evidence',
  description: 'decodeEvidenceText (raw/hex/base64/PEM), detectEvidenceFormat, splitSnpEvidence + parseSnpCertTable',
  covers: ['attestation/bytes.ts', 'attestation/evidence.ts', 'enclave/platform/sev-snp-binding.ts'],
  format: 'text',
  maxLen: 16 * 1024,
  dict: ['-----BEGIN ', '-----END ', 'ATTESTATION DOCUMENT-----', '=', '==', '\n', '\r\n', ' ', '0x'],
  seeds() {
    const n = nitroVectors()[0]!.bytes;
    const r = snpVectors()[0]!.report;
    return [
      n,
      utf8(Buffer.from(n).toString('base64')),
      utf8(Buffer.from(n).toString('hex')),
      utf8(`-----BEGIN ATTESTATION-----\n${Buffer.from(n).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ATTESTATION-----\n`),
      utf8(Buffer.from(r).toString('base64url')),
      r,
    ];
  },
  run(input) {
    const b = decodeEvidenceText(input);
    runAllSync([
      () => detectEvidenceFormat(b),
      () => {
        if (b.length > 0x4a0) parseSnpCertTable(splitSnpEvidence(b).certTable);
      },
    ]);
  },
};
export default target;
