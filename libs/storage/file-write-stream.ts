import { open, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** Bytes buffered before the source is paused: large writev calls instead of one per socket read. */
const BUFFER_BYTES = 1024 * 1024;
/** Bytes written since the last flush began after which the next flush starts. */
export const FLUSH_BYTES = 4 * 1024 * 1024;

/**
 * Writes into a file from `position` on and, while the bytes keep coming, flushes them to disk
 * behind the writes (an fdatasync every FLUSH_BYTES, one at a time, the request never waiting on
 * it): the fsync that seals the upload then finds little left to write. The stream finishes only
 * once the last flush begun has ended, and fails when any flush failed; a flush's error is not
 * seen again by a later fsync of the file, so it must not be dropped.
 *
 * Opens the file itself (in _construct) so that a caller can pipe into it at once: an await
 * between piping a body into a transform and handing that transform to pipeline() would leave the
 * transform's error (a client hanging up) with no listener.
 */
export class FileWriteStream extends Writable {
  bytesWritten = 0;
  private handle!: FileHandle;
  private flushedUpTo = 0;
  private flushing: Promise<void> | undefined;
  private flushError: Error | undefined;

  constructor(
    private readonly path: string,
    private position: number,
    /** How the existing file is opened for writing (a test watches the handle). */
    private readonly openFile: (path: string) => Promise<FileHandle> = (p) => open(p, 'r+'),
    private readonly flushBytes = FLUSH_BYTES,
  ) {
    super({ highWaterMark: BUFFER_BYTES });
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.openFile(this.path).then((handle) => {
      this.handle = handle;
      callback();
    }, callback);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => callback(), callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.settled().then(() => callback(this.flushError), callback);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.handle) {
      callback(err); // the open failed
      return;
    }
    // Closed only once no flush is using the handle.
    this.settled()
      .then(() => this.handle.close())
      .then(
        () => callback(err),
        (closeErr: Error) => callback(err ?? closeErr),
      );
  }

  private async writeAll(buffers: Buffer[]): Promise<void> {
    if (this.flushError) throw this.flushError;
    let rest = buffers;
    while (rest.length > 0) {
      const { bytesWritten } = await this.handle.writev(rest, this.position);
      if (bytesWritten === 0) throw new Error('the file took no bytes');
      this.position += bytesWritten;
      this.bytesWritten += bytesWritten;
      rest = skip(rest, bytesWritten);
    }
    if (!this.flushing && this.bytesWritten - this.flushedUpTo >= this.flushBytes) this.flushBehind();
  }

  private flushBehind(): void {
    this.flushedUpTo = this.bytesWritten;
    this.flushing = this.handle.datasync().then(
      () => {
        this.flushing = undefined;
      },
      (err: Error) => {
        this.flushing = undefined;
        this.flushError ??= err;
      },
    );
  }

  private async settled(): Promise<void> {
    while (this.flushing) await this.flushing;
  }
}

/** `buffers` without their first `bytes` bytes (a short writev). */
function skip(buffers: Buffer[], bytes: number): Buffer[] {
  let i = 0;
  let left = bytes;
  while (i < buffers.length && left >= buffers[i]!.length) left -= buffers[i++]!.length;
  const rest = buffers.slice(i);
  if (left > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(left);
  return rest;
}
