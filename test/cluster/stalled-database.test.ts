/**
 * PostgreSQL that stops answering without closing anything (TCP open, no reply: a hung server, a
 * black-holing network). Requests must end with the documented 503 once the configured
 * timeouts pass, not hang until TCP gives up; once it answers again, the node serves again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nodesBehindProxy } from '../helpers/cluster.js';
import { blobOf, pushBlob, pushImage } from '../helpers/oci.js';
import { eventually } from '../helpers/wait.js';

const suite = nodesBehindProxy({ dependency: 'database', overrides: { 'database.statementtimeout': 2, 'health.timeout': 1 } });

async function expectUnavailable(res: Response, what: string): Promise<void> {
  assert.equal(res.status, 503, `${what}: ${res.status}`);
  const body = (await res.json()) as { errors: Array<{ code: string; detail?: { unavailable?: string[] } }> };
  assert.equal(body.errors[0]?.code, 'UNAVAILABLE', what);
  assert.deepEqual(body.errors[0]?.detail?.unavailable, ['postgresql'], what);
  assert.ok(res.headers.get('retry-after'), `${what}: Retry-After`);
}

describe('a stalled database connection', () => {
  it('requests answer 503 UNAVAILABLE instead of hanging, /readyz says so, and all recovers', { timeout: 180_000 }, async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const node = suite.nodes[0]!;
    const name = 'stalled/app';
    const image = await pushImage(node.url, name, 'v1');
    // A session opened before the stall, continued during it.
    const post = await fetch(`${node.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
    const session = new URL(post.headers.get('location')!, node.url).toString();

    suite.proxy.stall();
    try {
      await expectUnavailable(await fetch(`${node.url}/v2/${name}/manifests/v1`), 'manifest GET');
      await expectUnavailable(await fetch(`${node.url}/v2/${name}/tags/list`), 'tags list');
      await expectUnavailable(
        await fetch(session, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(100) }),
        'PATCH of an open session',
      );
      await expectUnavailable(await fetch(`${node.url}/v2/${name}/blobs/uploads/?digest=${blobOf('during').digest}`, { method: 'POST', body: 'during' }), 'monolithic upload');
      const ready = await fetch(`${node.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.deepEqual(((await ready.json()) as { down: string[] }).down, ['postgresql']);
    } finally {
      suite.proxy.resume();
    }

    await eventually(async () => assert.equal((await fetch(`${node.url}/readyz`)).status, 200), 60_000);
    await eventually(async () => assert.equal((await fetch(`${node.url}/v2/${name}/manifests/v1`, { method: 'HEAD' })).status, 200), 60_000);
    assert.equal((await fetch(`${node.url}/v2/${name}/manifests/${image.digest}`)).status, 200);
    assert.equal((await pushBlob(node.url, name, blobOf('after the stall'))).status, 201);
    const status = await fetch(session);
    assert.equal(status.status, 204, 'the session opened before the stall is still there');
  });
});
