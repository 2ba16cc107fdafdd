/**
 * The portable saved state of a running SHA-256, the one form stored in upload sessions, so a node
 * hashing with the native addon (OpenSSL) and a node on the hash-wasm fallback continue each
 * other's uploads:
 *
 *   4 bytes magic "ws2\x01" | 8 state words, big-endian | u64 byte count, big-endian | the count % 64
 *   bytes of the unfinished block
 *
 * native/sha256.c writes and reads the same layout. hash-wasm's own save() output (what sessions
 * held before this form existed) is recognised and converted.
 */
const MAGIC = Buffer.from([0x77, 0x73, 0x32, 0x01]);
const HEADER = MAGIC.length + 32 + 8;
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

export interface Sha256State {
  words: number[];
  /** Bytes hashed so far. */
  count: number;
  /** The `count % 64` bytes not yet compressed. */
  pending: Buffer;
}

export class HashStateError extends Error {}

export function encodeState(state: Sha256State): Buffer {
  const out = Buffer.alloc(HEADER + state.pending.length);
  MAGIC.copy(out, 0);
  state.words.forEach((w, i) => out.writeUInt32BE(w >>> 0, MAGIC.length + 4 * i));
  out.writeBigUInt64BE(BigInt(state.count), MAGIC.length + 32);
  state.pending.copy(out, HEADER);
  return out;
}

export function isPortableState(bytes: Uint8Array): boolean {
  if (bytes.length < HEADER || !MAGIC.equals(bytes.subarray(0, MAGIC.length))) return false;
  const count = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).readBigUInt64BE(MAGIC.length + 32);
  return bytes.length === HEADER + Number(count % 64n);
}

export function decodeState(bytes: Uint8Array): Sha256State {
  if (!isPortableState(bytes)) throw new HashStateError('the saved SHA-256 state is in an unknown format');
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return {
    words: Array.from({ length: 8 }, (_, i) => b.readUInt32BE(MAGIC.length + 4 * i)),
    count: Number(b.readBigUInt64BE(MAGIC.length + 32)),
    pending: Buffer.from(b.subarray(HEADER)),
  };
}

/** The state of a hash that has seen no bytes: where every upload session starts. */
export function initialHashState(): Buffer {
  return encodeState({ words: IV, count: 0, pending: Buffer.alloc(0) });
}

// hash-wasm 4.x SHA-256 save(): a 4-byte tag of its WASM binary, then its C struct as laid out in
// wasm32 memory (little-endian): uint32 message[16] (the unfinished block as raw bytes, at 0),
// uint64 length in bytes (64), uint32 hash[8] (72), uint32 digest_length (104), padded to 112.
const WASM_TAG = 4;
const WASM_SIZE = WASM_TAG + 112;

/** Converts hash-wasm's save() output; `tag` is the 4-byte prefix the running hash-wasm writes. */
export function fromHashWasm(saved: Uint8Array, tag: Uint8Array): Sha256State {
  const b = Buffer.from(saved.buffer, saved.byteOffset, saved.length);
  if (b.length !== WASM_SIZE || !Buffer.from(tag).equals(b.subarray(0, WASM_TAG))) {
    throw new HashStateError('the saved SHA-256 state is in an unknown format');
  }
  const count = Number(b.readBigUInt64LE(WASM_TAG + 64));
  return {
    words: Array.from({ length: 8 }, (_, i) => b.readUInt32LE(WASM_TAG + 72 + 4 * i)),
    count,
    pending: Buffer.from(b.subarray(WASM_TAG, WASM_TAG + (count % 64))),
  };
}

export function toHashWasm(state: Sha256State, tag: Uint8Array): Uint8Array {
  const b = Buffer.alloc(WASM_SIZE);
  Buffer.from(tag).copy(b, 0);
  state.pending.copy(b, WASM_TAG);
  b.writeBigUInt64LE(BigInt(state.count), WASM_TAG + 64);
  state.words.forEach((w, i) => b.writeUInt32LE(w >>> 0, WASM_TAG + 72 + 4 * i));
  b.writeUInt32LE(32, WASM_TAG + 104);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}
