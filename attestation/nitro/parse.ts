/**
 * Parse step: COSE_Sign1 envelope and AttestationDocument payload, structure only. Signatures and the
 * certificate chain are left to verify.ts; PCR values, nonce and freshness to policy.ts.
 *
 * Untrusted bytes first go through `checkCbor`, a bounded well-formedness walk (definite lengths
 * checked against the bytes left, depth capped, no tags, no floats, no duplicate map keys), and only
 * then through cbor-x, so the decoder never sees input that could make it allocate or loop by a
 * declared length. The decoder's output is `unknown` and checked field by field.
 */
import { Decoder } from 'cbor-x/decode-no-eval';
import { AttestationError } from '../errors.js';

/** Spec limits (attestation_process.md; 1024 for the optional fields as the real NSM accepts). */
export const NITRO_LIMITS = Object.freeze({
  maxDocument: 32 * 1024,
  maxPayload: 16 * 1024,
  maxPcrs: 32,
  maxCabundle: 16,
  maxCert: 1024,
  maxOptional: 1024,
  maxModuleId: 256,
  maxDepth: 6,
});

export interface ParsedNitroDocument {
  readonly tagged: boolean;
  /** Exact bytes from the envelope: what the signature covers. */
  readonly protectedHeader: Uint8Array;
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
  readonly moduleId: string;
  readonly digest: 'SHA384';
  /** Milliseconds since the Unix epoch. */
  readonly timestamp: number;
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly certificate: Uint8Array;
  /** Root first, as in the document. */
  readonly cabundle: readonly Uint8Array[];
  readonly publicKey: Uint8Array | undefined;
  readonly userData: Uint8Array | undefined;
  readonly nonce: Uint8Array | undefined;
}

function bad(reason: string, message: string, cause?: unknown): AttestationError {
  return new AttestationError('ERR_NITRO_DOC_INVALID', `Nitro attestation document: ${message}`, { reason, cause });
}

// ---------------------------------------------------------------------------------------------
// Bounded CBOR well-formedness walk

const utf8 = new TextDecoder('utf-8', { fatal: true });

interface Head {
  major: number;
  /** Argument value; `-1` = indefinite length. */
  arg: number;
  /** Position after the head. */
  next: number;
  ai: number;
}

function readHead(b: Uint8Array, pos: number): Head {
  if (pos >= b.length) throw bad('cbor', 'CBOR data ends early');
  const ib = b[pos]!;
  const major = ib >> 5;
  const ai = ib & 0x1f;
  if (ai < 24) return { major, arg: ai, next: pos + 1, ai };
  if (ai === 31) return { major, arg: -1, next: pos + 1, ai };
  if (ai > 27) throw bad('cbor', `reserved CBOR additional info ${ai} at offset ${pos}`);
  const n = 1 << (ai - 24);
  if (pos + 1 + n > b.length) throw bad('cbor', 'CBOR data ends early');
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + b[pos + 1 + i]!;
  // Above 2^53 only the 8-byte uint `timestamp` could be legitimate, and it is rejected later.
  return { major, arg: Number.isSafeInteger(v) ? v : Number.MAX_SAFE_INTEGER, next: pos + 1 + n, ai };
}

