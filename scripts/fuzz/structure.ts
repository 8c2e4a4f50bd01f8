/**
 * Structure-aware mutation for CBOR and DER/BER: a tolerant walker that finds every item's head
 * (descending into byte strings, OCTET STRINGs and BIT STRINGs that hold CBOR or DER themselves,
 * e.g. a certificate inside a Nitro `cabundle` entry, or the COSE payload), and edits that either lie
 * about one length on purpose or change an item and rewrite every enclosing length so the rest of
 * the input stays well-formed and the parser gets past its framing checks to the semantic ones.
 */
import type { Rng } from './rng.js';
import { concatBytes } from '../../attestation/bytes.js';

export interface SNode {
  /** `frame`: the 4-byte big-endian length before a frame's CBOR body. */
  kind: 'cbor' | 'der' | 'frame';
  start: number;
  /** CBOR: the head. DER: tag byte + length bytes. */
  headLen: number;
  /** Offset after the item (after the break / end-of-contents for indefinite lengths). */
  end: number;
  /** What the head's argument means: the content's byte length, an item count, a value, nothing. */
  len: 'bytes' | 'count' | 'value' | 'none';
  /** CBOR major type (0..7) or the DER tag byte. */
  major: number;
  /** CBOR additional info (unused for DER). */
  ai: number;
  /** The argument / DER length; -1 for indefinite. */
  arg: number;
  children: SNode[];
  parent: SNode | undefined;
}

const MAX_NODES = 6000;
const MAX_DEPTH = 24;

class Walk {
  nodes: SNode[] = [];
  constructor(readonly b: Uint8Array) {}
  full(): boolean {
    return this.nodes.length >= MAX_NODES;
  }
}

/** Thrown (not an Error: no stack to capture) when the bytes stop being a well-formed item. */
const MALFORMED = Symbol('malformed');
function fail(): never {
  throw MALFORMED;
}

// ---------------------------------------------------------------------------------------------
// CBOR

function cborItem(w: Walk, pos: number, limit: number, depth: number, parent: SNode | undefined): SNode {
  const b = w.b;
  if (pos >= limit || depth > MAX_DEPTH || w.full()) fail();
  const ib = b[pos]!;
  const major = ib >> 5;
  const ai = ib & 0x1f;
  let arg: number;
  let p = pos + 1;
  if (ai < 24) arg = ai;
  else if (ai === 31) arg = -1;
  else if (ai <= 27) {
    const n = 1 << (ai - 24);
    if (p + n > limit) fail();
    arg = 0;
    for (let i = 0; i < n; i++) arg = arg * 256 + b[p + i]!;
    p += n;
  } else fail();
  const node: SNode = { kind: 'cbor', start: pos, headLen: p - pos, end: -1, len: 'none', major, ai, arg, children: [], parent };
  switch (major) {
    case 0:
    case 1:
      if (arg < 0) fail();
      node.len = 'value';
      node.end = p;
      break;
    case 2:
    case 3:
      node.len = 'bytes';
      if (arg < 0) {
        // Indefinite string: chunks until a break.
        for (;;) {
          if (p >= limit) fail();
          if (b[p] === 0xff) {
            node.end = p + 1;
            break;
          }
          const c = cborItem(w, p, limit, depth + 1, node);
          node.children.push(c);
          p = c.end;
        }
      } else {
        if (arg > limit - p) fail();
        node.end = p + arg;
        if (major === 2 && arg >= 2) nested(w, node, p, node.end, depth);
      }
      break;
    case 4:
    case 5: {
      node.len = 'count';
      const per = major === 5 ? 2 : 1;
      if (arg >= 0) {
        if (arg * per > limit - p) fail();
        for (let i = 0; i < arg * per; i++) {
          const c = cborItem(w, p, limit, depth + 1, node);
          node.children.push(c);
          p = c.end;
        }
      } else {
        for (;;) {
          if (p >= limit) fail();
          if (b[p] === 0xff) {
            p++;
            break;
          }
          const c = cborItem(w, p, limit, depth + 1, node);
          node.children.push(c);
          p = c.end;
        }
      }
      node.end = p;
      break;
    }
    case 6: {
      node.len = 'value';
      const c = cborItem(w, p, limit, depth + 1, node);
      node.children.push(c);
      node.end = c.end;
      break;
    }
    default:
      if (ai === 31) fail();
      node.len = ai < 24 ? 'none' : 'value';
      node.end = p;
  }
  w.nodes.push(node);
  return node;
}

