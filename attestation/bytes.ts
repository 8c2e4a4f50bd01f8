/** Byte helpers shared by the parsers. Pure, no `node:` imports. */
import { AttestationError } from './errors.js';

export function toHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i]! < 16 ? '0' : '') + b[i]!.toString(16);
  return s;
}

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

/** Strict hex (even length, no prefix, no spaces). Caller misuse gets a TypeError. */
export function fromHex(hex: string, label = 'hex'): Uint8Array {
  const h = hex.startsWith('0x') || hex.startsWith('0X') ? hex.slice(2) : hex;
  if (!HEX_RE.test(h)) throw new TypeError(`"${label}" expected an even-length hex string`);
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function isAllZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** noble-style argument check for caller misuse (not for untrusted evidence). */
export function abytes(value: unknown, label: string, length?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`"${label}" expected Uint8Array, got ${typeof value}`);
  if (length !== undefined && value.length !== length)
    throw new RangeError(`"${label}" expected Uint8Array of length ${length}, got length=${value.length}`);
  return value;
}

const B64_RE = /^[A-Za-z0-9+/_-]+={0,2}$/;

function decodeBase64(s: string): Uint8Array | undefined {
  if (!B64_RE.test(s)) return undefined;
  // Padding is optional, but when present it must be exact: atob throws a DOMException (not our
  // error) on `a==` or `abcde=`, which arrive here from untrusted text.
  const body = s.replace(/=+$/, '');
  if (body.length % 4 === 1 || (body.length !== s.length && s.length % 4 !== 0)) return undefined;
  const std = body.replace(/-/g, '+').replace(/_/g, '/');
  let bin: string;
  try {
    bin = atob(std.padEnd(std.length + ((4 - (std.length % 4)) % 4), '='));
  } catch {
    return undefined;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Evidence arrives as raw bytes, hex or base64 (possibly PEM-armoured or with whitespace).
 * Detect which. Raw binary is anything that is not entirely printable text.
 */
export function decodeEvidenceText(input: Uint8Array): Uint8Array {
  if (input.length === 0) throw new AttestationError('ERR_INPUT_ENCODING', 'input is empty', { reason: 'empty' });
  for (let i = 0; i < input.length; i++) {
    const c = input[i]!;
    const printable = (c >= 0x20 && c < 0x7f) || c === 0x0a || c === 0x0d || c === 0x09;
    if (!printable) return input;
  }
  let text = new TextDecoder().decode(input);
  text = text.replace(/-----(BEGIN|END) [A-Z0-9 ]+-----/g, '');
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0) throw new AttestationError('ERR_INPUT_ENCODING', 'input is empty', { reason: 'empty' });
  if (HEX_RE.test(compact)) return fromHex(compact);
  const b = decodeBase64(compact);
  if (b !== undefined && b.length > 0) return b;
  throw new AttestationError('ERR_INPUT_ENCODING', 'input is text but neither hex nor base64', { reason: 'text' });
}
