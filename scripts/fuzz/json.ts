/**
 * JSON-aware mutation: parse the input, change one node of the tree (a value of another type, an
 * interesting number or string, a deleted, added or duplicated member, a subtree from another corpus
 * entry, deep nesting), and print it again, sometimes with text JSON.stringify cannot produce
 * (`-0`, `1e400`, duplicate keys).
 */
import type { Rng } from './rng.js';

/** Literal JSON text to emit as is. */
class Raw {
  constructor(readonly text: string) {}
}
type J = null | boolean | number | string | Raw | J[] | { [k: string]: J };

const NUMBERS: J[] = [
  0, 1, -1, 2, 3, 10, 64, 100, 1000, 1024, 10_000, 1_000_000, 1e-6, 1e-3, 0.01, 0.1, 0.5, -0.5, 1.5, 9.99, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e21, 1e308, 5e-324,
  new Raw('-0'), new Raw('1e400'), new Raw('-1e400'), new Raw('0.0000001'), new Raw('1.0'), new Raw('100e-2'), new Raw('1E2'),
];
const STRINGS: string[] = [
  '', '*', 'a', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '\u0000', '\ud800', '\u2028', 'é', '.', 'a.b', 'a..b', '.a', 'a.', '1', '-1', 'NaN',
  'Infinity', 'true', 'null', '2027-06-30T00:00:00Z', '9999-12-31T23:59:59Z', '1970-01-01T00:00:00.000Z', '2026-02-30T00:00:00Z', 'x'.repeat(65), 'x'.repeat(129), 'x'.repeat(257),
  'x'.repeat(1025), 'arn:aws:kms:us-east-1:111122223333:key/x', 'alias/a', 'ERR_X',
];

function interesting(rng: Rng, dict: readonly string[]): J {
  switch (rng.below(8)) {
    case 0:
    case 1:
      return rng.pick(NUMBERS);
    case 2:
    case 3:
      return rng.chance(0.5) && dict.length > 0 ? rng.pick(dict) : rng.pick(STRINGS);
    case 4:
      return rng.pick([true, false, null]);
    case 5:
      return rng.pick<J>([[], {}, [null], [[]], { '': '' }, [0, 1], ['a', 'b']]);
    case 6:
      return Array.from({ length: rng.pick([2, 5, 17, 33, 101, 1001, 1025]) }, (_, i) => (rng.chance(0.5) ? i : `v${i}`));
    default:
      return Object.fromEntries(Array.from({ length: rng.pick([2, 9, 33]) }, (_, i) => [dict.length > 0 && rng.chance(0.5) ? rng.pick(dict) + i : `k${i}`, i]));
  }
}

interface Slot {
  get(): J;
  set(v: J): void;
  del(): void;
  parent: J[] | { [k: string]: J } | undefined;
  key: string | number | undefined;
}

function slots(root: { v: J }, limit = 4000): Slot[] {
  const out: Slot[] = [{ get: () => root.v, set: (v) => (root.v = v), del: () => (root.v = null), parent: undefined, key: undefined }];
  const stack: J[] = [root.v];
  while (stack.length > 0 && out.length < limit) {
    const v = stack.pop()!;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length && out.length < limit; i++) {
        out.push({ get: () => v[i]!, set: (x) => (v[i] = x), del: () => v.splice(i, 1), parent: v, key: i });
        stack.push(v[i]!);
      }
    } else if (v !== null && typeof v === 'object' && !(v instanceof Raw)) {
      for (const k of Object.keys(v)) {
        if (out.length >= limit) break;
        out.push({ get: () => v[k]!, set: (x) => (v[k] = x), del: () => delete v[k], parent: v, key: k });
        stack.push(v[k]!);
      }
    }
  }
  return out;
}

function keysOf(v: J, out: Set<string>, depth = 0): void {
  if (depth > 32 || out.size > 500) return;
  if (Array.isArray(v)) for (const x of v) keysOf(x, out, depth + 1);
  else if (v !== null && typeof v === 'object' && !(v instanceof Raw)) {
    for (const [k, x] of Object.entries(v)) {
      out.add(k);
      keysOf(x, out, depth + 1);
    }
  }
}

function emit(v: J, out: string[], depth = 0): void {
  if (depth > 5000) {
    out.push('null');
    return;
  }
  if (v instanceof Raw) out.push(v.text);
  else if (Array.isArray(v)) {
    out.push('[');
    v.forEach((x, i) => {
      if (i > 0) out.push(',');
      emit(x, out, depth + 1);
    });
    out.push(']');
  } else if (v !== null && typeof v === 'object') {
    out.push('{');
    let first = true;
    for (const [k, x] of Object.entries(v)) {
      if (!first) out.push(',');
      first = false;
      out.push(JSON.stringify(k), ':');
      emit(x, out, depth + 1);
    }
    out.push('}');
  } else out.push(JSON.stringify(v) ?? 'null');
}

