/**
 * The S3 driver as a client of a flaky S3: an HTTP proxy in front of the real endpoint answers
 * some requests 503 SlowDown / 500 InternalError, or resets their connection, before they reach
 * it. Every call of an upload is retried with backoff, and the blob comes out whole.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { S3BlobStore } from '../libs/storage/s3.js';
import { startS3rver, type S3Endpoint } from './helpers/s3rver.js';

const MiB = 1024 * 1024;
let s3: S3Endpoint;
let proxy: Server;
let proxyUrl: string;
/** What the proxy does to the next requests, one entry each; empty: forward. */
const faults: Array<'slowdown' | 'internal' | 'reset'> = [];
const seen: string[] = [];

before(async () => {
  s3 = await startS3rver();
  const target = new URL(s3.endpoint);
  proxy = createServer((req, res) => {
    const fault = faults.shift();
    seen.push(`${req.method} ${fault ?? 'ok'}`);
    if (fault === 'reset') return void req.socket.destroy();
    if (fault) {
      req.resume();
      const [status, code] = fault === 'slowdown' ? [503, 'SlowDown'] : [500, 'InternalError'];
      res.writeHead(status, { 'content-type': 'application/xml' });
      return void res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected</Message></Error>`);
    }
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', () => resolve()));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
});

after(async () => {
  proxy?.closeAllConnections();
  await new Promise((resolve) => proxy?.close(resolve));
  await s3?.close();
});

function store(maxAttempts: number): S3BlobStore {
  return new S3BlobStore({
    endpoint: proxyUrl,
    region: s3.region,
    bucket: s3.bucket,
    prefix: 'retries/',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    partSize: 5 * MiB,
    maxAttempts,
  });
}

describe('S3 retries', () => {
  test('SlowDown, InternalError and connection resets on every kind of call: retried, the blob whole', async () => {
    const s = store(4);
    const key = `k-${Date.now().toString(36)}/blob`;
    const data = randomBytes(11 * MiB + 5);
    faults.push('slowdown', 'reset'); // CreateMultipartUpload
    const state = await s.beginUpload(key);
    faults.push('internal', 'slowdown'); // the first UploadPart
    const first = await s.append(key, state, 0, Readable.from([data.subarray(0, 6 * MiB)]));
    faults.push('reset'); // the second append's first call
    const second = await s.append(key, first.state, first.written, Readable.from([data.subarray(6 * MiB)]));
    faults.push('slowdown'); // Complete (or the tail's part before it)
    await s.completeUpload(key, second.state, data.length);
    faults.push('internal'); // GetObject
    const back = createHash('sha256');
    for await (const c of await s.read(key)) back.update(c as Buffer);
    assert.equal(back.digest('hex'), createHash('sha256').update(data).digest('hex'));
    assert.equal(faults.length, 0, 'every injected fault was met');
    assert.equal(seen.filter((e) => !e.endsWith(' ok')).length, 7);
    await s.abortUpload(key, {});
    s.destroy();
  });

  test('retries are bounded: a store that keeps answering SlowDown fails the call, as unavailable', async () => {
    const s = store(2);
    faults.push('slowdown', 'slowdown', 'slowdown');
    await assert.rejects(
      () => s.beginUpload(`k-${Date.now().toString(36)}/bounded`),
      (err: Error & { $metadata?: { httpStatusCode?: number; attempts?: number } }) => {
        assert.equal(err.name, 'SlowDown');
        assert.equal(err.$metadata?.httpStatusCode, 503);
        assert.equal(err.$metadata?.attempts, 2);
        return true;
      },
    );
    assert.equal(faults.length, 1, 'two attempts, no more');
    faults.length = 0;
    s.destroy();
  });
});
