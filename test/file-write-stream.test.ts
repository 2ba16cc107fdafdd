/**
 * The filesystem store's upload writes: bytes land at the session's offset over several appends,
 * are flushed to disk behind the writes while the body is still arriving (one flush at a time,
 * the last one ended before the append resolves), a failed flush fails the append instead of
 * being dropped, and a body that dies after flushes began leaves the upload resumable at its
 * old offset.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { FileWriteStream, FLUSH_BYTES } from '../libs/storage/file-write-stream.js';
import { FilesystemBlobStore, isStorageUnavailable } from '../libs/storage/index.js';

const MiB = 1024 * 1024;
let dir: string;
let store: FilesystemBlobStore;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-file-write-'));
  store = new FilesystemBlobStore(dir);
});
after(() => rm(dir, { recursive: true, force: true }));

/** `bytes` as a body arriving in socket-sized pieces of varying length. */
function body(bytes: Buffer): Readable {
  return Readable.from(
    (function* () {
      let at = 0;
      for (let i = 0; at < bytes.length; i++) {
        const size = [65_536, 1, 16_384, 200_000][i % 4]!;
        yield bytes.subarray(at, at + size);
        at += size;
      }
    })(),
  );
}

/** A body that yields `bytes`, then fails as a client hanging up does. */
function dyingBody(bytes: Buffer): Readable {
  return Readable.from(
    (async function* () {
      yield* body(bytes);
      throw new Error('client hung up');
    })(),
  );
}

/** A real file handle whose datasync calls are counted (and how many ran at once), or made to fail. */
function watchedHandle(handle: FileHandle, failWith?: NodeJS.ErrnoException) {
  const seen = { calls: 0, running: 0, mostAtOnce: 0 };
  const datasync = async () => {
    seen.calls++;
    seen.running++;
    seen.mostAtOnce = Math.max(seen.mostAtOnce, seen.running);
    try {
      if (failWith) throw failWith;
      await handle.datasync();
    } finally {
      seen.running--;
    }
  };
  const get = (target: FileHandle, p: string | symbol) => {
    if (p === 'datasync') return datasync;
    const value = Reflect.get(target, p);
    return typeof value === 'function' ? value.bind(target) : value;
  };
  return { handle: new Proxy(handle, { get }), seen };
}

describe('filesystem upload writes', () => {
  it('write every append at its offset and cut bytes an earlier attempt left past it', async () => {
    const bytes = randomBytes(3 * FLUSH_BYTES + 777);
    await store.beginUpload('up/one');
    const first = await store.append('up/one', {}, 0, body(bytes.subarray(0, 2 * MiB)));
    assert.equal(first.written, 2 * MiB);
    // An attempt the session never recorded (its transaction rolled back) wrote further; the retry starts at the recorded offset.
    await store.append('up/one', {}, 2 * MiB, body(randomBytes(3 * MiB)));
    const second = await store.append('up/one', {}, 2 * MiB, body(bytes.subarray(2 * MiB)));
    assert.equal(second.written, bytes.length - 2 * MiB);
    await store.completeUpload('up/one', {}, bytes.length);
    assert.ok((await readFile(join(dir, 'up/one'))).equals(bytes));
  });

  it('flush behind the writes, one flush at a time, and end only after the last flush began has ended', async () => {
    const bytes = randomBytes(5 * FLUSH_BYTES + 1);
    await store.beginUpload('up/flushes');
    let seen: ReturnType<typeof watchedHandle>['seen'] | undefined;
    const out = new FileWriteStream(join(dir, 'up/flushes'), 0, async (path) => {
      const watched = watchedHandle(await open(path, 'r+'));
      seen = watched.seen;
      return watched.handle;
    });
    await pipeline(body(bytes), out);
    assert.equal(out.bytesWritten, bytes.length);
    assert.ok(seen && seen.calls >= 1 && seen.calls <= 5, `${seen?.calls} flushes`);
    assert.equal(seen.mostAtOnce, 1);
    assert.equal(seen.running, 0, 'a flush still running after the stream finished');
    assert.ok((await readFile(join(dir, 'up/flushes'))).equals(bytes));
  });

  it('fail the write when a flush fails: the error is not seen again by a later fsync', async () => {
    await store.beginUpload('up/eio');
    const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    let seen: ReturnType<typeof watchedHandle>['seen'] | undefined;
    const out = new FileWriteStream(join(dir, 'up/eio'), 0, async (path) => {
      const watched = watchedHandle(await open(path, 'r+'), eio);
      seen = watched.seen;
      return watched.handle;
    });
    await assert.rejects(pipeline(body(randomBytes(3 * FLUSH_BYTES)), out), (err: Error) => {
      assert.ok(isStorageUnavailable(err), `${err}`);
      return true;
    });
    assert.ok(seen && seen.calls >= 1);
  });

  it('fail cleanly when the file cannot be opened', async () => {
    await assert.rejects(store.append('up/never-begun', {}, 0, body(randomBytes(1000))), { code: 'ENOENT' });
  });

  it('leave the upload resumable at its old offset when the body dies after flushes began', async () => {
    const bytes = randomBytes(4 * FLUSH_BYTES);
    await store.beginUpload('up/dies');
    await store.append('up/dies', {}, 0, body(bytes.subarray(0, MiB)));
    await assert.rejects(store.append('up/dies', {}, MiB, dyingBody(randomBytes(3 * FLUSH_BYTES))), /client hung up/);
    const rest = await store.append('up/dies', {}, MiB, body(bytes.subarray(MiB)));
    assert.equal(rest.written, bytes.length - MiB);
    await store.completeUpload('up/dies', {}, bytes.length);
    assert.ok((await readFile(join(dir, 'up/dies'))).equals(bytes));
  });
});
