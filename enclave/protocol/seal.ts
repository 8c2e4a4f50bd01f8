/**
 * The owner's seal over a manifest, and the enclave's seal over a dataset's privacy ledger.
 *
 * Manifest seal (privacy.md 1). For each data key K_ref of the dataset:
 *
 *   sealKey_ref = HKDF-SHA384(ikm = K_ref, salt = "", info = "enclavekit-seal-v2", 48 bytes)
 *   seal[ref]   = HMAC-SHA384(sealKey_ref, "enclavekit-seal-v2" || canonicalCBOR(manifest body))
 *
 * The body is everything but `seal`: dataset id, schema, every key's ARN, CiphertextBlob and context,
 * the record count, the dataset digest and the release policy. Only someone holding every data key
 * (the owner at encryption time, or an enclave KMS released them to) can make the seal; the worker
 * checks it under EVERY key, so a key the host minted cannot vouch for the owner's records and the
 * owner's keys never vouched for the host's. `sealDigest = SHA-384(canonicalCBOR(body))` names the
 * sealed dataset in results, audit entries and the ledger.
 *
 * Ledger seal (privacy.md 3): the spent epsilon of a dataset, sealed by the enclave with AES-256-GCM
 * under HKDF over all data keys (info "enclavekit-ledger-v1", salt = sealDigest) and kept by the host
 * between worker restarts. It is tamper-evident, not tamper-proof: the host can hand back an older
 * blob, and then two attested results carry the same generation (`audit verify` reports it).
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { ToolkitError } from '../../attestation/errors.js';
import { decodeCanonical, encodeCanonical } from './cbor.js';
import { manifestBody, type KeyManifest, type ManifestBody } from './manifest.js';

const SEAL_LABEL = 'enclavekit-seal-v2';
const LEDGER_LABEL = 'enclavekit-ledger-v1';

/** Canonical CBOR of a manifest body: the bytes the seal MACs and the seal digest hash. */
export function manifestBodyBytes(body: ManifestBody): Uint8Array {
  return encodeCanonical(body);
}

export function sealDigest(body: ManifestBody): Uint8Array {
  return new Uint8Array(createHash('sha384').update(manifestBodyBytes(body)).digest());
}

/** The per-key seal key; the data key itself is never used for anything but its fields. */
export function deriveSealKey(dataKey: Uint8Array): Uint8Array {
  if (!(dataKey instanceof Uint8Array) || dataKey.length !== 32) throw new RangeError('"dataKey" expected Uint8Array of length 32');
  return new Uint8Array(hkdfSync('sha384', dataKey, new Uint8Array(0), SEAL_LABEL, 48));
}

function mac(sealKey: Uint8Array, bodyBytes: Uint8Array): Buffer {
  return createHmac('sha384', sealKey).update(SEAL_LABEL).update(bodyBytes).digest();
}

/** Seal a manifest body with the seal key of every data key (ref -> seal key). */
export function sealManifest(body: ManifestBody, sealKeys: ReadonlyMap<string, Uint8Array>): KeyManifest {
  const bytes = manifestBodyBytes(body);
  const seal: Record<string, string> = {};
  for (const ref of Object.keys(body.keys)) {
    const k = sealKeys.get(ref);
    if (!k) throw new RangeError(`no seal key for key reference "${ref}"`);
    seal[ref] = mac(k, bytes).toString('hex');
  }
  return { ...body, seal };
}

/**
 * Check the seal under every data key (ref -> 32-byte key). Throws `ERR_SEAL_INVALID` when any key
 * is missing or did not seal this body; returns the seal digest.
 */