// ---------------------------------------------------------------------------------------------
// DER / BER

function derItem(w: Walk, pos: number, limit: number, depth: number, parent: SNode | undefined): SNode {
  const b = w.b;
  if (pos + 2 > limit || depth > MAX_DEPTH || w.full()) fail();
  const tag = b[pos]!;
  if ((tag & 0x1f) === 0x1f) fail();
  let p = pos + 1;
  const l0 = b[p++]!;
  let arg: number;
  if (l0 < 0x80) arg = l0;
  else if (l0 === 0x80) arg = -1;
  else {
    const n = l0 & 0x7f;
    if (n > 4 || p + n > limit) fail();
    arg = 0;
    for (let i = 0; i < n; i++) arg = arg * 256 + b[p + i]!;
    p += n;
  }
  const node: SNode = { kind: 'der', start: pos, headLen: p - pos, end: -1, len: 'bytes', major: tag, ai: 0, arg, children: [], parent };
  const constructed = (tag & 0x20) !== 0;
  if (arg < 0) {
    if (!constructed) fail();
    for (;;) {
      if (p + 2 > limit) fail();
      if (b[p] === 0 && b[p + 1] === 0) {
        node.end = p + 2;
        break;
      }
      const c = derItem(w, p, limit, depth + 1, node);
      node.children.push(c);
      p = c.end;
    }
  } else {
    if (arg > limit - p) fail();
    node.end = p + arg;
    if (constructed) {
      let q = p;
      while (q < node.end) {
        const c = derItem(w, q, node.end, depth + 1, node);
        node.children.push(c);
        q = c.end;
      }
    } else if (tag === 0x04 && arg >= 2) nested(w, node, p, node.end, depth);
    else if (tag === 0x03 && arg >= 3) nested(w, node, p + 1, node.end, depth);
  }
  w.nodes.push(node);
  return node;
}

/** Content of a byte string that is itself one CBOR or DER item: walk it too. */
function nested(w: Walk, node: SNode, from: number, to: number, depth: number): void {
  const before = w.nodes.length;
  for (const kind of ['der', 'cbor'] as const) {
    try {
      const c = kind === 'der' ? derItem(w, from, to, depth + 1, node) : cborItem(w, from, to, depth + 1, node);
      if (c.end === to) {
        node.children.push(c);
        return;
      }
    } catch {
      // not this kind
    }
    w.nodes.length = before;
  }
}

const walked = new WeakMap<Uint8Array, { kind: string; nodes: SNode[] }>();

/** Every item found in `b`, innermost first within each subtree. Tolerant: stops at the first malformation. Cached per buffer. */
export function walk(b: Uint8Array, kind: 'cbor' | 'der'): SNode[] {
  const hit = walked.get(b);
  if (hit !== undefined && hit.kind === kind) return hit.nodes;
  const nodes = walkUncached(b, kind);
  walked.set(b, { kind, nodes });
  return nodes;
}

function walkUncached(b: Uint8Array, kind: 'cbor' | 'der'): SNode[] {
  const w = new Walk(b);
  let pos = 0;
  // A run of top-level items (a frame stream, a record batch); stop at the first one that fails.
  while (pos < b.length && !w.full()) {
    const mark = w.nodes.length;
    try {
      // Frames: a 4-byte big-endian length before each CBOR body.
      const flen = b.length - pos > 4 && b[pos] === 0 ? (b[pos + 1]! << 16) | (b[pos + 2]! << 8) | b[pos + 3]! : -1;
      if (kind === 'cbor' && flen > 0 && flen <= b.length - pos - 4) {
        const frame: SNode = { kind: 'frame', start: pos, headLen: 4, end: pos + 4 + flen, len: 'bytes', major: 0, ai: 0, arg: flen, children: [], parent: undefined };
        frame.children.push(cborItem(w, pos + 4, frame.end, 0, frame));
        w.nodes.push(frame);
        pos = frame.end;
        continue;
      }
      const n = kind === 'cbor' ? cborItem(w, pos, b.length, 0, undefined) : derItem(w, pos, b.length, 0, undefined);
      pos = n.end;
    } catch {
      w.nodes.length = mark;
      break;
    }
  }
  return w.nodes;
}

