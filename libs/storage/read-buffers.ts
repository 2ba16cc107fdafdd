/**
 * Buffers of blob bodies on their way to a client, shared by the file and S3 read paths. A fresh
 * buffer per read made the garbage collector the largest cost of serving big blobs (external memory
 * triggers full collections of the whole heap); these are reused once a socket has flushed them.
 */
export const READ_BUFFER_BYTES = 512 * 1024;
/** Kept between copies (32 MiB): two per copy in progress, 32 copies at once. */
const POOLED_BUFFERS = 64;
const pool: Buffer[] = [];

export function takeReadBuffer(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
}

/** Only once nothing holds `buffer` any more (a failed write may still): then it goes to the collector instead. */
export function giveReadBuffer(buffer: Buffer): void {
  if (pool.length < POOLED_BUFFERS && buffer.length === READ_BUFFER_BYTES) pool.push(buffer);
}
