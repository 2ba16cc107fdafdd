/**
 * A big blob through two nodes with flat memory: PATCHes of 256 MiB alternate between the nodes,
 * then PUT ?digest= and a GET through the other node, hashed as it streams. Opt-in, as it moves
 * gigabytes: WHARF_TEST_BIG_BLOB_MIB=2048 (what CI's scheduled run would use) or any size.
 * The nodes run in this process, so its RSS is theirs plus the test's small buffers.
 */
import assert from 'node:assert/strict';
import { createHash, randomFillSync } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.env.WHARF_TEST_BIG_BLOB_MIB ?? 0);
const CHUNK = 256 * MiB;
/** How far RSS may rise above its level before the upload: parts in flight and buffers, never the blob. */
const FLAT_MIB = 256;
let cluster: TestCluster | undefined;
let skip: string | undefined = sizeMiB > 0 ? undefined : 'set WHARF_TEST_BIG_BLOB_MIB (e.g. 2048) to push a blob that big through two nodes';

before(async () => {
  if (skip) return;
  const started = await startTestCluster();
  if ('skip' in started) skip = started.skip;
  else cluster = started;
});

after(async () => {
  await cluster?.close();
});

function send(method: string, url: string, headers: Record<string, string | number>, body?: AsyncIterable<Buffer>): Promise<{ status: number; location?: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, text }));
    });
    req.on('error', reject);
    if (!body) return void req.end();
    (async () => {
      for await (const chunk of body) if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
      req.end();
    })().catch(reject);
  });
}

describe(`a ${sizeMiB} MiB blob through two nodes`, () => {
  it('goes up in PATCHes alternating between the nodes and comes back whole, with flat memory', async (t) => {
    if (skip) return t.skip(skip);
    const nodes = cluster!.nodes.map((n) => n.url);
    const total = sizeMiB * MiB;
    const hash = createHash('sha256');
    const piece = Buffer.allocUnsafe(MiB);
    async function* bytes(length: number): AsyncGenerator<Buffer> {
      for (let done = 0; done < length; done += MiB) {
        const b = randomFillSync(piece).subarray(0, Math.min(MiB, length - done));
        hash.update(b);
        yield Buffer.from(b); // the request may hold it while the next one fills
      }
    }
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
    try {
      const post = await send('POST', `${nodes[0]}/v2/big/blob/blobs/uploads/`, { 'content-length': 0 });
      assert.equal(post.status, 202, post.text);
      let location = post.location!;
      for (let offset = 0, i = 1; offset < total; offset += CHUNK, i++) {
        const length = Math.min(CHUNK, total - offset);
        const res = await send(
          'PATCH',
          new URL(location, nodes[i % 2]).href,
          { 'content-type': 'application/octet-stream', 'content-length': length, 'content-range': `${offset}-${offset + length - 1}` },
          bytes(length),
        );
        assert.equal(res.status, 202, res.text);
        location = res.location!;
      }
      const digest = `sha256:${hash.digest('hex')}`;
      const finish = new URL(location, nodes[0]);
      finish.searchParams.set('digest', digest);
      const put = await send('PUT', finish.href, { 'content-length': 0 });
      assert.equal(put.status, 201, put.text);
      const upPeak = peak;

      const back = createHash('sha256');
      let received = 0;
      await new Promise<void>((resolve, reject) => {
        request(`${nodes[1]}/v2/big/blob/blobs/${digest}`, (res) => {
          assert.equal(res.statusCode, 200);
          res.on('data', (c: Buffer) => {
            back.update(c);
            received += c.length;
          });
          res.on('end', resolve);
          res.on('error', reject);
        })
          .on('error', reject)
          .end();
      });
      assert.equal(received, total);
      assert.equal(`sha256:${back.digest('hex')}`, digest);
      const rise = (x: number) => Math.round((x - baseline) / MiB);
      t.diagnostic(`RSS before ${Math.round(baseline / MiB)} MiB; peak rise during the upload ${rise(upPeak)} MiB, during the download ${rise(peak)} MiB`);
      assert.ok(rise(peak) < FLAT_MIB, `RSS rose ${rise(peak)} MiB moving ${sizeMiB} MiB`);
    } finally {
      clearInterval(sampler);
    }
  });
});