// ---------------------------------------------------------------------------------------------
// Encoders

export function cborHead(major: number, arg: number | bigint, width?: 0 | 1 | 2 | 4 | 8): Uint8Array {
  const v = BigInt(arg);
  const m = major << 5;
  const w = width ?? (v < 24n ? 0 : v < 0x100n ? 1 : v < 0x10000n ? 2 : v < 0x100000000n ? 4 : 8);
  if (w === 0) return Uint8Array.of(m | Number(v & 0x1fn));
  const out = new Uint8Array(1 + w);
  out[0] = m | (24 + Math.log2(w));
  for (let i = 0; i < w; i++) out[w - i] = Number((v >> BigInt(8 * i)) & 0xffn);
  return out;
}

export function derHead(tag: number, len: number, form: 'min' | 'long1' | 'long2' | 'long4' | 'indef' = 'min'): Uint8Array {
  if (form === 'indef') return Uint8Array.of(tag, 0x80);
  let n = form === 'long1' ? 1 : form === 'long2' ? 2 : form === 'long4' ? 4 : len < 0x80 ? 0 : len < 0x100 ? 1 : len < 0x10000 ? 2 : len < 0x1000000 ? 3 : 4;
  if (n === 0) return Uint8Array.of(tag, len);
  while (n < 4 && len >= 2 ** (8 * n)) n++;
  const out = new Uint8Array(2 + n);
  out[0] = tag;
  out[1] = 0x80 | n;
  for (let i = 0; i < n; i++) out[1 + n - i] = Math.floor(len / 2 ** (8 * i)) & 0xff;
  return out;
}

function u32be(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}


/**
 * Replace `b[a, e)` with `rep`, then rewrite the length of `from` and of every ancestor whose head
 * carries a byte length, so all of them still frame exactly their (edited) content.
 */
export function spliceFix(b: Uint8Array, a: number, e: number, rep: Uint8Array, from: SNode | undefined): Uint8Array {
  let out = concatBytes(b.subarray(0, a), rep, b.subarray(e));
  let delta = rep.length - (e - a);
  for (let n = from; n !== undefined; n = n.parent) {
    if (n.len !== 'bytes' || n.arg < 0 || n.end < 0) continue;
    const contentStart = n.start + n.headLen;
    const newLen = n.end + delta - contentStart;
    if (newLen < 0) return out;
    const head = n.kind === 'cbor' ? cborHead(n.major, newLen) : n.kind === 'der' ? derHead(n.major, newLen) : u32be(newLen);
    out = concatBytes(out.subarray(0, n.start), head, out.subarray(contentStart));
    delta += head.length - n.headLen;
  }
  return out;
}

/** Replace `b[a, e)` inside `parent` (whose count changes by `countDelta`), rebuilding its head. */
function replaceInContainer(b: Uint8Array, parent: SNode, a: number, e: number, rep: Uint8Array, countDelta: number): Uint8Array | undefined {
  const cs = parent.start + parent.headLen;
  const content = concatBytes(b.subarray(cs, a), rep, b.subarray(e, parent.end));
  let head: Uint8Array;
  if (parent.arg < 0 || parent.len === 'value' || parent.len === 'none') head = b.slice(parent.start, cs);
  else if (parent.len === 'count') {
    if (parent.arg + countDelta < 0) return undefined;
    head = cborHead(parent.major, parent.arg + countDelta);
  } else head = parent.kind === 'cbor' ? cborHead(parent.major, content.length) : parent.kind === 'der' ? derHead(parent.major, content.length) : u32be(content.length);
  return spliceFix(b, parent.start, parent.end, concatBytes(head, content), parent.parent);
}

function rewriteHead(b: Uint8Array, n: SNode, head: Uint8Array): Uint8Array {
  return spliceFix(b, n.start, n.start + n.headLen, head, n.parent);
}

// ---------------------------------------------------------------------------------------------
// Interesting numbers

