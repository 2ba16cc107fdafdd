/**
 * Blob reads of the S3 driver over its own HTTP/1.1 client (libs/storage/s3-get.ts): against a
 * real S3 endpoint (s3rver, or WHARF_TEST_S3_ENDPOINT such as Ceph RGW) for bytes, ranges, error
 * answers and keep-alive; against a scripted TCP server for what a real one rarely does on
 * demand: 503s, a body cut short, a body that stops, a chunked answer.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { isStorageUnavailable } from '../libs/storage/index.js';
import { BodyStalledError } from '../libs/storage/idle-body.js';
import { S3BlobStore } from '../libs/storage/s3.js';
import { S3Body } from '../libs/storage/s3-get.js';
import { startS3rver, type S3Endpoint } from './helpers/s3rver.js';

const MiB = 1024 * 1024;
let s3: S3Endpoint;
const stores: S3BlobStore[] = [];

function openStore(endpoint: string, extra: { timeoutMs?: number; maxAttempts?: number } = {}): S3BlobStore {
  const opened = new S3BlobStore({
    endpoint,
    region: s3.region,
    bucket: s3.bucket,
    prefix: 'wharf-get-test/',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    ...extra,
  });
  stores.push(opened);
  return opened;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A Writable that keeps what it is given; `hold` delays each write's callback until it resolves. */
function collector(hold?: () => Promise<void>): Writable & { bytes(): Buffer } {
  const chunks: Buffer[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      // A copy: the chunk's buffer goes back to the pool once the callback has run.
      chunks.push(Buffer.from(chunk));
      if (hold) hold().then(() => cb(), cb);
      else cb();
    },
  });
  return Object.assign(w, { bytes: () => Buffer.concat(chunks) });
}

async function putObject(store: S3BlobStore, key: string, data: Buffer): Promise<void> {
  const state = await store.beginUpload(key);
  const { state: next } = await store.append(key, state, 0, Readable.from([data]));
  await store.completeUpload(key, next, data.length);
}

/** A TCP server that answers each connection's requests with `script` and counts connections and requests. */
interface Scripted {
  url: string;
  connections: number;
  requests: number;
  script: (socket: Socket, request: number) => void;
  close(): Promise<void>;
}

