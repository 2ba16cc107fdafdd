/**
 * Hardening: blob size limit enforced while the body streams, header limit, per-client rate
 * limit, TLS. Bodies are generated on the fly, never held in memory.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { makeAuthFixture, type AuthFixture } from './helpers/auth.js';
import { rawRequest } from './helpers/raw-http.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { RateLimiter } from '../services/api/rate-limit.js';

const GiB = 1024 ** 3;
const CHUNK = Buffer.alloc(1024 * 1024, 7);

/** A stream of `total` bytes made 1 MiB at a time, counting what was actually read from it. */
function generated(total: number): Readable & { produced: () => number } {
  let produced = 0;
  const stream = new Readable({
    read() {
      if (produced >= total) return void this.push(null);
      const n = Math.min(CHUNK.length, total - produced);
      produced += n;
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
    },
  }) as Readable & { produced: () => number };
  stream.produced = () => produced;
  return stream;
}

interface Outcome {
  status: number;
  body: string;
  connection: string | undefined;
  /** Bytes the client had produced when the answer came. */
  sentBeforeAnswer: number;
}

/** Sends a generated body of `total` bytes; resolves with the first answer, then drops the connection. */
function upload(url: string, method: string, total: number, declareLength: boolean): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const body = generated(total);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (declareLength) headers['content-length'] = String(total);
    const req = httpRequest(url, { method, headers }, (res) => {
      const sentBeforeAnswer = body.produced();
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString(), connection: res.headers.connection, sentBeforeAnswer });
        body.destroy();
        req.destroy();
      });
    });
    // The server answers and closes while we are still sending: a write error then is expected.
    req.on('error', (err) => (req.writableEnded ? undefined : setTimeout(() => reject(err), 5000)));
    body.pipe(req);
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  return out;
}

describe('blob size limit (1 GiB)', () => {
  let wharf: TestWharf;
  let base: string;

  before(async () => {
    wharf = await startTestWharf({ 'limits.blobbytes': GiB });
    base = wharf.base;
  });
  after(async () => wharf?.close());

  const nothingStored = async () => {
    const sessions = await wharf.database.db.selectFrom('uploads').select('id').execute();
    assert.deepEqual(sessions, [], 'no upload session left');
    assert.deepEqual(await filesUnder(join(wharf.dataDir!, 'blobs')), [], 'no blob bytes left');
  };

  it('refuses a declared 3 GiB body at once with 413 and closes the connection; nothing stored', async () => {
    const res = await upload(`${base}/v2/big/blob/blobs/uploads/?digest=sha256:${'0'.repeat(64)}`, 'POST', 3 * GiB, true);
    assert.equal(res.status, 413);
    assert.equal(JSON.parse(res.body).errors[0].code, 'SIZE_INVALID');
    assert.equal(res.connection, 'close');
    assert.ok(res.sentBeforeAnswer < 64 * 1024 * 1024, `answered after ${res.sentBeforeAnswer} bytes`);
    await nothingStored();
  });

  it('cuts off an undeclared (chunked) 3 GiB body once it passes 1 GiB, with 413; nothing stored', async (t) => {
    const started = performance.now();
    const res = await upload(`${base}/v2/big/blob/blobs/uploads/?digest=sha256:${'0'.repeat(64)}`, 'POST', 3 * GiB, false);
    assert.equal(res.status, 413);
    assert.equal(JSON.parse(res.body).errors[0].code, 'SIZE_INVALID');
    assert.ok(res.sentBeforeAnswer < GiB + 64 * 1024 * 1024, `answered after ${res.sentBeforeAnswer} bytes`);
    t.diagnostic(`413 after ${(res.sentBeforeAnswer / 1024 ** 2).toFixed(0)} MiB of an undeclared 3 GiB body, ${((performance.now() - started) / 1000).toFixed(1)} s`);
    await nothingStored();
  });

  it('counts the whole blob across chunks: a PATCH that would pass the limit is refused and the session keeps its offset', async () => {
    const post = await fetch(`${base}/v2/big/chunks/blobs/uploads/`, { method: 'POST' });
    const location = post.headers.get('location')!;
    const first = await fetch(`${base}${location}`, { method: 'PATCH', headers: { 'content-range': '0-1023', 'content-length': '1024' }, body: Buffer.alloc(1024) });
    assert.equal(first.status, 202);
    const res = await rawRequest({
      url: `${base}${location}`,
      method: 'PATCH',
      headers: { 'content-range': `1024-${GiB}`, 'content-length': String(GiB - 1023) },
      body: Buffer.alloc(1024),
    });
    assert.equal(res.response?.status, 413);
    const status = await fetch(`${base}${location}`);
    assert.equal(status.headers.get('range'), '0-1023');
    await fetch(`${base}${location}`, { method: 'DELETE' });
  });
});

describe('TLS, header limit and rate limit', () => {
  let fx: AuthFixture;
  let wharf: TestWharf;

  before(async () => {
    fx = await makeAuthFixture({});
    wharf = await startTestWharf({
      'http.tls.certificate': fx.tlsCertPath,
      'http.tls.key': fx.tlsKeyPath,
      'limits.headerbytes': 4096,
      'limits.ratelimit.rate': 1,
      'limits.ratelimit.burst': 5,
    });
  });
  after(async () => {
    await wharf?.close();
    await fx?.close();
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
      const req = httpsRequest(`${wharf.base}${path}`, { ca: fx.tlsCert, headers }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });

  it('serves HTTPS with the configured certificate', async () => {
    assert.match(wharf.base, /^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await get('/v2/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('answers a request head larger than limits.headerbytes with 431', async () => {
    const res = await get('/v2/', { 'x-padding': 'p'.repeat(8192) });
    assert.equal(res.status, 431);
  });

  it('answers a client past its burst with 429 TOOMANYREQUESTS and Retry-After', async () => {
    const answers = [];
    for (let i = 0; i < 10; i++) answers.push(await get('/v2/'));
    const limited = answers.find((a) => a.status === 429);
    assert.ok(limited, `statuses: ${answers.map((a) => a.status).join(',')}`);
    assert.equal(JSON.parse(limited.body).errors[0].code, 'TOOMANYREQUESTS');
    assert.ok(Number(limited.headers['retry-after']) >= 1);
  });
});

describe('rate limiter', () => {
  it('allows a burst, then refills at the rate', () => {
    let now = 0;
    const limiter = new RateLimiter(2, 3, () => now);
    assert.deepEqual(
      [1, 2, 3, 4].map(() => limiter.take('a')),
      [true, true, true, false],
    );
    assert.equal(limiter.take('b'), true, 'buckets are per client');
    now = 0.5;
    assert.equal(limiter.take('a'), true);
    assert.equal(limiter.take('a'), false);
    assert.equal(limiter.retryAfter('a'), 1);
  });
});