const BIG = [0, 1, 2, 3, 4, 7, 8, 15, 16, 23, 24, 31, 32, 47, 48, 63, 64, 96, 127, 128, 255, 256, 1023, 1024, 1025, 4095, 4096, 32767, 32768, 65535, 65536, 0xfffff, 0x1000000, 0x7fffffff, 0x80000000, 0xffffffff, 2 ** 32, 2 ** 53 - 1, 2 ** 53];

export function interestingLength(rng: Rng, cur: number, left: number): number {
  switch (rng.below(6)) {
    case 0:
      return Math.max(0, cur + rng.range(-2, 2));
    case 1:
      return Math.max(0, left + rng.range(-1, 1));
    case 2:
      return cur * 2;
    case 3:
      return rng.below(Math.max(1, cur + 1));
    default:
      return rng.pick(BIG);
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations

const DER_TAGS = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x18, 0x1e, 0x30, 0x31, 0x80, 0x81, 0x82, 0x83, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0x24, 0x23, 0x40, 0xc0, 0x1f];

/** One structure-aware mutation, or undefined when `b` has no structure of that kind to work on. */
export function mutateStructure(
  rng: Rng,
  b: Uint8Array,
  kind: 'cbor' | 'der',
  donors: readonly Uint8Array[],
  byteMutate: (rng: Rng, b: Uint8Array) => Uint8Array,
  dict: readonly Uint8Array[] = [],
): Uint8Array | undefined {
  const nodes = walk(b, kind);
  if (nodes.length === 0) return undefined;
  const n = rng.pick(nodes);
  const contentStart = n.start + n.headLen;
  if (n.kind === 'frame') {
    // A frame length that lies (or the maximum, or zero).
    const v = Math.min(interestingLength(rng, n.arg, b.length - contentStart), 0xffffffff);
    return concatBytes(b.subarray(0, n.start), u32be(v), b.subarray(contentStart));
  }
  switch (rng.below(10)) {
    case 0: {
      // A lie about one length or count: only this head changes.
      if (n.len !== 'bytes' && n.len !== 'count') return undefined;
      const v = interestingLength(rng, Math.max(0, n.arg), b.length - contentStart);
      return rewriteHead(b, n, n.kind === 'cbor' ? cborHead(n.major, v) : derHead(n.major, Math.min(v, 0xffffffff)));
    }
    case 1: {
      // Same value, another encoding of the head: non-minimal, long form, indefinite.
      if (n.kind === 'cbor') {
        if ((n.len === 'count' || n.len === 'bytes') && n.arg >= 0 && rng.chance(0.4)) {
          // Definite -> indefinite: strings become one chunk, containers get a break.
          if (n.len === 'bytes') {
            const chunk = concatBytes(cborHead(n.major, n.arg), b.subarray(contentStart, n.end));
            return spliceFix(b, n.start, n.end, concatBytes(Uint8Array.of((n.major << 5) | 31), chunk, Uint8Array.of(0xff)), n.parent);
          }
          return spliceFix(b, n.start, n.end, concatBytes(Uint8Array.of((n.major << 5) | 31), b.subarray(contentStart, n.end), Uint8Array.of(0xff)), n.parent);
        }
        if (n.arg < 0) return undefined;
        return rewriteHead(b, n, cborHead(n.major, n.arg, rng.pick([1, 2, 4, 8] as const)));
      }
      if (n.arg < 0) return undefined;
      if ((n.major & 0x20) !== 0 && rng.chance(0.4)) {
        // Definite -> indefinite (BER), as AWS KMS sends its CMS.
        return spliceFix(b, n.start, n.end, concatBytes(Uint8Array.of(n.major, 0x80), b.subarray(contentStart, n.end), Uint8Array.of(0, 0)), n.parent);
      }
      return rewriteHead(b, n, derHead(n.major, n.arg, rng.pick(['long1', 'long2', 'long4'] as const)));
    }
    case 2: {
      // Edit the content of a leaf (or make it a dictionary token: a map key "__proto__", a field
      // name) and fix every enclosing length.
      if (n.len !== 'bytes' || n.arg < 0 || n.children.length > 0) return undefined;
      const content = dict.length > 0 && rng.chance(0.3) ? rng.pick(dict) : byteMutate(rng, b.slice(contentStart, n.end));
      return spliceFix(b, contentStart, n.end, content, n);
    }
    case 3:
    case 4: {
      // Duplicate or drop a child (a map entry counts as its key and value).
      const parent = n.parent;
      if (parent === undefined) return undefined;
      const kids = parent.children;
      let i = kids.indexOf(n);
      let j = i;
      const isMap = parent.kind === 'cbor' && parent.major === 5;
      if (isMap) {
        i -= i & 1;
        j = i + 1;
        if (j >= kids.length) return undefined;
      }
      const a = kids[i]!.start;
      const e = kids[j]!.end;
      const dup = rng.below(10) === 3;
      const rep = dup ? concatBytes(b.subarray(a, e), b.subarray(a, e)) : new Uint8Array(0);
      return replaceInContainer(b, parent, a, e, rep, dup ? 1 : -1);
    }
    case 5: {
      // Swap two siblings: the container's length is unchanged.
      const parent = n.parent;
      if (parent === undefined || parent.children.length < 2) return undefined;
      const kids = parent.children;
      const x = rng.below(kids.length);
      let y = rng.below(kids.length);
      if (x === y) y = (y + 1) % kids.length;
      const [p, q] = x < y ? [kids[x]!, kids[y]!] : [kids[y]!, kids[x]!];
      return concatBytes(b.subarray(0, p.start), b.subarray(q.start, q.end), b.subarray(p.end, q.start), b.subarray(p.start, p.end), b.subarray(q.end));
    }
    case 6: {
      // Replace the item with an item of the same kind from another input (or this one).
      const donor = donors.length > 0 && rng.chance(0.7) ? rng.pick(donors) : b;
      const dn = walk(donor, kind).filter((d) => d.kind === n.kind);
      if (dn.length === 0) return undefined;
      const d = rng.pick(dn);
      return spliceFix(b, n.start, n.end, donor.slice(d.start, d.end), n.parent);
    }
    case 7: {
      // Another type or tag with the same length.
      const out = b.slice();
      if (n.kind === 'cbor') out[n.start] = (rng.below(8) << 5) | n.ai;
      else out[n.start] = rng.chance(0.8) ? rng.pick(DER_TAGS) : rng.below(256);
      return out;
    }
    case 8: {
      // CBOR: an integer or simple value gets an interesting value; DER: wrap the item in a tag/SEQUENCE.
      if (n.kind === 'cbor') {
        if (n.len === 'value' && n.major <= 1) {
          const v = rng.chance(0.2) ? 0xffffffffffffffffn : BigInt(rng.pick(BIG));
          return rewriteHead(b, n, cborHead(n.major, v));
        }
        // Wrap in a tag (no tags are allowed by our parsers).
        const tag = cborHead(6, rng.pick([0, 1, 2, 18, 24, 25, 28, 29, 55799, 258, 64, 0x10000]));
        return spliceFix(b, n.start, n.start, tag, n.parent);
      }
      const inner = b.subarray(n.start, n.end);
      return spliceFix(b, n.start, n.end, concatBytes(derHead(rng.pick([0x30, 0x31, 0xa0, 0x04, 0x24]), inner.length), inner), n.parent);
    }
    default: {
      // Insert a fresh small item after this one (into its container, fixing byte lengths).
      const parent = n.parent;
      const item =
        n.kind === 'cbor'
          ? rng.pick([Uint8Array.of(0xf6), Uint8Array.of(0xf7), Uint8Array.of(0xf9, 0x7e, 0x00), Uint8Array.of(0x40), Uint8Array.of(0x60), Uint8Array.of(0x80), Uint8Array.of(0xa0), Uint8Array.of(0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), Uint8Array.of(0xff)])
          : rng.pick([Uint8Array.of(0x05, 0x00), Uint8Array.of(0x02, 0x01, 0x00), Uint8Array.of(0x30, 0x00), Uint8Array.of(0x04, 0x00), Uint8Array.of(0x00, 0x00), Uint8Array.of(0x01, 0x01, 0xff)]);
      return spliceFix(b, n.end, n.end, item, parent);
    }
  }
}
