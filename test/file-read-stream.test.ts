/**
 * The filesystem store's read streams: piped (every chunk a buffer of its own) and copied into a
 * Writable through the pooled read buffers (what a blob GET does), whole and as ranges, and what
 * each does when the file turns out shorter than it was at open.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { copiesToWritable, FilesystemBlobStore } from '../libs/storage/index.js';

const MiB = 1024 * 1024;
let dir: string;
let store: FilesystemBlobStore;
/** Not a multiple of the read size, so the last read is a short one. */
const bytes = randomBytes(3 * MiB + 12_345);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-file-read-'));
  store = new FilesystemBlobStore(dir);
  await writeFile(join(dir, 'blob'), bytes);
});
after(() => rm(dir, { recursive: true, force: true }));

/** A Writable that keeps copies of what it is given (the store reuses its buffers) and takes each write late, as a slow socket does. */
function collector(): { out: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      setImmediate(callback);
    },
  });
  return { out, bytes: () => Buffer.concat(chunks) };
}

async function piped(key: string, range?: { start: number; end: number }): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.read(key, range)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('filesystem read streams', () => {
  it('stream the whole file and ranges of it when read as a Readable', async () => {
    assert.ok((await piped('blob')).equals(bytes));
    assert.ok((await piped('blob', { start: 5, end: 2 * MiB })).equals(bytes.subarray(5, 2 * MiB + 1)));
    assert.ok((await piped('blob', { start: bytes.length - 1, end: bytes.length - 1 })).equals(bytes.subarray(-1)));
  });

  it('copy the whole file and ranges of it into a Writable, reusing buffers only once each write is taken', async () => {
    for (const range of [undefined, { start: 0, end: 0 }, { start: 7, end: MiB + 3 }, { start: MiB, end: bytes.length - 1 }]) {
      const stream = await store.read('blob', range);
      assert.ok(copiesToWritable(stream));
      const sink = collector();
      await stream.copyTo(sink.out);
      const expected = range ? bytes.subarray(range.start, range.end + 1) : bytes;
      assert.ok(sink.bytes().equals(expected), `range ${JSON.stringify(range)}`);
      assert.ok(stream.destroyed, 'the file is closed after the copy');
    }
  });

  it('fail, instead of ending early, when the file is shorter than it was at open', async () => {
    await writeFile(join(dir, 'shrinks'), bytes);
    const copied = await store.read('shrinks');
    const streamed = await store.read('shrinks');
    await truncate(join(dir, 'shrinks'), MiB);
    assert.ok(copiesToWritable(copied));
    await assert.rejects(copied.copyTo(collector().out), /ended \d+ bytes early/);
    await assert.rejects(async () => {
      for await (const _ of streamed) {
        // drain
      }
    }, /ended \d+ bytes early/);
  });

  it('stop copying when the destination closes', async () => {
    const stream = await store.read('blob');
    assert.ok(copiesToWritable(stream));
    const out = new Writable({
      write(_chunk, _encoding, callback) {
        out.destroy();
        callback();
      },
    });
    await assert.rejects(stream.copyTo(out));
    assert.ok(stream.destroyed);
  });
});