async function scriptedServer(): Promise<Scripted> {
  const sockets = new Set<Socket>();
  const state: Scripted = { url: '', connections: 0, requests: 0, script: () => {}, close: async () => {} };
  const server: Server = createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = '';
    socket.on('data', (d) => {
      head += d.toString('latin1');
      while (head.includes('\r\n\r\n')) {
        head = head.slice(head.indexOf('\r\n\r\n') + 4);
        state.script(socket, state.requests++);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  state.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  state.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return state;
}

const answer = (status: string, headers: Record<string, string | number>, body: Buffer | string = '') =>
  Buffer.concat([
    Buffer.from(
      `HTTP/1.1 ${status}\r\n${Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`,
      'latin1',
    ),
    Buffer.from(body),
  ]);

before(async () => {
  s3 = await startS3rver();
});

after(async () => {
  for (const s of stores) s.destroy();
  await s3?.close();
});

describe('S3 blob reads over the driver’s own HTTP client', () => {
  test('whole, by range, piped and copied: the bytes S3 holds, on one kept connection', async () => {
    const store = openStore(s3.endpoint);
    const key = `k${process.pid}-${Date.now().toString(36)}/blob`;
    const data = randomBytes(3 * MiB + 12345);
    await putObject(store, key, data);

    const whole = await store.read(key);
    assert.ok(whole instanceof S3Body, 'read by the driver’s own client, not the SDK');
    assert.ok((await readAll(whole)).equals(data));

    const ranged = await store.read(key, { start: 1000, end: 2 * MiB });
    assert.ok((await readAll(ranged)).equals(data.subarray(1000, 2 * MiB + 1)));

    const copied = (await store.read(key)) as S3Body;
    const out = collector();
    await copied.copyTo(out);
    assert.ok(out.bytes().equals(data));

    // A slow destination: every write waits; the copy still brings every byte in order.
    const slow = collector(() => new Promise((resolve) => setImmediate(resolve)));
    await ((await store.read(key, { start: 5, end: 3 * MiB })) as S3Body).copyTo(slow);
    assert.ok(slow.bytes().equals(data.subarray(5, 3 * MiB + 1)));

    await assert.rejects(store.read(`${key}-missing`), (err: Error & { $metadata?: { httpStatusCode?: number } }) => {
      assert.equal(err.name, 'NoSuchKey');
      assert.equal(err.$metadata?.httpStatusCode, 404);
      assert.equal(isStorageUnavailable(err), false);
      return true;
    });
    await store.delete(key);
  });

  test('keep-alive: sequential reads and an error answer share one connection', async () => {
    // A scripted S3 that counts connections; objects are served from memory.
    const server = await scriptedServer();
    const body = randomBytes(700 * 1024);
    server.script = (socket, n) => {
      if (n === 2) socket.write(answer('404 Not Found', { 'content-length': 47 }, '<Error><Code>NoSuchKey</Code><Message/></Error>'));
      else socket.write(answer('200 OK', { 'content-length': body.length }, body));
    };
    const store = openStore(server.url);
    try {
      assert.ok((await readAll(await store.read('a'))).equals(body));
      const out = collector();
      await ((await store.read('b')) as S3Body).copyTo(out);
      assert.ok(out.bytes().equals(body));
      await assert.rejects(store.read('c'), { name: 'NoSuchKey' });
      assert.ok((await readAll(await store.read('d'))).equals(body));
      assert.equal(server.requests, 4);
      assert.equal(server.connections, 1, 'one connection for all four');
    } finally {
      await server.close();
    }
  });

  test('503 SlowDown is retried, within maxAttempts, and fails as storage unavailable', async () => {
    const server = await scriptedServer();
    const slowDown = '<Error><Code>SlowDown</Code><Message>slow</Message></Error>';
    server.script = (socket, n) => {
      if (n < 3) socket.write(answer('503 Slow Down', { 'content-length': slowDown.length }, slowDown));
      else socket.write(answer('200 OK', { 'content-length': 5 }, 'hello'));
    };
    try {
      await assert.rejects(openStore(server.url, { maxAttempts: 2 }).read('x'), (err: Error & { $metadata?: { httpStatusCode?: number; attempts?: number } }) => {
        assert.equal(err.name, 'SlowDown');
        assert.equal(err.$metadata?.httpStatusCode, 503);
        assert.equal(err.$metadata?.attempts, 2);
        assert.ok(isStorageUnavailable(err));
        return true;
      });
      assert.equal(server.requests, 2);
      // The third 503, then the answer: retried once more and read.
      assert.equal((await readAll(await openStore(server.url, { maxAttempts: 2 }).read('x'))).toString(), 'hello');
      assert.equal(server.requests, 4);
    } finally {
      await server.close();
    }
  });

  test('a kept presigned URL that S3 refuses (403, expired credentials) is signed anew once', async () => {
    const server = await scriptedServer();
    const expired = '<Error><Code>ExpiredToken</Code><Message>expired</Message></Error>';
    server.script = (socket, n) => {
      if (n === 1) socket.write(answer('403 Forbidden', { 'content-length': expired.length }, expired));
      else socket.write(answer('200 OK', { 'content-length': 5 }, 'hello'));
    };
    try {
      const store = openStore(server.url);
      assert.equal((await readAll(await store.read('x'))).toString(), 'hello');
      assert.equal((await readAll(await store.read('x'))).toString(), 'hello');
      assert.equal(server.requests, 3);
    } finally {
      await server.close();
    }
  });

  test('a connection refused is retried and then fails as storage unavailable', async () => {
    const server = await scriptedServer();
    const url = server.url;
    await server.close();
    await assert.rejects(openStore(url, { maxAttempts: 2 }).read('x'), (err: Error & { code?: string; $metadata?: { attempts?: number } }) => {
      assert.equal(err.code, 'ECONNREFUSED');
      assert.equal(err.$metadata?.attempts, 2);
      assert.ok(isStorageUnavailable(err));
      return true;
    });
  });

  test('a body cut short is an error, piped and copied, never a shorter success', async () => {
    const server = await scriptedServer();
    server.script = (socket) => {
      socket.write(answer('200 OK', { 'content-length': 2 * MiB }, randomBytes(MiB)));
      socket.destroy();
    };
    try {
      const store = openStore(server.url);
      await assert.rejects(readAll(await store.read('x')), /bytes before the end of the body/);
      await assert.rejects(((await store.read('x')) as S3Body).copyTo(collector()), /bytes before the end of the body/);
    } finally {
      await server.close();
    }
  });

  test('an answer no S3 sends (no status line, more body than its Content-Length) is an error, never a blob', async () => {
    const server = await scriptedServer();
    server.script = (socket, n) => {
      if (n === 0) socket.write('not http at all\r\n\r\n');
      else socket.write(answer('200 OK', { 'content-length': 5 }, 'hello, and then some'));
    };
    try {
      const store = openStore(server.url);
      await assert.rejects(store.read('x'), { name: 'InvalidResponse', message: /unreadable head/ });
      await assert.rejects(store.read('x'), { name: 'InvalidResponse', message: /more bytes than its Content-Length/ });
    } finally {
      await server.close();
    }
  });

  test('more body than its Content-Length in a later packet fails the reader, piped and copied, and the connection is not reused', async () => {
    const server = await scriptedServer();
    let sendRest: () => void = () => {};
    server.script = (socket) => {
      socket.write(answer('200 OK', { 'content-length': 10 }, 'hello'));
      sendRest = () => void socket.write('world, and then some');
    };
    try {
      const store = openStore(server.url);
      const piped = readAll(await store.read('x'));
      sendRest();
      await assert.rejects(piped, { name: 'InvalidResponse', message: /more bytes than its Content-Length/ });
      const body = (await store.read('x')) as S3Body;
      const copied = body.copyTo(collector());
      sendRest();
      await assert.rejects(copied, { name: 'InvalidResponse', message: /more bytes than its Content-Length/ });
      assert.equal(server.connections, 2, 'a connection that sent too much is closed, not kept');
    } finally {
      await server.close();
    }
  });

  test('a body that stops mid-way ends with BodyStalledError and its connection closed', async () => {
    const server = await scriptedServer();
    server.script = (socket) => void socket.write(answer('200 OK', { 'content-length': 2 * MiB }, randomBytes(64 * 1024)));
    try {
      const store = openStore(server.url, { timeoutMs: 300 });
      const out = collector();
      await assert.rejects(((await store.read('x')) as S3Body).copyTo(out), BodyStalledError);
      assert.equal(out.bytes().length, 0, 'nothing of an incomplete chunk was written');
      await assert.rejects(readAll(await store.read('x')), BodyStalledError);
      assert.equal(server.connections, 2, 'the stalled connection was not reused');
    } finally {
      await server.close();
    }
  });

  test('a reader slower than the timeout is not a stall: S3 is paused on purpose', async () => {
    const server = await scriptedServer();
    const body = randomBytes(1.5 * MiB);
    server.script = (socket) => void socket.write(answer('200 OK', { 'content-length': body.length }, body));
    try {
      const store = openStore(server.url, { timeoutMs: 500 });
      // Each chunk is held three times the timeout before the destination takes the next.
      const out = collector(() => new Promise((resolve) => setTimeout(resolve, 1500)));
      await ((await store.read('x')) as S3Body).copyTo(out);
      assert.ok(out.bytes().equals(body));
    } finally {
      await server.close();
    }
  });

  test('a chunked answer is left to the SDK, which reads it', async () => {
    const server = await scriptedServer();
    server.script = (socket) => void socket.write(answer('200 OK', { 'transfer-encoding': 'chunked' }, '5\r\nhello\r\n0\r\n\r\n'));
    try {
      const body = await openStore(server.url).read('x');
      assert.ok(!(body instanceof S3Body));
      assert.equal((await readAll(body)).toString(), 'hello');
    } finally {
      await server.close();
    }
  });
});
