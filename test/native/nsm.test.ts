import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Encoder } from 'cbor-x';
import { NsmClient, NsmDeviceTransport, NsmError, decodeNsmResponse, encodeNsmRequest, type NsmTransport } from '../../native/nsm.js';
import { NativeError } from '../../native/errors.js';
import { nativeBinding } from '../../native/binding.js';

const hex = (u: Uint8Array) => Buffer.from(u).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s.replace(/ /g, ''), 'hex'));
const enc = new Encoder({ useRecords: false, variableMapSize: true });
const cbor = (v: unknown) => new Uint8Array(enc.encode(v));

describe('NSM request encoding, byte for byte against nitro.md (cbor2 from the Rust definitions)', () => {
  const cases: [string, Parameters<typeof encodeNsmRequest>[0], string][] = [
    ['DescribeNSM', { type: 'DescribeNSM' }, '6b 44657363726962654e534d'],
    ['GetRandom', { type: 'GetRandom' }, '69 47657452616e646f6d'],
    ['Attestation', { type: 'Attestation', nonce: new Uint8Array([1, 2, 3]) },
      'a1 6b 4174746573746174696f6e a3 69 757365725f64617461 f6 65 6e6f6e6365 43 010203 6a 7075626c69635f6b6579 f6'],
    ['DescribePCR', { type: 'DescribePCR', index: 0 }, 'a1 6b 4465736372696265504352 a1 65 696e646578 00'],
    ['ExtendPCR', { type: 'ExtendPCR', index: 16, data: new Uint8Array([1, 2, 3]) }, 'a1 69 457874656e64504352 a2 65 696e646578 10 64 64617461 43 010203'],
    ['LockPCR', { type: 'LockPCR', index: 16 }, 'a1 67 4c6f636b504352 a1 65 696e646578 10'],
    ['LockPCRs', { type: 'LockPCRs', range: 32 }, 'a1 68 4c6f636b50435273 a1 65 72616e6765 18 20'],
  ];
  it.each(cases)('%s', (_n, req, want) => {
    expect(hex(encodeNsmRequest(req))).toBe(want.replace(/ /g, ''));
  });

  it('encodes a subarray as its own bytes (not the whole backing buffer, not a typed-array tag)', () => {
    const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
    expect(hex(encodeNsmRequest({ type: 'ExtendPCR', index: 16, data: backing.subarray(2, 5) }))).toBe('a169457874656e64504352a265696e64657810646461746143010203');
  });

  it('rejects bad arguments before anything is sent', () => {
    expect(() => encodeNsmRequest({ type: 'Attestation', userData: new Uint8Array(1025) })).toThrow(/"userData" expected at most 1024 bytes, got length=1025/);
    expect(() => encodeNsmRequest({ type: 'DescribePCR', index: -1 })).toThrow(RangeError);
    expect(() => encodeNsmRequest({ type: 'LockPCRs', range: 1.5 })).toThrow(RangeError);
    expect(() => encodeNsmRequest({ type: 'Nope' } as never)).toThrow(TypeError);
    expect(() => encodeNsmRequest({ type: 'ExtendPCR', index: 16, data: new Uint8Array(5000) })).toThrow(expect.objectContaining({ code: 'ERR_NSM_INPUT_TOO_LARGE' }));
  });
});

