import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { clusterConfig } from '../helpers/cluster.js';
import { randomBlob, sha256 } from '../helpers/oci.js';
import { eventually } from '../helpers/wait.js';
import { spawnWharf, type WharfProcess } from '../helpers/processes.js';
import { clusterSuite, migrateDatabase } from '../helpers/services.js';

const MiB = 1024 * 1024;
const nodes: WharfProcess[] = [];

const suite = clusterSuite({
  async setup(services) {
    const config = clusterConfig(services);
    await migrateDatabase(config['database.url']);
    nodes.push(await spawnWharf('serve', config), await spawnWharf('serve', config));
  },
  async teardown() {
    for (const n of nodes) n.child.kill('SIGKILL');
  },
});

/** Sends `head` of a PATCH body, then lets the test kill the node while the request is still open. */
function patchThatStalls(url: string, path: string, total: number, head: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const target = new URL(url);
    const req = request({
      host: target.hostname,
      port: target.port,
      method: 'PATCH',
      path,
      headers: { 'content-length': String(total), 'content-range': `${8 * MiB}-${8 * MiB + total - 1}` },
    });
    req.on('error', () => resolve());
    req.on('response', () => resolve());
    req.write(head, () => setTimeout(resolve, 300));
  });
}

describe('an API node killed mid-upload', () => {
  it('lets the client finish the upload on another node with the right digest', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const [a, b] = nodes as [WharfProcess, WharfProcess];
    const blob = randomBlob(20 * MiB);
    const post = await fetch(`${a.url}/v2/crash/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 202);
    const location = post.headers.get('location')!;
    const first = await fetch(`${a.url}${location}`, {
      method: 'PATCH',
      headers: { 'content-range': `0-${8 * MiB - 1}` },
      body: blob.bytes.subarray(0, 8 * MiB),
    });
    assert.equal(first.status, 202);

    // Node A receives half of the second chunk, then dies without a chance to clean up.
    const second = blob.bytes.subarray(8 * MiB, 16 * MiB);
    await patchThatStalls(a.url, location, second.length, second.subarray(0, 4 * MiB));
    a.child.kill('SIGKILL');
    await a.exited;

    // Node B sees the session as A last committed it: the half chunk never happened.
    const status = await fetch(`${b.url}${location}`);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), `0-${8 * MiB - 1}`);
    // Until PostgreSQL notices the dead node's connection, its row lock answers 416 (busy), as
    // it would to any concurrent writer; a client retries that.
    const retry = await eventually(
      async () => {
        const res = await fetch(`${b.url}${location}`, { method: 'PATCH', headers: { 'content-range': `${8 * MiB}-${16 * MiB - 1}` }, body: second });
        assert.equal(res.status, 202, await res.text());
        return res;
      },
      10_000,
      200,
    );
    assert.equal(retry.status, 202);
    const put = await fetch(`${b.url}${location}?digest=${blob.digest}`, {
      method: 'PUT',
      headers: { 'content-range': `${16 * MiB}-${20 * MiB - 1}` },
      body: blob.bytes.subarray(16 * MiB),
    });
    assert.equal(put.status, 201, await put.text());
    const get = await fetch(`${b.url}/v2/crash/app/blobs/${blob.digest}`);
    assert.equal(get.status, 200);
    assert.equal(sha256(Buffer.from(await get.arrayBuffer())), blob.digest);
  });
});
