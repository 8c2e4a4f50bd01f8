/**
 * The mutator: generic byte mutations (bit flips, interesting bytes and integers, insert, delete,
 * duplicate, splice with another corpus entry, dictionary tokens), plus the structure-aware ones for
 * the target's format (structure.ts for CBOR and DER, json.ts for JSON). Each child gets 1 to 8
 * stacked mutations of its parent.
 */
import type { Rng } from './rng.js';
import { mutateStructure } from './structure.js';
import { mutateJson } from './json.js';
import { concatBytes } from '../../attestation/bytes.js';

export type InputFormat = 'cbor' | 'der' | 'json' | 'text' | 'bytes';

export interface MutateContext {
  format: InputFormat;
  maxLen: number;
  /** Other corpus entries, for splicing. */
  donors: readonly Uint8Array[];
  /** Tokens worth inserting (field names, magic values), as bytes. */
  dict: readonly Uint8Array[];
  /** The same tokens as text, for the JSON mutator. */
  dictText: readonly string[];
}

const INTERESTING8 = [0x00, 0x01, 0x02, 0x10, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x20, 0x3f, 0x40, 0x5f, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0x9f, 0xa0, 0xbf, 0xc0, 0xd2, 0xf4, 0xf5, 0xf6, 0xf7, 0xf9, 0xfa, 0xfb, 0xfe, 0xff];
const INTERESTING16 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x3ff, 0x400, 0x401, 0x7fff, 0x8000, 0xfffe, 0xffff];
const INTERESTING32 = [0, 1, 0x4a0, 0x7fff, 0x8000, 0xffff, 0x10000, 0x100000, 0x1000000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];


function writeInt(b: Uint8Array, at: number, v: number, width: 2 | 4, le: boolean): void {
  for (let i = 0; i < width; i++) {
    const byte = Math.floor(v / 2 ** (8 * i)) & 0xff;
    b[le ? at + i : at + width - 1 - i] = byte;
  }
}

/** One generic byte-level mutation. */
export function mutateBytes(rng: Rng, b: Uint8Array, ctx?: Pick<MutateContext, 'donors' | 'dict'>): Uint8Array {
  const n = b.length;
  const pos = () => rng.below(n);
  const span = () => Math.min(n, rng.chance(0.7) ? rng.range(1, 8) : rng.range(1, Math.max(1, n >> 2)));
  switch (n === 0 ? 6 : rng.below(16)) {
    case 0: {
      const out = b.slice();
      const i = pos();
      out[i] = out[i]! ^ (1 << rng.below(8));
      return out;
    }
    case 1: {
      const out = b.slice();
      out[pos()] = rng.pick(INTERESTING8);
      return out;
    }
    case 2: {
      const out = b.slice();
      out[pos()] = rng.below(256);
      return out;
    }
    case 3: {
      const out = b.slice();
      const i = pos();
      out[i] = (out[i]! + rng.range(-35, 35)) & 0xff;
      return out;
    }
    case 4: {
      if (n < 2) return b;
      const out = b.slice();
      writeInt(out, rng.below(n - 1), rng.pick(INTERESTING16), 2, rng.chance(0.5));
      return out;
    }
    case 5: {
      if (n < 4) return b;
      const out = b.slice();
      writeInt(out, rng.below(n - 3), rng.pick(INTERESTING32), 4, rng.chance(0.5));
      return out;
    }
    case 6: {
      // Insert random bytes, or one byte repeated.
      const i = rng.below(n + 1);
      const k = rng.chance(0.8) ? rng.range(1, 16) : rng.range(17, 512);
      const ins = rng.chance(0.5) ? rng.bytes(k) : new Uint8Array(k).fill(rng.pick(INTERESTING8));
      return concatBytes(b.subarray(0, i), ins, b.subarray(i));
    }
    case 7: {
      const i = pos();
      return concatBytes(b.subarray(0, i), b.subarray(Math.min(n, i + span())));
    }
    case 8: {
      // Duplicate a range in place.
      const i = pos();
      const k = span();
      return concatBytes(b.subarray(0, i + k), b.subarray(i, i + k), b.subarray(i + k));
    }
    case 9: {
      // Copy a range over another.
      const out = b.slice();
      const k = span();
      const from = rng.below(n - k + 1);
      const to = rng.below(n - k + 1);
      out.set(b.subarray(from, from + k), to);
      return out;
    }
    case 10:
      return b.subarray(0, rng.below(n));
    case 11:
    case 12: {
      // Splice with another corpus entry: a crossover or a chunk inserted.
      const d = ctx && ctx.donors.length > 0 ? rng.pick(ctx.donors) : b;
      if (rng.chance(0.5)) return concatBytes(b.subarray(0, rng.below(n + 1)), d.subarray(rng.below(d.length + 1)));
      const a = rng.below(d.length + 1);
      const e = Math.min(d.length, a + rng.range(1, 64));
      const i = rng.below(n + 1);
      return concatBytes(b.subarray(0, i), d.subarray(a, e), b.subarray(i));
    }
    case 13:
    case 14: {
      if (!ctx || ctx.dict.length === 0) return mutateBytes(rng, b);
      const t = rng.pick(ctx.dict);
      const i = rng.below(n + 1);
      if (rng.chance(0.5)) return concatBytes(b.subarray(0, i), t, b.subarray(i));
      const out = b.slice();
      out.set(t.subarray(0, Math.max(0, n - i)), Math.min(i, n));
      return out;
    }
    default: {
      // Swap two bytes.
      const out = b.slice();
      const i = pos();
      const j = pos();
      [out[i], out[j]] = [out[j]!, out[i]!];
      return out;
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: false });
const enc = new TextEncoder();

/** A child of `parent`: 1 to 8 stacked mutations, at most `maxLen` bytes. */
export function mutate(rng: Rng, parent: Uint8Array, ctx: MutateContext): Uint8Array {
  let b = parent;
  let rounds = 1;
  while (rounds < 8 && rng.chance(0.45)) rounds++;
  for (let r = 0; r < rounds; r++) {
    let next: Uint8Array | undefined;
    const structured = rng.chance(ctx.format === 'bytes' || ctx.format === 'text' ? 0 : 0.6);
    if (structured) {
      if (ctx.format === 'json') {
        const text = mutateJson(rng, utf8.decode(b), ctx.donors.length > 0 ? [utf8.decode(rng.pick(ctx.donors))] : [], ctx.dictText);
        if (text !== undefined) next = enc.encode(text);
      } else if (ctx.format === 'cbor' || ctx.format === 'der') {
        next = mutateStructure(rng, b, rng.chance(0.85) ? ctx.format : ctx.format === 'cbor' ? 'der' : 'cbor', ctx.donors, (g, x) => mutateBytes(g, x, ctx), ctx.dict);
      }
    }
    b = next ?? mutateBytes(rng, b, ctx);
    if (b.length > ctx.maxLen) b = b.subarray(0, ctx.maxLen);
  }
  return b === parent ? b.slice() : b;
}
