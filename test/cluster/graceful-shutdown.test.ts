/**
 * SIGTERM during a 200 MiB chunked upload, with API nodes as separate processes on PostgreSQL,
 * S3 and NATS. A node told to stop lets the chunk in flight finish (within http.shutdowntimeout)
 * and exits 0; a chunk still stalled at the deadline is cut, rolls back, and the session
 * continues on another node from its last committed offset. No partial blob is ever visible.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import type { Config } from '../../libs/config/index.js';
import { clusterConfig } from '../helpers/cluster.js';
import { spawnWharf, type WharfProcess } from '../helpers/processes.js';
import { clusterSuite, migrateDatabase } from '../helpers/services.js';
import { eventually } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const TOTAL = 200 * MiB;
const CHUNK = 25 * MiB;
let config: Config;
const started: WharfProcess[] = [];

const suite = clusterSuite({
  async setup(services) {
    config = clusterConfig(services);
    await migrateDatabase(config['database.url']);
  },
  async teardown() {
    for (const p of started) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  },
});

async function node(shutdownSeconds: number): Promise<WharfProcess> {
  const p = await spawnWharf('serve', { ...config, 'http.shutdowntimeout': shutdownSeconds });
  started.push(p);
  return p;
}

const seeds = Array.from({ length: TOTAL / CHUNK }, () => randomBytes(64));
/** Chunk i, made again on each call, so the test never holds the whole blob. */
function chunk(i: number): Buffer<ArrayBuffer> {
  const bytes = Buffer.alloc(CHUNK, i + 1);
  seeds[i]!.copy(bytes);
  return bytes;
}

async function patch(url: string, location: string, i: number): Promise<Response> {
  return fetch(`${url}${location}`, { method: 'PATCH', headers: { 'content-range': `${i * CHUNK}-${(i + 1) * CHUNK - 1}` }, body: chunk(i) });
}

/**
 * A PATCH whose body the test feeds by hand: `send(n)` writes the next n bytes, `finish()` the
 * rest. `response` settles with the status, or with 'cut' when the server drops the connection.
 */
function manualPatch(url: string, location: string, i: number) {
  const target = new URL(url);
  const body = chunk(i);
  let sent = 0;
  const req = request({
    host: target.hostname,
    port: target.port,
    method: 'PATCH',
    path: location,
    headers: { 'content-length': String(CHUNK), 'content-range': `${i * CHUNK}-${(i + 1) * CHUNK - 1}` },
  });
  const response = new Promise<number | 'cut'>((resolve) => {
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', () => resolve('cut'));
  });
  const write = (n: number) =>
    new Promise<void>((resolve) => {
      const piece = body.subarray(sent, sent + n);
      sent += piece.length;
      if (!req.write(piece)) req.once('drain', resolve);
      else resolve();
    });
  return {
    response,
    send: write,
    finish: async () => {
      await write(CHUNK - sent);
      req.end();
    },
  };
}

async function refusesConnections(url: string): Promise<void> {
  await eventually(
    async () => {
      const ok = await fetch(`${url}/healthz`).then(
        () => true,
        () => false,
      );
      assert.equal(ok, false, 'still accepting connections');
    },
    15_000,
    50,
  );
}

describe('SIGTERM during a 200 MiB chunked upload', () => {
  it('finishes the chunk in flight, cuts a stalled one at the deadline, and the upload completes on another node', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const [a, b, c] = await Promise.all([node(60), node(60), node(1)]);
    const digest = createHash('sha256');
    for (let i = 0; i < TOTAL / CHUNK; i++) digest.update(chunk(i));
    const expected = `sha256:${digest.digest('hex')}`;

    const post = await fetch(`${a.url}/v2/drain/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 202);
    const location = post.headers.get('location')!;
    for (const i of [0, 1]) assert.equal((await patch(a.url, location, i)).status, 202);

    // Chunk 2 is half sent when A is told to stop: A stops accepting, yet the chunk completes.
    const inFlight = manualPatch(a.url, location, 2);
    await inFlight.send(CHUNK / 2);
    a.child.kill('SIGTERM');
    await refusesConnections(a.url);
    await inFlight.finish();
    assert.equal(await inFlight.response, 202, `in-flight chunk; stderr: ${a.stderr()}`);
    assert.equal(await a.exited, 0, a.stderr());

    // B continues where A committed.
    const onB = await fetch(`${b.url}${location}`);
    assert.equal(onB.status, 204);
    assert.equal(onB.headers.get('range'), `0-${3 * CHUNK - 1}`);
    assert.equal((await patch(b.url, location, 3)).status, 202);

    // Chunk 4 stalls on C past C's one-second deadline: the connection is cut, the chunk rolls back.
    const stalled = manualPatch(c.url, location, 4);
    await stalled.send(CHUNK / 3);
    c.child.kill('SIGTERM');
    assert.equal(await stalled.response, 'cut');
    assert.equal(await c.exited, 0, c.stderr());
    const afterCut = await eventually(async () => {
      const res = await fetch(`${b.url}${location}`);
      assert.equal(res.status, 204);
      return res;
    });
    assert.equal(afterCut.headers.get('range'), `0-${4 * CHUNK - 1}`, 'the cut chunk left nothing behind');
    assert.equal((await fetch(`${b.url}/v2/drain/app/blobs/${expected}`, { method: 'HEAD' })).status, 404, 'no partial blob');

    for (let i = 4; i < TOTAL / CHUNK - 1; i++) {
      // The cut connection's row lock may linger a moment in PostgreSQL; a client retries a 416.
      await eventually(async () => assert.equal((await patch(b.url, location, i)).status, 202), 10_000, 200);
    }
    const last = TOTAL / CHUNK - 1;
    const put = await fetch(`${b.url}${location}?digest=${expected}`, {
      method: 'PUT',
      headers: { 'content-range': `${last * CHUNK}-${TOTAL - 1}` },
      body: chunk(last),
    });
    assert.equal(put.status, 201, await put.text());
    const get = await fetch(`${b.url}/v2/drain/app/blobs/${expected}`);
    assert.equal(get.status, 200);
    const got = createHash('sha256');
    let size = 0;
    for await (const piece of get.body!) {
      got.update(piece);
      size += piece.length;
    }
    assert.equal(size, TOTAL);
    assert.equal(`sha256:${got.digest('hex')}`, expected);
  });
});
