import type { HashSession } from './hash-pool.js';
import { Transform, type TransformCallback } from 'node:stream';

/** Passes bytes through, feeding the hasher and refusing more than `limit` bytes. */
export class HashingCounter extends Transform {
  bytes = 0;

  constructor(
    private readonly hash: HashSession,
    private readonly limit: number | undefined,
    /** Bytes the blob may still grow by (limits.blobbytes less what the session holds). */
    private readonly room?: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.room !== undefined && this.bytes > this.room) {
      callback(new BlobTooLargeError());
      return;
    }
    if (this.limit !== undefined && this.bytes > this.limit) {
      callback(new BodyTooLongError(this.limit));
      return;
    }
    const wait = this.hash.update(chunk);
    if (wait) wait.then(() => callback(null, chunk), callback);
    else callback(null, chunk);
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

export class BlobTooLargeError extends Error {
  constructor() {
    super('blob is larger than this registry accepts');
  }
}
