/** S3BlobStore against a real S3 endpoint: s3rver in a child process, or WHARF_TEST_S3_ENDPOINT. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { UploadState } from '../libs/storage/index.js';
import { S3BlobStore, type S3UploadState } from '../libs/storage/s3.js';
import { startS3rver, type S3Endpoint } from './helpers/s3rver.js';

const MiB = 1024 * 1024;
const KiB = 1024;
/** The part size these tests' byte arithmetic is written for (the default is larger). */
const PART = 8 * MiB;

let s3: S3Endpoint;
let store: S3BlobStore;
const stores: S3BlobStore[] = [];

function openStore(): S3BlobStore {
  const opened = new S3BlobStore({
    endpoint: s3.endpoint,
    region: s3.region,
    bucket: s3.bucket,
    prefix: 'wharf-test/',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    partSize: PART,
  });
  stores.push(opened);
  return opened;
}

let keys = 0;
function newKey(): string {
  return `k${process.pid}-${Date.now().toString(36)}-${keys++}/blob`;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A byte source delivered in chunks of at most `chunk` bytes, as an HTTP body would be. */
function sourceOf(data: Buffer, chunk = 64 * KiB): Readable {
  return Readable.from(
    (function* () {
      for (let at = 0; at < data.length; at += chunk) yield data.subarray(at, at + chunk);
    })(),
    { objectMode: false },
  );
}

function stateOf(state: UploadState): S3UploadState {
  return state as S3UploadState;
}

/** Object keys in the bucket under this upload's key (the object and its tails). */
async function objectsFor(key: string): Promise<string[]> {
  const out = await store.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `wharf-test/${key}` }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

/** Appends `chunks` one request each, checking the offset bookkeeping; returns the final state. */
async function appendAll(key: string, state: UploadState, chunks: Buffer[]): Promise<{ state: UploadState; offset: number }> {
  let offset = 0;
  for (const chunk of chunks) {
    const result = await store.append(key, state, offset, sourceOf(chunk));
    assert.equal(result.written, chunk.length);
    offset += result.written;
    state = result.state;
    const s = stateOf(state);
    assert.equal(s.parts.reduce((n, p) => n + p.size, 0) + (s.tail?.size ?? 0), offset, 'state accounts for every byte');
    // A request's leftover of at least S3's 5 MiB minimum becomes a (shorter) part of its own.
    assert.ok(
      s.parts.every((p) => p.size === PART || (p.size >= 5 * MiB && p.size < PART)),
      'full parts, or leftovers of at least 5 MiB',
    );
    assert.ok((s.tail?.size ?? 0) < 5 * MiB, 'tail below the minimum part size');
  }
  return { state, offset };
}

before(async () => {
  s3 = await startS3rver();
  store = openStore();
});

after(async () => {
  for (const s of stores) s.destroy();
  await s3?.close();
});

describe('S3BlobStore', () => {
  test('small blob in one append: read back whole and by range; no tail left behind', async () => {
    const key = newKey();
    const data = randomBytes(3000);
    const { state, offset } = await appendAll(key, await store.beginUpload(key), [data]);
    assert.equal(stateOf(state).parts.length, 0);
    await store.completeUpload(key, state, offset);
    assert.deepEqual(await readAll(await store.read(key)), data);
    assert.deepEqual(await readAll(await store.read(key, { start: 10, end: 1009 })), data.subarray(10, 1010));
    assert.deepEqual(await readAll(await store.read(key, { start: 2999, end: 2999 })), data.subarray(2999));
    assert.deepEqual(await objectsFor(key), [`wharf-test/${key}`]);
  });

  test('23 MiB in appends of irregular sizes', async () => {
    const key = newKey();
    const data = randomBytes(23 * MiB);
    const sizes = [1, 100 * KiB, 7 * MiB, 6 * MiB];
    const chunks: Buffer[] = [];
    let at = 0;
    for (const size of [...sizes, data.length - sizes.reduce((a, b) => a + b, 0)]) {
      chunks.push(data.subarray(at, at + size));
      at += size;
    }
    const { state, offset } = await appendAll(key, await store.beginUpload(key), chunks);
    assert.equal(offset, data.length);
    // 7.1 MiB after the third request, 6 MiB after the fourth, then 8 MiB and a 1.9 MiB tail.
    assert.deepEqual(
      stateOf(state).parts.map((p) => p.size),
      [7 * MiB + 100 * KiB + 1, 6 * MiB, PART],
    );
    await store.completeUpload(key, state, offset);
    assert.equal(sha256(await readAll(await store.read(key))), sha256(data));
    const middle = { start: PART - 5, end: 2 * PART + 5 };
    assert.deepEqual(await readAll(await store.read(key, middle)), data.subarray(middle.start, middle.end + 1));
    assert.deepEqual(await objectsFor(key), [`wharf-test/${key}`], 'every tail generation is gone');
  });

  test('reads at most one part ahead: the source is never read further than one part past what was sent (one more may be on its way to S3)', async (t) => {
    const counting = openStore();
    let sent = 0;
    counting.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UploadPartCommand') sent += (args.input as { ContentLength: number }).ContentLength;
        return next(args);
      },
      { step: 'initialize', name: 'countPartBytes' },
    );
    const key = newKey();
    const chunk = MiB;
    const total = 5 * PART + 3 * chunk;
    let pulled = 0;
    let worst = 0;
    const hash = createHash('sha256');
    const source = Readable.from(
      (function* () {
        while (pulled < total) {
          const bytes = randomBytes(Math.min(chunk, total - pulled));
          hash.update(bytes);
          pulled += bytes.length;
          worst = Math.max(worst, pulled - sent);
          yield bytes;
        }
      })(),
      { objectMode: false, highWaterMark: 1 },
    );
    const state = await counting.beginUpload(key);
    const result = await counting.append(key, state, 0, source);
    assert.equal(result.written, total);
    assert.equal(sent, 5 * PART);
    // The part being filled, the chunk that overflows it, and the stream's one chunk of read-ahead.
    t.diagnostic(`at most ${worst} bytes pulled from the source and not yet sent as a part`);
    assert.ok(worst <= PART + 2 * chunk, `held ${worst} bytes not yet sent`);
    await counting.completeUpload(key, result.state, total);
    const back = createHash('sha256');
    for await (const c of await counting.read(key)) back.update(c as Buffer);
    assert.equal(back.digest('hex'), hash.digest('hex'));
  });

  test('a request that fails half-way through a 12 MiB chunk is retried from the committed state', async () => {
    const key = newKey();
    const data = randomBytes(17 * MiB);
    const first = data.subarray(0, 3 * MiB);
    const second = data.subarray(3 * MiB, 15 * MiB);
    const third = data.subarray(15 * MiB);
    let { state } = await appendAll(key, await store.beginUpload(key), [first]);
    const committed = state;
    const committedTail = stateOf(committed).tail!;

    // The body breaks after 6 MiB of 12: the 8 MiB part 1 was uploaded, 1 MiB sat in memory.
    const broken = Readable.from(
      (function* () {
        for (let at = 0; at < 6 * MiB; at += 256 * KiB) yield second.subarray(at, at + 256 * KiB);
        throw new Error('client hung up');
      })(),
      { objectMode: false },
    );
    await assert.rejects(store.append(key, committed, first.length, broken), /client hung up/);
    assert.ok((await objectsFor(key)).includes(committedTail.key), 'the committed tail survives a failed request');

    const retry = await store.append(key, committed, first.length, sourceOf(second));
    assert.equal(retry.written, second.length);
    state = retry.state;
    // The 8 MiB part, then the 7 MiB left over as a part of its own.
    assert.deepEqual(
      stateOf(state).parts.map((p) => p.partNumber),
      [1, 2],
    );
    const last = await store.append(key, state, first.length + second.length, sourceOf(third));
    await store.completeUpload(key, last.state, data.length);
    assert.equal(sha256(await readAll(await store.read(key))), sha256(data));
    assert.deepEqual(await objectsFor(key), [`wharf-test/${key}`]);
  });

  test('a request whose commit failed is replaced: its parts and tail are overwritten by the retry', async () => {
    const key = newKey();
    const head = randomBytes(MiB);
    const lost = randomBytes(9 * MiB + 77);
    const kept = randomBytes(9 * MiB + 5);
    const { state: committed } = await appendAll(key, await store.beginUpload(key), [head]);
    // Succeeds in storage, but its transaction rolls back: its state is never saved.
    const discarded = await store.append(key, committed, head.length, sourceOf(lost));
    assert.equal(discarded.written, lost.length);
    const retry = await store.append(key, committed, head.length, sourceOf(kept));
    assert.equal(stateOf(retry.state).tail!.key, stateOf(discarded.state).tail!.key, 'same generation, overwritten');
    await store.completeUpload(key, retry.state, head.length + kept.length);
    assert.equal(sha256(await readAll(await store.read(key))), sha256(Buffer.concat([head, kept])));
    assert.deepEqual(await objectsFor(key), [`wharf-test/${key}`]);
  });

  test('concurrent uploads in several appends each get their own bytes (part buffers are pooled across requests)', async () => {
    const one = async () => {
      const key = newKey();
      const data = randomBytes(3 * PART + 123 * KiB);
      let state = await store.beginUpload(key);
      let offset = 0;
      for (const size of [PART + 5, 2 * PART - 7, 123 * KiB + 2]) {
        const r = await store.append(key, state, offset, sourceOf(data.subarray(offset, offset + size), 256 * KiB));
        offset += r.written;
        state = r.state;
      }
      await store.completeUpload(key, state, data.length);
      assert.equal(sha256(await readAll(await store.read(key))), sha256(data));
    };
    await Promise.all([one(), one(), one()]);
  });

  test('a blob of exactly two parts has no tail', async () => {
    const key = newKey();
    const data = randomBytes(2 * PART);
    const { state, offset } = await appendAll(key, await store.beginUpload(key), [data.subarray(0, 3 * MiB), data.subarray(3 * MiB)]);
    assert.equal(stateOf(state).tail, null);
    await store.completeUpload(key, state, offset);
    assert.equal(sha256(await readAll(await store.read(key))), sha256(data));
    assert.deepEqual(await objectsFor(key), [`wharf-test/${key}`]);
  });

  test('empty blob, with and without an empty append', async () => {
    const key = newKey();
    const begun = await store.beginUpload(key);
    const empty = await store.append(key, begun, 0, Readable.from([], { objectMode: false }));
    assert.equal(empty.written, 0);
    await store.completeUpload(key, empty.state, 0);
    assert.equal((await readAll(await store.read(key))).length, 0);

    const other = newKey();
    await store.completeUpload(other, await store.beginUpload(other), 0);
    assert.equal((await readAll(await store.read(other))).length, 0);
  });

  test('an empty append keeps the tail where it is', async () => {
    const key = newKey();
    const data = randomBytes(1000);
    const { state } = await appendAll(key, await store.beginUpload(key), [data]);
    const again = await store.append(key, state, data.length, Readable.from([], { objectMode: false }));
    assert.equal(again.written, 0);
    assert.deepEqual(stateOf(again.state).tail, stateOf(state).tail);
    await store.completeUpload(key, again.state, data.length);
    assert.deepEqual(await readAll(await store.read(key)), data);
  });

  test('an offset that disagrees with the state is refused', async () => {
    const key = newKey();
    const { state } = await appendAll(key, await store.beginUpload(key), [randomBytes(10)]);
    await assert.rejects(store.append(key, state, 5, sourceOf(randomBytes(10))), /offset 5/);
    await assert.rejects(store.completeUpload(key, state, 11), /11 bytes/);
    await store.abortUpload(key, state);
  });

  test('abort removes tails and leaves nothing readable', async () => {
    const key = newKey();
    const { state } = await appendAll(key, await store.beginUpload(key), [randomBytes(MiB), randomBytes(9 * MiB)]);
    assert.equal(stateOf(state).parts.length, 1);
    assert.notEqual(stateOf(state).tail, null);
    await store.abortUpload(key, state);
    assert.deepEqual(await objectsFor(key), []);
    await assert.rejects(store.read(key), { name: 'NoSuchKey' });
  });

  test('abort with an empty state removes a finished object (the redundant-copy case)', async () => {
    const key = newKey();
    const { state, offset } = await appendAll(key, await store.beginUpload(key), [randomBytes(100)]);
    await store.completeUpload(key, state, offset);
    await store.abortUpload(key, {});
    await assert.rejects(store.read(key), { name: 'NoSuchKey' });
  });

  test('delete is idempotent; reading a missing key rejects before any bytes', async () => {
    const key = newKey();
    const { state, offset } = await appendAll(key, await store.beginUpload(key), [randomBytes(100)]);
    await store.completeUpload(key, state, offset);
    await store.delete(key);
    await store.delete(key);
    await store.delete(newKey());
    await assert.rejects(store.read(key), { name: 'NoSuchKey' });
    await assert.rejects(store.read(key, { start: 0, end: 10 }), { name: 'NoSuchKey' });
  });

  test('with a public endpoint, presigned URLs name it and are signed for it', async () => {
    const key = newKey();
    const data = randomBytes(3000);
    const { state, offset } = await appendAll(key, await store.beginUpload(key), [data]);
    await store.completeUpload(key, state, offset);
    // An address, so that neither server takes the host for a virtual-hosted bucket name.
    const publicHost = '127.0.0.2:9443';
    const fronted = new S3BlobStore({
      endpoint: s3.endpoint,
      publicEndpoint: `http://${publicHost}`,
      region: s3.region,
      bucket: s3.bucket,
      prefix: 'wharf-test/',
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    stores.push(fronted);
    const url = new URL(await fronted.presignedGetUrl(key, 60));
    assert.equal(url.host, publicHost);
    // What a proxy at the public address does: forward to S3 with the Host the client used.
    const direct = new URL(s3.endpoint);
    const res = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      request({ host: direct.hostname, port: direct.port, path: url.pathname + url.search, headers: { host: publicHost } }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks) }));
      })
        .on('error', reject)
        .end();
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, data);
  });

  test('presignedGetUrl can be fetched without credentials', async () => {
    const key = newKey();
    const data = randomBytes(5000);
    const { state, offset } = await appendAll(key, await store.beginUpload(key), [data]);
    await store.completeUpload(key, state, offset);
    const url = await store.presignedGetUrl(key, 60);
    assert.match(url, /X-Amz-Signature=/);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
    const ranged = await fetch(url, { headers: { Range: 'bytes=100-199' } });
    assert.equal(ranged.status, 206);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), data.subarray(100, 200));
    // Signed a year ago: expired. (s3rver checks expiry but not V4 signatures; real S3 refuses either way.)
    const stale = new URL(url);
    stale.searchParams.set('X-Amz-Date', `${new Date().getUTCFullYear() - 1}0101T000000Z`);
    const refused = await fetch(stale);
    await refused.arrayBuffer();
    assert.equal(refused.status, 403);
  });
});