describe('NSM responses', () => {
  it('decodes each response variant through NsmClient', async () => {
    const replies: Record<string, unknown> = {
      Attestation: { Attestation: { document: Buffer.from('d28443a10126', 'hex') } },
      DescribePCR: { DescribePCR: { lock: true, data: Buffer.alloc(48, 7) } },
      ExtendPCR: { ExtendPCR: { data: Buffer.alloc(48, 9) } },
      LockPCR: 'LockPCR',
      LockPCRs: 'LockPCRs',
      GetRandom: { GetRandom: { random: Buffer.alloc(256, 1) } },
      DescribeNSM: { DescribeNSM: { version_major: 1, version_minor: 0, version_patch: 0, module_id: 'i-0abc-enc0123', max_pcrs: 32, locked_pcrs: [0, 1, 2, 3, 4], digest: 'SHA384' } },
    };
    const seen: string[] = [];
    const t: NsmTransport = {
      request: async (req) => {
        const first = req[0] === 0xa1 ? Object.keys((await import('cbor-x')).decode(Buffer.from(req)) as object)[0]! : (await import('cbor-x')).decode(Buffer.from(req)) as string;
        seen.push(first);
        return cbor(replies[first]);
      },
    };
    const c = new NsmClient(t);
    expect(hex(await c.attestation({ nonce: new Uint8Array(8) }))).toBe('d28443a10126');
    expect(await c.describePcr(0)).toEqual({ lock: true, data: new Uint8Array(48).fill(7) });
    expect((await c.extendPcr(16, new Uint8Array([1]))).length).toBe(48);
    await c.lockPcr(16);
    await c.lockPcrs(17);
    expect((await c.getRandom()).length).toBe(256);
    expect(await c.describeNsm()).toEqual({ versionMajor: 1, versionMinor: 0, versionPatch: 0, moduleId: 'i-0abc-enc0123', maxPcrs: 32, lockedPcrs: [0, 1, 2, 3, 4], digest: 'SHA384' });
    expect(seen).toEqual(['Attestation', 'DescribePCR', 'ExtendPCR', 'LockPCR', 'LockPCRs', 'GetRandom', 'DescribeNSM']);
  });

  const errors: [string, string][] = [
    ['InvalidArgument', 'ERR_NSM_INVALID_ARGUMENT'],
    ['InvalidIndex', 'ERR_NSM_INVALID_INDEX'],
    ['InvalidResponse', 'ERR_NSM_INVALID_RESPONSE'],
    ['ReadOnlyIndex', 'ERR_NSM_READ_ONLY_INDEX'],
    ['InvalidOperation', 'ERR_NSM_INVALID_OPERATION'],
    ['BufferTooSmall', 'ERR_NSM_BUFFER_TOO_SMALL'],
    ['InputTooLarge', 'ERR_NSM_INPUT_TOO_LARGE'],
    ['InternalError', 'ERR_NSM_INTERNAL_ERROR'],
    ['SomethingNew', 'ERR_NSM_UNKNOWN_ERROR'],
  ];
  it.each(errors)('{"Error":"%s"} -> %s', (name, code) => {
    let e: unknown;
    try {
      decodeNsmResponse(cbor({ Error: name }), 'ExtendPCR');
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(NsmError);
    expect((e as NsmError).code).toBe(code);
    expect((e as NsmError).nsmError).toBe(name);
  });

  it('refuses malformed or mismatched responses with ERR_NSM_RESPONSE_INVALID', () => {
    const bad = [
      cbor({ DescribePCR: { lock: true, data: Buffer.alloc(48) } }), // answers a different request
      cbor({ ExtendPCR: { data: Buffer.alloc(48) }, X: 1 }),
      cbor(['ExtendPCR']),
      cbor(42),
      new Uint8Array([0xa1, 0x69]),
      new Uint8Array(0),
      new Uint8Array(0x3001),
    ];
    for (const b of bad) {
      expect(() => decodeNsmResponse(b, 'ExtendPCR')).toThrow(expect.objectContaining({ code: 'ERR_NSM_RESPONSE_INVALID' }));
    }
    expect(() => decodeNsmResponse(cbor({ LockPCR: { x: 1 } }), 'LockPCR')).toThrow(expect.objectContaining({ code: 'ERR_NSM_RESPONSE_INVALID' }));
  });

  it('never throws anything but an NsmError on arbitrary response bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          decodeNsmResponse(bytes, 'DescribeNSM');
        } catch (e) {
          expect(e).toBeInstanceOf(NsmError);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('client checks the typed fields of a well-formed but wrong response', async () => {
    const c1 = new NsmClient({ request: async () => cbor({ ExtendPCR: { data: 'text' } }) });
    await expect(c1.extendPcr(16, new Uint8Array(1))).rejects.toMatchObject({ code: 'ERR_NSM_RESPONSE_INVALID' });
    const c = new NsmClient({ request: async () => cbor({ DescribeNSM: { version_major: 1, version_minor: 0, version_patch: 0, module_id: 5, max_pcrs: 32, locked_pcrs: [], digest: 'SHA384' } }) });
    await expect(c.describeNsm()).rejects.toMatchObject({ code: 'ERR_NSM_RESPONSE_INVALID' });
  });
});

describe.runIf(nativeBinding() !== null)('NSM device transport (the real ioctl path)', () => {
  it('a missing device says there is no NSM here', async () => {
    const t = new NsmDeviceTransport({ path: '/nonexistent/nsm' });
    await expect(t.request(encodeNsmRequest({ type: 'DescribeNSM' }))).rejects.toMatchObject({ code: 'ERR_NSM_UNAVAILABLE', syscall: 'open' });
  });

  it('NSM_IOCTL_RAW on a regular file fails with ENOTTY, as ERR_NSM_DEVICE', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ek-nsm-'));
    try {
      const f = join(dir, 'not-a-device');
      writeFileSync(f, 'x');
      const t = new NsmDeviceTransport({ path: f });
      let e: unknown;
      try {
        await t.request(encodeNsmRequest({ type: 'GetRandom' }));
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(NativeError);
      expect(e).toMatchObject({ code: 'ERR_NSM_DEVICE', syscall: 'ioctl', errno: -25 });
      expect(((e as NativeError).cause as NativeError).code).toBe('ENOTTY');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses oversized requests before the ioctl', async () => {
    const t = new NsmDeviceTransport({ path: '/dev/null' });
    await expect(t.request(new Uint8Array(4097))).rejects.toMatchObject({ code: 'ERR_NSM_INPUT_TOO_LARGE' });
    const b = nativeBinding()!;
    expect(() => b.nsmRequest('/dev/null', new Uint8Array(0))).toThrow(RangeError);
  });
});
