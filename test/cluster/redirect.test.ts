import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { pushBlob, randomBlob } from '../helpers/oci.js';

let cluster: TestCluster | undefined;
let skip: string | undefined;

before(async () => {
  const started = await startTestCluster({ 'storage.s3.redirect': true, 'storage.s3.redirectexpiry': 60 });
  if ('skip' in started) skip = started.skip;
  else cluster = started;
});
after(async () => cluster?.close());

describe('storage.s3.redirect', () => {
  it('answers a blob GET with a 307 to a presigned URL that serves the bytes; HEAD still answers itself', async (t) => {
    if (skip) return t.skip(skip);
    const blob = randomBlob(10_000);
    await pushBlob(cluster!.url, 'redirect/app', blob);
    const res = await fetch(`${cluster!.url}/v2/redirect/app/blobs/${blob.digest}`, { redirect: 'manual' });
    assert.equal(res.status, 307);
    const location = res.headers.get('location')!;
    assert.match(location, /X-Amz-Expires=60/);
    assert.ok(location.startsWith(cluster!.services.s3.endpoint));
    const direct = await fetch(location);
    assert.equal(direct.status, 200);
    assert.deepEqual(Buffer.from(await direct.arrayBuffer()), blob.bytes);
    const head = await fetch(`${cluster!.url}/v2/redirect/app/blobs/${blob.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(blob.size));
  });
});
