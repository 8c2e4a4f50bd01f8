/**
 * CRC-32/ISO-HDLC (the zlib / IEEE 802.3 CRC: reflected polynomial 0xEDB88320, initial value and
 * final XOR 0xFFFFFFFF), incremental. The EIF header's `eif_crc32` is this CRC (AWS's builder uses the
 * `crc` crate's CRC_32_ISO_HDLC, QEMU's loader zlib's crc32). Written here because attestation/ takes no
 * `node:` imports; host code may pass zlib.crc32 instead, and the tests check one against the other.
 */

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** Continue a CRC: `crc32(b, crc32(a))` equals `crc32(a ‖ b)`. The initial value is 0. */
export function crc32(data: Uint8Array, previous = 0): number {
  let c = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A CRC function: pure-JS `crc32` here, or Node's `zlib.crc32` (same signature and results). */
export type Crc32Fn = (data: Uint8Array, previous?: number) => number;