export function verifyManifestSeal(manifest: KeyManifest, dataKeys: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const body = manifestBody(manifest);
  const bytes = manifestBodyBytes(body);
  const refs = Object.keys(body.keys);
  let ok = refs.length > 0;
  for (const ref of refs) {
    const k = dataKeys.get(ref);
    const want = manifest.seal[ref];
    if (!k || k.length !== 32 || typeof want !== 'string') {
      ok = false;
      continue;
    }
    const sk = deriveSealKey(k);
    const got = mac(sk, bytes);
    sk.fill(0);
    const w = Buffer.from(want, 'hex');
    // Every key is checked even after a failure: the time taken does not say which one failed.
    if (w.length !== got.length || !timingSafeEqual(w, got)) ok = false;
  }
  if (!ok) throw new ToolkitError('ERR_SEAL_INVALID', 'the manifest is not sealed by every one of its data keys (edited manifest, or a key the owner did not use)', { reason: 'seal' });
  return new Uint8Array(createHash('sha384').update(bytes).digest());
}

/** One dataset's entry of the privacy ledger. */
export interface LedgerState {
  /** Hex seal digest of the dataset. */
  dataset: string;
  /** Jobs admitted so far (each admitted job takes the next generation). */
  generation: number;
  /** Epsilon spent, charged when jobs start. */
  spent: number;
}

function ledgerKey(dataKeys: ReadonlyMap<string, Uint8Array>, seal: Uint8Array): Buffer {
  const refs = [...dataKeys.keys()].sort();
  const ikm = Buffer.concat(refs.map((r) => dataKeys.get(r)!));
  try {
    return Buffer.from(hkdfSync('sha384', ikm, seal, LEDGER_LABEL, 32));
  } finally {
    ikm.fill(0);
  }
}

/** AES-256-GCM sealed ledger state: 12-byte IV || ciphertext || 16-byte tag, AAD = the label + seal digest. */
export function sealLedger(state: LedgerState, dataKeys: ReadonlyMap<string, Uint8Array>, seal: Uint8Array, random: (n: number) => Uint8Array = (n) => randomBytes(n)): Uint8Array {
  const key = ledgerKey(dataKeys, seal);
  try {
    const iv = random(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(Buffer.concat([Buffer.from(LEDGER_LABEL), seal]));
    const ct = Buffer.concat([c.update(encodeCanonical({ v: 1, dataset: state.dataset, generation: state.generation, spent: state.spent })), c.final(), c.getAuthTag()]);
    return new Uint8Array(Buffer.concat([iv, ct]));
  } finally {
    key.fill(0);
  }
}

/** Open a sealed ledger blob from the host; `ERR_SEAL_INVALID` (reason `ledger`) when it does not open or is for another dataset. */
export function openLedger(blob: Uint8Array, dataKeys: ReadonlyMap<string, Uint8Array>, seal: Uint8Array): LedgerState {
  const fail = (cause?: unknown) => new ToolkitError('ERR_SEAL_INVALID', 'the privacy ledger the host returned was not sealed by this enclave for this dataset', cause === undefined ? { reason: 'ledger' } : { reason: 'ledger', cause });
  if (!(blob instanceof Uint8Array) || blob.length < 12 + 16 + 1 || blob.length > 4096) throw fail();
  const key = ledgerKey(dataKeys, seal);
  let pt: Buffer;
  try {
    const d = createDecipheriv('aes-256-gcm', key, blob.subarray(0, 12));
    d.setAAD(Buffer.concat([Buffer.from(LEDGER_LABEL), seal]));
    d.setAuthTag(blob.subarray(blob.length - 16));
    pt = Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()]);
  } catch (e) {
    throw fail(e);
  } finally {
    key.fill(0);
  }
  const v = decodeCanonical(pt, 'ERR_SEAL_INVALID', 'ledger') as Record<string, unknown>;
  const hex = Buffer.from(seal).toString('hex');
  if (v === null || typeof v !== 'object' || v.v !== 1 || v.dataset !== hex || typeof v.generation !== 'number' || !Number.isSafeInteger(v.generation) || v.generation < 0 || typeof v.spent !== 'number' || !Number.isFinite(v.spent) || v.spent < 0)
    throw fail();
  return { dataset: hex, generation: v.generation, spent: v.spent };
}
