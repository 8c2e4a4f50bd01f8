/**
 * The encrypted field format `ekf1.<keyRef>.<iv>.<ciphertext||tag>` (enclave/protocol/field.ts):
 * parseField and PackedFieldWriter.parse, which promises "exactly the checks of parseField, in the
 * same order, with the same errors" (differential check: same verdict, same reason, same bytes), and
 * the writer's additional-data encoding against fieldAad.
 */
import { PackedFieldWriter, aadPart, aadPrefix, fieldAad, parseField } from '../../../enclave/protocol/field.js';
import { ToolkitError } from '../../../attestation/errors.js';
import { formatField } from '../../../enclave/protocol/field.js';
import { utf8 } from '../seeds.js';
import { FuzzInvariantError, type FuzzTarget } from '../types.js';

const text = new TextDecoder('utf-8', { fatal: false });

function verdict(fn: () => void): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof ToolkitError) return `${e.code}/${e.reason}`;
    throw e;
  }
}

const eq = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

const target: FuzzTarget = {
  name: 'field',
  description: 'parseField vs PackedFieldWriter.parse (same verdicts, reasons and bytes) and the packed AAD vs fieldAad',
  covers: ['enclave/protocol/field.ts'],
  format: 'text',
  maxLen: 8192,
  dict: ['ekf1', 'ekf1.', '.', 'k0', 'AAAAAAAAAAAAAAAA', '==', '-', '_', '+', '/'],
  seeds: () => [
    utf8(formatField('k0', new Uint8Array(12).fill(1), new Uint8Array(20).fill(2))),
    utf8(formatField('key_ref-9', new Uint8Array(12).fill(0xfe), new Uint8Array(16).fill(0xff))),
    utf8(formatField('A'.repeat(64), new Uint8Array(12), new Uint8Array(301).fill(7))),
  ],
  run(input) {
    const s = text.decode(input);
    let parsed: ReturnType<typeof parseField> | undefined;
    const a = verdict(() => {
      parsed = parseField(s);
    });
    // A fresh writer: its key-reference cache would make each execution depend on the one before.
    const writer = new PackedFieldWriter();
    const b = verdict(() => writer.parse(s));
    if (a !== b) throw new FuzzInvariantError(`parseField says ${a}, PackedFieldWriter.parse says ${b}`);
    if (parsed !== undefined) {
      const iv = writer.buf.subarray(writer.ivOff, writer.ivOff + 12);
      const body = writer.buf.subarray(writer.bodyOff, writer.bodyOff + writer.bodyLen);
      const want = new Uint8Array(parsed.ciphertext.length + 16);
      want.set(parsed.ciphertext);
      want.set(parsed.tag, parsed.ciphertext.length);
      if (writer.keyRef !== parsed.keyRef || !eq(iv, parsed.iv) || !eq(body, want)) throw new FuzzInvariantError('PackedFieldWriter.parse wrote other bytes than parseField returned');
      // The record id is the input itself (any text), the dataset and path fixed.
      const rid = s.slice(0, 256);
      const start = writer.aad(aadPrefix('ds-1'), rid, aadPart('a.b'), parsed.keyRef);
      if (!eq(writer.buf.subarray(start, writer.pos), fieldAad('ds-1', rid, 'a.b', parsed.keyRef))) throw new FuzzInvariantError('PackedFieldWriter.aad differs from fieldAad');
    }
  },
};
export default target;
