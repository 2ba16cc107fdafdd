import type { FileHandle } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import type { ByteRange } from './blob-store.js';
import { giveReadBuffer, READ_BUFFER_BYTES, takeReadBuffer } from './read-buffers.js';

/** One read (and one socket write): fewer, larger syscalls than fs.createReadStream's 64 KiB. */
const READ_BYTES = READ_BUFFER_BYTES;

/** A stream that can also write itself into a Writable without allocating a buffer per chunk. */
export interface CopiesToWritable {
  /**
   * Writes the stream's bytes into `out` (which it does not end), reading the next chunk while
   * the previous one is being written and reusing a buffer only once `out` has taken it. Instead of
   * consuming the stream as a Readable, not as well; the stream is destroyed afterwards. Rejects
   * when a read fails or `out` fails or closes first.
   */
  copyTo(out: Writable): Promise<void>;
}

export function copiesToWritable(stream: Readable): stream is Readable & CopiesToWritable {
  return typeof (stream as Partial<CopiesToWritable>).copyTo === 'function';
}

/**
 * A file, or an inclusive byte range of it, as a Readable. Piped, every chunk is a fresh buffer as
 * with fs.createReadStream; through copyTo the reads go into a few pooled buffers instead. That is
 * what a blob GET uses: a fresh 256 KiB buffer per read made the garbage collector the largest
 * cost of serving a big blob (external memory triggers full collections of the whole heap: 37 %
 * of the node's CPU in a profile of 1 GiB GETs).
 */
export class FileReadStream extends Readable implements CopiesToWritable {
  private position: number;
  /** Exclusive end. */
  private readonly end: number;
  private copying = false;

  /** `range` of the file of `size` bytes. */
  constructor(
    private readonly handle: FileHandle,
    range: ByteRange | undefined,
    size: number,
  ) {
    super({ highWaterMark: READ_BYTES });
    this.position = range?.start ?? 0;
    this.end = range ? range.end + 1 : size;
  }

  override _read(): void {
    const length = Math.min(READ_BYTES, this.end - this.position);
    if (length <= 0) {
      this.push(null);
      return;
    }
    const buffer = Buffer.allocUnsafeSlow(length);
    this.handle.read(buffer, 0, length, this.position).then(
      ({ bytesRead }) => {
        if (bytesRead === 0) return void this.destroy(shortFile(this.end - this.position));
        this.position += bytesRead;
        this.push(buffer.subarray(0, bytesRead));
      },
      (err: Error) => this.destroy(err),
    );
  }

  async copyTo(out: Writable): Promise<void> {
    if (this.copying || this.readableFlowing !== null || this.destroyed) throw new Error('the stream is already being read');
    this.copying = true;
    const taken: Buffer[] = [];
    const take = () => {
      const buffer = takeReadBuffer();
      taken.push(buffer);
      return buffer;
    };
    let clean = false;
    let stop: (err: Error) => void = () => {};
    const closed = new Promise<never>((_, reject) => (stop = reject));
    closed.catch(() => {});
    const onClose = () => stop(new Error('the destination closed before the copy ended'));
    out.once('close', onClose);
    out.once('error', stop);
    try {
      let spare: Buffer | undefined;
      let writing: { buffer: Buffer; done: Promise<void> } | undefined;
      while (this.position < this.end) {
        const buffer = spare ?? take();
        spare = undefined;
        const length = Math.min(buffer.length, this.end - this.position);
        const { bytesRead } = await this.handle.read(buffer, 0, length, this.position);
        if (bytesRead === 0) throw shortFile(this.end - this.position);
        this.position += bytesRead;
        if (writing) {
          await Promise.race([writing.done, closed]);
          spare = writing.buffer;
        }
        writing = { buffer, done: written(out, buffer.subarray(0, bytesRead)) };
      }
      if (writing) await Promise.race([writing.done, closed]);
      clean = true;
    } finally {
      out.off('close', onClose);
      out.off('error', stop);
      // After a failure the destination may still hold a buffer: those go to the collector.
      if (clean) for (const buffer of taken) giveReadBuffer(buffer);
      this.destroy();
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.handle.close().then(
      () => callback(err),
      (closeErr: Error) => callback(err ?? closeErr),
    );
  }
}

/** A file truncated under a reader (its size was read at open). */
function shortFile(missing: number): Error {
  return new Error(`the file ended ${missing} bytes early`);
}

/** Resolves once `out` has taken `chunk`. Awaited later (the next read runs first): never an unhandled rejection meanwhile. */
function written(out: Writable, chunk: Buffer): Promise<void> {
  const done = new Promise<void>((resolve, reject) => {
    out.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
  done.catch(() => {});
  return done;
}