function stringMutate(rng: Rng, s: string, dict: readonly string[]): string {
  switch (rng.below(7)) {
    case 0:
      return s.slice(0, rng.below(s.length + 1));
    case 1: {
      const i = rng.below(s.length + 1);
      return s.slice(0, i) + (dict.length > 0 && rng.chance(0.5) ? rng.pick(dict) : String.fromCharCode(rng.pick([0, 0x2e, 0x2a, 0x3f, 0x20, 0x41, 0x7f, 0xe9, 0xd800, 0xfeff, rng.below(0x80)]))) + s.slice(i);
    }
    case 2: {
      if (s.length === 0) return 'a';
      const i = rng.below(s.length);
      return s.slice(0, i) + String.fromCharCode(rng.below(0x80)) + s.slice(i + 1);
    }
    case 3:
      return s.repeat(rng.pick([2, 3, 16, 100]));
    case 4:
      return s.toUpperCase() === s ? s.toLowerCase() : s.toUpperCase();
    case 5: {
      const i = rng.below(s.length + 1);
      return s.slice(0, i) + s.slice(i + rng.range(1, 8));
    }
    default:
      return s + s.slice(0, rng.below(s.length + 1));
  }
}

function numberMutate(rng: Rng, n: number): J {
  switch (rng.below(8)) {
    case 0:
      return n + 1;
    case 1:
      return n - 1;
    case 2:
      return -n;
    case 3:
      return n * 2;
    case 4:
      return n / 2;
    case 5:
      return n + Number.EPSILON * Math.max(1, Math.abs(n)) * 4;
    case 6:
      return String(n);
    default:
      return rng.pick(NUMBERS);
  }
}

/** One JSON-aware mutation, or undefined when `text` is not JSON. */
export function mutateJson(rng: Rng, text: string, donors: readonly string[], dict: readonly string[]): string | undefined {
  let v: J;
  try {
    v = JSON.parse(text) as J;
  } catch {
    return undefined;
  }
  const root = { v };
  const all = slots(root);
  const s = rng.pick(all);
  const keys = new Set<string>(dict);
  keysOf(v, keys);
  const keyList = [...keys];
  let dupKey: string | undefined;
  switch (rng.below(11)) {
    case 0:
    case 1:
      s.set(interesting(rng, keyList));
      break;
    case 2:
      if (s.parent === undefined) s.set(interesting(rng, keyList));
      else s.del();
      break;
    case 3: {
      const c = s.get();
      if (c !== null && typeof c === 'object' && !Array.isArray(c) && !(c instanceof Raw)) {
        const k = rng.chance(0.8) && keyList.length > 0 ? rng.pick(keyList) : rng.pick(['__proto__', 'constructor', '', 'x', 'unknown']);
        c[k] = rng.chance(0.5) ? interesting(rng, keyList) : structuredClone(rng.pick(all).get());
      } else if (Array.isArray(c)) {
        const i = rng.below(c.length + 1);
        c.splice(i, 0, c.length > 0 && rng.chance(0.6) ? structuredClone(c[rng.below(c.length)]!) : interesting(rng, keyList));
      } else s.set(interesting(rng, keyList));
      break;
    }
    case 4: {
      // A subtree from another input.
      const d = donors.length > 0 ? rng.pick(donors) : text;
      let dv: J;
      try {
        dv = JSON.parse(d) as J;
      } catch {
        return undefined;
      }
      const ds = slots({ v: dv });
      s.set(rng.pick(ds).get());
      break;
    }
    case 5: {
      const c = s.get();
      if (typeof c === 'string') s.set(stringMutate(rng, c, keyList));
      else if (typeof c === 'number') s.set(numberMutate(rng, c));
      else s.set(interesting(rng, keyList));
      break;
    }
    case 6: {
      const c = s.get();
      if (typeof c === 'number') s.set(numberMutate(rng, c));
      else if (typeof c === 'string' && c.length > 0 && Number.isFinite(Number(c))) s.set(Number(c));
      else s.set(rng.pick(NUMBERS));
      break;
    }
    case 7: {
      // Deep nesting.
      let c = s.get();
      const depth = rng.pick([2, 9, 10, 33, 100, 1000]);
      const obj = rng.chance(0.5);
      for (let i = 0; i < depth; i++) c = obj ? { [keyList.length > 0 ? rng.pick(keyList) : 'a']: c } : [c];
      s.set(c);
      break;
    }
    case 8: {
      // Another type carrying the same information.
      const c = s.get();
      s.set(rng.pick<J>([[c], { value: c }, typeof c === 'string' ? c : JSON.stringify(c) ?? 'null', typeof c === 'boolean' ? Number(c) : c === null ? 0 : typeof c === 'number' ? c !== 0 : null]));
      break;
    }
    case 9: {
      // Swap two members of one container.
      const p = s.parent;
      if (Array.isArray(p) && p.length > 1) {
        const i = rng.below(p.length);
        const j = rng.below(p.length);
        [p[i], p[j]] = [p[j]!, p[i]!];
      } else s.set(interesting(rng, keyList));
      break;
    }
    default:
      // A duplicate key: JSON.parse keeps the last one; a strict reader might not.
      if (typeof s.key === 'string') dupKey = s.key;
      else s.set(interesting(rng, keyList));
  }
  const out: string[] = [];
  emit(root.v, out);
  let res = out.join('');
  if (dupKey !== undefined) {
    const k = JSON.stringify(dupKey) + ':';
    const at = res.indexOf(k);
    if (at >= 0) {
      const extra = [] as string[];
      emit(interesting(rng, keyList), extra);
      res = res.slice(0, at) + k + extra.join('') + ',' + res.slice(at);
    }
  }
  return res;
}
