import type { Dir } from 'node:fs';
import { access, constants, mkdir, open, opendir, rm, stat, truncate } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobStore, ByteRange, StoredObject, UploadState } from './blob-store.js';
import { FileReadStream } from './file-read-stream.js';
import { FileWriteStream } from './file-write-stream.js';

/** Blob bytes as files under one directory; keys are relative paths. */
export class FilesystemBlobStore implements BlobStore {
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  private path(key: string): string {
    const path = join(this.root, key);
    if (!path.startsWith(this.root + '/')) throw new Error(`storage key escapes the store: ${key}`);
    return path;
  }

  /** The root must exist and be writable: a vanished or read-only volume fails here. */
  async ping(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await access(this.root, constants.R_OK | constants.W_OK);
  }

  async beginUpload(key: string): Promise<UploadState> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    await (await open(path, 'w')).close();
    return {};
  }

  async append(key: string, state: UploadState, offset: number, source: Readable): Promise<{ written: number; state: UploadState }> {
    const path = this.path(key);
    const out = new FileWriteStream(path, offset);
    await pipeline(source, out);
    const written = out.bytesWritten;
    // A failed earlier attempt may have left bytes past the new end.
    await truncate(path, offset + written);
    return { written, state };
  }

  async completeUpload(key: string, _state: UploadState, size: number): Promise<void> {
    const handle = await open(this.path(key), 'r+');
    try {
      await handle.truncate(size);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async abortUpload(key: string): Promise<void> {
    await this.delete(key);
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const path = this.path(key);
    const handle = await open(path, 'r'); // fail here, not mid-response, when the file is gone
    try {
      return new FileReadStream(handle, range, (await handle.stat()).size);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async *list(): AsyncIterable<StoredObject> {
    const walk = async function* (dir: string, prefix: string): AsyncGenerator<StoredObject> {
      let entries: Dir;
      try {
        entries = await opendir(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for await (const entry of entries) {
        const key = prefix + entry.name;
        if (entry.isDirectory()) {
          yield* walk(join(dir, entry.name), `${key}/`);
        } else if (entry.isFile()) {
          const info = await stat(join(dir, entry.name)).catch(() => undefined);
          if (info) yield { key, belongsTo: key, size: info.size, modified: info.mtime };
        }
      }
    };
    yield* walk(this.root, '');
  }
}
