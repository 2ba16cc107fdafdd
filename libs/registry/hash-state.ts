import { createSHA256, type IHasher } from 'hash-wasm';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * SHA-256 whose state can be saved to the upload session and resumed by another node:
 * node:crypto cannot serialize a running hash, hash-wasm can.
 */
export async function initialHashState(): Promise<Buffer> {
  const hasher = await createSHA256();
  hasher.init();
  return Buffer.from(hasher.save());
}

export async function resumeHash(state: Buffer | null): Promise<IHasher> {
  const hasher = await createSHA256();
  if (state) hasher.load(state);
  else hasher.init();
  return hasher;
}

export function saveHash(hasher: IHasher): Buffer {
  return Buffer.from(hasher.save());
}

/** `sha256:<hex>` of what the hasher has seen, without disturbing its state. */
export function currentDigest(hasher: IHasher): string {
  const saved = hasher.save();
  const hex = hasher.digest('hex');
  hasher.load(saved);
  return `sha256:${hex}`;
}

/** Passes bytes through, feeding the hasher and refusing more than `limit` bytes. */
export class HashingCounter extends Transform {
  bytes = 0;

  constructor(
    private readonly hasher: IHasher,
    private readonly limit: number | undefined,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.limit !== undefined && this.bytes > this.limit) {
      callback(new BodyTooLongError(this.limit));
      return;
    }
    this.hasher.update(chunk);
    callback(null, chunk);
  }
}

export class BodyTooLongError extends Error {
  constructor(readonly limit: number) {
    super(`request body is longer than the declared ${limit} bytes`);
  }
}

export class BodyAbortedError extends Error {
  constructor(cause?: Error) {
    super('request body ended before it was complete', { cause });
  }
}
