/**
 * 32-byte AES-256-GCM fields: the batched native path (fields packed once, one call per batch of
 * BATCH fields) against node:crypto's per-call createDecipheriv, and against the native ceiling (the
 * same EVP loop repeated in C with no JavaScript in between).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { FieldDecryptor, nativeGcmCeiling, packFields, type GcmField } from '../../native/gcm.js';
import { requireBinding } from '../../native/binding.js';
import { fmt, median } from './_stats.js';

const FIELD = 32;
const BATCH = 4096;
const AAD = Buffer.from('dataset:records/000123/salary#k1');

function makeFields(key: Buffer, n: number): GcmField[] {
  // Fields as they arrive after decoding a record batch: slices of one buffer.
  const blob = Buffer.alloc(n * (12 + FIELD + 16 + AAD.length));
  const out: GcmField[] = [];
  let o = 0;
  for (let i = 0; i < n; i++) {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(AAD);
    const ct = Buffer.concat([c.update(randomBytes(FIELD)), c.final()]);
    const tag = c.getAuthTag();
    const base = o;
    iv.copy(blob, o); o += 12;
    ct.copy(blob, o); o += FIELD;
    tag.copy(blob, o); o += 16;
    AAD.copy(blob, o); o += AAD.length;
    out.push({
      iv: blob.subarray(base, base + 12),
      ciphertext: blob.subarray(base + 12, base + 12 + FIELD),
      tag: blob.subarray(base + 12 + FIELD, base + 28 + FIELD),
      aad: blob.subarray(base + 28 + FIELD, o),
    });
  }
  return out;
}

function rate(fn: () => number, minMs = 400): number {
  // Repeat until at least minMs, report fields per second.
  let fields = 0;
  const t0 = process.hrtime.bigint();
  let el = 0;
  while (el < minMs * 1e6) {
    fields += fn();
    el = Number(process.hrtime.bigint() - t0);
  }
  return fields / (el / 1e9);
}

export async function main(): Promise<void> {
  requireBinding('the field-decrypt benchmark');
  const key = randomBytes(32);
  const fields = makeFields(key, BATCH);
  const dec = new FieldDecryptor();

  const batched = () => {
    const r = dec.decryptFields(key, fields);
    if (r.okCount !== BATCH) throw new Error('batch failed');
    return BATCH;
  };
  const perCall = () => {
    for (const f of fields) {
      const d = createDecipheriv('aes-256-gcm', key, f.iv, { authTagLength: 16 });
      d.setAAD(f.aad!);
      d.setAuthTag(f.tag);
      d.update(f.ciphertext);
      d.final();
    }
    return BATCH;
  };
  const packed = packFields(fields);
  const REPS = 16;
  const ceiling = () => {
    if (nativeGcmCeiling(key, packed, REPS) !== BATCH * REPS) throw new Error('ceiling failed');
    return BATCH * REPS;
  };

  for (const f of [batched, perCall, ceiling]) rate(f, 100); // warm-up
  const b: number[] = [];
  const n: number[] = [];
  const c: number[] = [];
  for (let round = 0; round < 5; round++) {
    b.push(rate(batched));
    n.push(rate(perCall));
    c.push(rate(ceiling));
  }
  const bm = median(b);
  const nm = median(n);
  const cm = median(c);
  console.log(`batches of ${BATCH} x ${FIELD}-byte fields with ${AAD.length}-byte AAD, median of 5 rounds`);
  console.log(`batched native (decryptFields): ${fmt(bm / 1e6, 2)} M fields/s`);
  console.log(`node per-call createDecipheriv: ${fmt(nm / 1e6, 2)} M fields/s`);
  console.log(`native ceiling (C loop):        ${fmt(cm / 1e6, 2)} M fields/s`);
  console.log(
    `RESULT field-decrypt fields_per_s=${fmt(bm, 0)} node_per_call_fields_per_s=${fmt(nm, 0)} native_ceiling_fields_per_s=${fmt(cm, 0)} vs_node=${fmt(bm / nm, 2)} vs_ceiling=${fmt(bm / cm, 2)}`,
  );
}
