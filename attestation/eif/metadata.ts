/**
 * The EIF metadata section (version 4): `EifIdentityInfo` as serde_json writes it
 * (aws-nitro-enclaves-image-format `defs::EifIdentityInfo`, `EifBuilder::new`: `serde_json::to_vec`).
 *
 *   {"ImageName":..,"ImageVersion":..,"BuildMetadata":{"BuildTime":..,"BuildTool":..,
 *    "BuildToolVersion":..,"OperatingSystem":..,"KernelVersion":..},"DockerInfo":..,"CustomMetadata":..}
 *
 * Struct fields come in declaration order; inside `DockerInfo` and `CustomMetadata` (serde_json
 * `Value`, built without `preserve_order`) object keys are sorted by their UTF-8 bytes. Compact, no
 * whitespace. Integers are written as they are; other numbers in ryu's shortest form (`1.5`, `1.0`,
 * `1e-7`, `1.2e30`). The metadata is not measured: it changes no PCR.
 */
import { AttestationError } from '../errors.js';
import { invalid } from './format.js';

/** A JSON value with numbers kept as their source token, objects as ordered entries. */
export type JsonTree = null | boolean | string | { num: string } | JsonTree[] | { entries: [string, JsonTree][] };

const MAX_DEPTH = 64;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function metaError(message: string): AttestationError {
  return new AttestationError('ERR_INPUT_ENCODING', `metadata JSON: ${message}`, { reason: 'metadata_json' });
}

/** Strict RFC 8259 JSON (what serde_json accepts), keeping number tokens. Throws ERR_INPUT_ENCODING. */
export function parseJsonTree(text: string): JsonTree {
  let i = 0;
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const fail = (m: string): never => {
    throw metaError(`${m} at offset ${i}`);
  };
  const str = (): string => {
    const m = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(text.slice(i));
    if (!m) return fail('bad string');
    i += m[0].length;
    const s = JSON.parse(m[0]) as string;
    if (LONE_SURROGATE.test(s)) fail('string with a lone surrogate');
    return s;
  };
  const value = (depth: number): JsonTree => {
    if (depth > MAX_DEPTH) fail('nested too deeply');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const entries: [string, JsonTree][] = [];
      ws();
      if (text[i] === '}') {
        i++;
        return { entries };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = str();
        ws();
        if (text[i++] !== ':') fail('expected ":"');
        entries.push([k, value(depth + 1)]);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return { entries };
        } else fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const items: JsonTree[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return items;
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return items;
        } else fail('expected "," or "]"');
      }
    }
    if (c === '"') return str();
    for (const [lit, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return v;
      }
    }
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m) return fail('unexpected character');
    i += m[0].length;
    return { num: m[0] };
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail('trailing characters');
  return v;
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

/** ryu's layout (`ryu::Buffer::format_finite`) of a finite double, from its shortest digits. */
export function ryuFormat(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError('not finite');
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mant, expStr] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const length = digits.length;
  // value = digits × 10^k; kk is where the decimal point falls.
  const k = Number(expStr) - (length - 1);
  const kk = length + k;
  let out: string;
  if (k >= 0 && kk <= 16) out = digits + '0'.repeat(k) + '.0';
  else if (kk > 0 && kk <= 16) out = digits.slice(0, kk) + '.' + digits.slice(kk);
  else if (kk > -5 && kk <= 0) out = '0.' + '0'.repeat(-kk) + digits;
  else if (length === 1) out = digits + 'e' + String(kk - 1);
  else out = digits[0] + '.' + digits.slice(1) + 'e' + String(kk - 1);
  return sign + out;
}

