import { PassThrough, Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import type { DataKeySource } from '../../host/encrypt.js';
import { encryptDataset } from '../../host/encrypt.js';
import { syntheticCustomers } from '../../host/synthetic.js';
import type { KeyManifest } from '../../enclave/protocol/index.js';

/** An in-memory DataKeySource: keys derived from the context, the "blob" names the key. Remembers keys. */
export class FakeKms implements DataKeySource {
  readonly issued = new Map<string, Uint8Array>();
  calls = 0;
  async generateDataKey(keyId: string, ctx: Record<string, string>) {
    this.calls++;
    const ref = ctx['enclavekit:key-ref']!;
    const key = new Uint8Array(createHash('sha256').update(`${keyId}/${JSON.stringify(ctx)}/${this.calls}`).digest());
    this.issued.set(ref, key.slice());
    return { plaintext: key, ciphertextBlob: new TextEncoder().encode(`blob:${ref}`), keyId: `arn:fake:${keyId}` };
  }
  /** Fresh copies (a job wipes what it is given). */
  keys(): Map<string, Uint8Array> {
    return new Map([...this.issued].map(([k, v]) => [k, v.slice()]));
  }
}

export async function collect(stream: PassThrough): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

/** Encrypt `count` synthetic customers in memory; returns the NDJSON records as parsed objects. */
export async function encryptedCustomers(count: number, opts: { rotateAfter?: number; fields?: string[] } = {}) {
  const kms = new FakeKms();
  const text = [...syntheticCustomers({ count, seed: 7 })].map((c) => JSON.stringify(c)).join('\n') + '\n';
  const out = new PassThrough();
  const done = collect(out);
  const manifest: KeyManifest = await encryptDataset({
    input: Readable.from([Buffer.from(text)]),
    format: 'ndjson',
    fields: opts.fields ?? ['name', 'email', 'phone', 'address.street', 'complaint'],
    idField: 'id',
    datasetId: 'demo-1',
    keyId: 'alias/demo',
    kms,
    output: out,
    ...(opts.rotateAfter ? { rotateAfter: opts.rotateAfter } : {}),
  });
  out.end();
  const records = (await done).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  return { kms, manifest, records, plaintext: text };
}