/** Returns the end offset of the item at `pos`; throws ERR_NITRO_DOC_INVALID if malformed. */
function skipItem(b: Uint8Array, pos: number, depth: number): number {
  if (depth > NITRO_LIMITS.maxDepth) throw bad('cbor', 'CBOR nesting too deep');
  const h = readHead(b, pos);
  switch (h.major) {
    case 0:
    case 1:
      if (h.arg < 0) throw bad('cbor', `indefinite-length integer at offset ${pos}`);
      return h.next;
    case 2:
    case 3: {
      // Indefinite-length strings never occur in NSM output; refusing them keeps bytes contiguous.
      if (h.arg < 0) throw bad('cbor', `indefinite-length string at offset ${pos}`);
      if (h.arg > b.length - h.next) throw bad('cbor', `string at offset ${pos} runs past the end`);
      // cbor-x would decode bad UTF-8 leniently (U+FFFD); text must be valid to be compared.
      if (h.major === 3) {
        try {
          utf8.decode(b.subarray(h.next, h.next + h.arg));
        } catch (cause) {
          throw bad('cbor', `text string at offset ${pos} is not valid UTF-8`, cause);
        }
      }
      return h.next + h.arg;
    }
    case 4:
    case 5: {
      const perEntry = h.major === 5 ? 2 : 1;
      const keys = h.major === 5 ? new Set<string>() : undefined;
      let p = h.next;
      if (h.arg >= 0) {
        // Every item takes at least one byte: a count beyond the bytes left is a lie.
        if (h.arg * perEntry > b.length - p) throw bad('cbor', `container at offset ${pos} declares more items than bytes`);
        for (let i = 0; i < h.arg; i++) p = entry(b, p, depth, keys);
        return p;
      }
      for (;;) {
        if (p >= b.length) throw bad('cbor', 'indefinite-length container is not terminated');
        if (b[p] === 0xff) return p + 1;
        p = entry(b, p, depth, keys);
      }
    }
    case 6:
      throw bad('cbor', `unexpected CBOR tag at offset ${pos}`);
    default:
      // false, true, null only: no floats, undefined, simple values or stray breaks.
      if (h.ai === 20 || h.ai === 21 || h.ai === 22) return h.next;
      throw bad('cbor', `unsupported CBOR simple value or float at offset ${pos}`);
  }
}

/**
 * What a key decodes to, not how it is spelled: heads need not be minimal, so `"a"` and a long-form
 * `"a"` (or `1` and `18 01`) are the same key to cbor-x, which would keep only the last one.
 * Integers and strings are compared by value; any other key by its bytes.
 */
function keyIdentity(b: Uint8Array, p: number, end: number): string {
  const h = readHead(b, p);
  let id = `${h.major}:`;
  if (h.major === 0 || h.major === 1) return id + h.arg;
  const from = h.major === 2 || h.major === 3 ? h.next : p;
  for (let i = from; i < end; i++) id += String.fromCharCode(b[i]!);
  return id;
}

function entry(b: Uint8Array, p: number, depth: number, keys: Set<string> | undefined): number {
  if (keys === undefined) return skipItem(b, p, depth + 1);
  const kEnd = skipItem(b, p, depth + 1);
  const id = keyIdentity(b, p, kEnd);
  if (keys.has(id)) throw bad('cbor', `duplicate map key at offset ${p}`);
  keys.add(id);
  return skipItem(b, kEnd, depth + 1);
}

/** Throws unless `b` holds exactly one well-formed item (of the subset above) and nothing after it. */
export function checkCbor(b: Uint8Array): void {
  const end = skipItem(b, 0, 0);
  if (end !== b.length) throw bad('trailing_bytes', `${b.length - end} bytes after the CBOR item`);
}

// One decoder, explicit options, no record/structured-clone/string-bundling extensions.
const decoder = new Decoder({
  mapsAsObjects: false,
  useRecords: false,
  structuredClone: false,
  bundleStrings: false,
  copyBuffers: false,
  sequential: false,
});

function decode(b: Uint8Array, what: string): unknown {
  checkCbor(b);
  try {
    return decoder.decode(b) as unknown;
  } catch (cause) {
    throw bad('cbor', `${what} is not valid CBOR`, cause);
  }
}

// ---------------------------------------------------------------------------------------------

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

function optionalBytes(v: unknown, field: string): Uint8Array | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isBytes(v)) throw bad(field, `${field} is not a byte string or null`);
  if (v.length > NITRO_LIMITS.maxOptional) throw bad(field, `${field} is ${v.length} bytes (max ${NITRO_LIMITS.maxOptional})`);
  return v;
}

const FIELDS = new Set(['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce']);

function field(m: Map<unknown, unknown>, name: string): unknown {
  const v = m.get(name);
  if (v === undefined || v === null) throw bad('missing_field', `mandatory field ${name} is missing or null`);
  return v;
}