/** serde_json's rendering of a number token it parsed into a `Value`. */
function numberOut(tok: string): string {
  if (/^-?[0-9]+$/.test(tok)) {
    const n = BigInt(tok);
    if (tok === '-0') return '-0.0'; // serde_json turns "-0" into the float -0.0
    if ((n >= 0n && n <= U64_MAX) || (n < 0n && n >= I64_MIN)) return n.toString();
  }
  const x = Number(tok);
  if (!Number.isFinite(x)) throw metaError(`number ${tok.slice(0, 40)} is out of range`);
  return ryuFormat(x);
}

const utf8 = new TextEncoder();
function byteCompare(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** serde_json::to_vec of a `Value` (BTreeMap objects: keys sorted, the last of duplicate keys kept). */
export function serdeJson(v: JsonTree): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(serdeJson).join(',') + ']';
  if ('num' in v) return numberOut(v.num);
  const map = new Map<string, JsonTree>();
  for (const [k, x] of v.entries) map.set(k, x);
  const keys = [...map.keys()].sort(byteCompare);
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + serdeJson(map.get(k)!)).join(',') + '}';
}

export interface EifBuildInfo {
  buildTime: string;
  buildTool: string;
  buildToolVersion: string;
  operatingSystem: string;
  kernelVersion: string;
}

export interface EifIdentityInfo {
  imageName: string;
  imageVersion: string;
  buildInfo: EifBuildInfo;
  /** `docker inspect` of the image (nitro-cli) or null (eif_build). */
  dockerInfo: JsonTree;
  /** The user's --metadata JSON, or null. */
  customMetadata: JsonTree;
}

/** The metadata section bytes, exactly as serde_json writes `EifIdentityInfo`. */
export function encodeEifMetadata(m: EifIdentityInfo): Uint8Array {
  const s = (x: string) => JSON.stringify(x);
  const b = m.buildInfo;
  const text =
    `{"ImageName":${s(m.imageName)},"ImageVersion":${s(m.imageVersion)},"BuildMetadata":{"BuildTime":${s(b.buildTime)},` +
    `"BuildTool":${s(b.buildTool)},"BuildToolVersion":${s(b.buildToolVersion)},"OperatingSystem":${s(b.operatingSystem)},` +
    `"KernelVersion":${s(b.kernelVersion)}},"DockerInfo":${serdeJson(m.dockerInfo)},"CustomMetadata":${serdeJson(m.customMetadata)}}`;
  return utf8.encode(text);
}

/** Largest metadata section `describeEif` decodes. */
export const MAX_METADATA = 1024 * 1024;

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * Decode a metadata section: UTF-8 JSON of the EifIdentityInfo shape (the five top-level keys, the
 * five string build fields). Returned as parsed JSON. Throws ERR_EIF_INVALID (reason `metadata`).
 */
export function decodeEifMetadata(b: Uint8Array): Record<string, unknown> {
  if (b.length > MAX_METADATA) throw invalid('metadata', `metadata section is ${b.length} bytes, at most ${MAX_METADATA}`);
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b));
  } catch (cause) {
    throw invalid('metadata', 'metadata section is not UTF-8 JSON', cause);
  }
  const keys = ['ImageName', 'ImageVersion', 'BuildMetadata', 'DockerInfo', 'CustomMetadata'];
  const build = ['BuildTime', 'BuildTool', 'BuildToolVersion', 'OperatingSystem', 'KernelVersion'];
  if (!isObj(v) || !keys.every((k) => Object.hasOwn(v as object, k)) || Object.keys(v).some((k) => !keys.includes(k)))
    throw invalid('metadata', `metadata must be an object with exactly ${keys.join(', ')}`);
  if (typeof v.ImageName !== 'string' || typeof v.ImageVersion !== 'string') throw invalid('metadata', 'ImageName and ImageVersion must be strings');
  const bm = v.BuildMetadata;
  if (!isObj(bm) || !build.every((k) => typeof bm[k] === 'string') || Object.keys(bm).some((k) => !build.includes(k)))
    throw invalid('metadata', `BuildMetadata must hold exactly the strings ${build.join(', ')}`);
  return v;
}