/** Parse a Nitro attestation document (untagged or tag-18 COSE_Sign1). Structure only. */
export function parseNitroDocument(doc: Uint8Array): ParsedNitroDocument {
  if (!(doc instanceof Uint8Array)) throw new TypeError(`"doc" expected Uint8Array, got ${typeof doc}`);
  if (doc.length === 0) throw bad('empty', 'document is empty');
  if (doc.length > NITRO_LIMITS.maxDocument) throw bad('too_large', `document is ${doc.length} bytes (max ${NITRO_LIMITS.maxDocument})`);
  // Tag 18 (COSE_Sign1) is the only tag allowed, and only on the outer item.
  const tagged = doc[0] === 0xd2;
  const body = tagged ? doc.subarray(1) : doc;
  const env = decode(body, 'envelope');
  if (!Array.isArray(env) || env.length !== 4) throw bad('cose_structure', 'envelope is not a COSE_Sign1 array of 4');
  const [protectedHeader, unprotected, payload, signature] = env as unknown[];

  if (!isBytes(protectedHeader) || protectedHeader.length === 0) throw bad('protected_header', 'protected header is not a non-empty byte string');
  const ph = decode(protectedHeader, 'protected header');
  if (!(ph instanceof Map) || ph.size !== 1 || ph.get(1) !== -35) throw bad('alg', 'protected header is not {1: -35} (ES384)');
  if (!(unprotected instanceof Map)) throw bad('unprotected_header', 'unprotected header is not a map');
  if (unprotected.has(1)) throw bad('unprotected_header', 'alg must not appear in the unprotected header');
  if (!isBytes(payload) || payload.length === 0 || payload.length > NITRO_LIMITS.maxPayload)
    throw bad('payload', 'payload is not a byte string of 1..16384 bytes');
  if (!isBytes(signature) || signature.length !== 96) throw bad('signature_length', 'signature is not a 96-byte ES384 r||s');

  const m = decode(payload, 'payload');
  if (!(m instanceof Map)) throw bad('payload_type', 'payload is not a CBOR map');
  for (const k of m.keys()) {
    if (typeof k !== 'string') throw bad('field_key', 'payload has a non-text key');
    if (!FIELDS.has(k)) throw bad('unknown_field', `payload has an unknown field ${JSON.stringify(k.slice(0, 40))}`);
  }

  const moduleId = field(m, 'module_id');
  if (typeof moduleId !== 'string' || moduleId.length === 0 || moduleId.length > NITRO_LIMITS.maxModuleId)
    throw bad('module_id', 'module_id is not a non-empty text string');
  const digest = field(m, 'digest');
  if (digest !== 'SHA384') throw bad('digest', 'digest is not "SHA384"');
  const ts = field(m, 'timestamp');
  const timestamp = typeof ts === 'bigint' ? (ts <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(ts) : -1) : ts;
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp <= 0 || timestamp > 8.64e15)
    throw bad('timestamp', 'timestamp is not a positive integer of milliseconds');

  const pcrMap = field(m, 'pcrs');
  if (!(pcrMap instanceof Map) || pcrMap.size < 1 || pcrMap.size > NITRO_LIMITS.maxPcrs) throw bad('pcrs', 'pcrs is not a map of 1..32 entries');
  const pcrs = new Map<number, Uint8Array>();
  for (const [k, v] of pcrMap as Map<unknown, unknown>) {
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k >= 32) throw bad('pcr_index', 'PCR index is not an integer in 0..31');
    if (!isBytes(v) || (v.length !== 32 && v.length !== 48 && v.length !== 64)) throw bad('pcr_length', `PCR${k} is not 32, 48 or 64 bytes`);
    pcrs.set(k, v);
  }

  const certificate = field(m, 'certificate');
  if (!isBytes(certificate) || certificate.length === 0 || certificate.length > NITRO_LIMITS.maxCert)
    throw bad('certificate', 'certificate is not a byte string of 1..1024 bytes');
  const cab = field(m, 'cabundle');
  if (!Array.isArray(cab) || cab.length === 0 || cab.length > NITRO_LIMITS.maxCabundle) throw bad('cabundle', 'cabundle is not a non-empty array');
  const cabundle: Uint8Array[] = [];
  for (const c of cab as unknown[]) {
    if (!isBytes(c) || c.length === 0 || c.length > NITRO_LIMITS.maxCert) throw bad('cabundle_entry', 'cabundle entry is not a byte string of 1..1024 bytes');
    cabundle.push(c);
  }

  return {
    tagged,
    protectedHeader,
    payload,
    signature,
    moduleId,
    digest: 'SHA384',
    timestamp,
    pcrs,
    certificate,
    cabundle,
    publicKey: optionalBytes(m.get('public_key'), 'public_key'),
    userData: optionalBytes(m.get('user_data'), 'user_data'),
    nonce: optionalBytes(m.get('nonce'), 'nonce'),
  };
}
