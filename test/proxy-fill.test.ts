/**
 * One upstream fetch for many cold pulls: 20 concurrent GETs of one uncached 50 MiB layer, spread
 * over two API nodes of a cluster (PostgreSQL, S3, NATS), make the upstream serve its bytes once,
 * counted at a proxy in front of it. Coordination is the fill row in PostgreSQL, not node memory.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startTestCluster, type TestCluster } from './helpers/cluster.js';
import { startCountingProxy, type CountingProxy } from './helpers/counting-proxy.js';
import { DISTRIBUTION, startDistribution, type Distribution } from './helpers/distribution.js';
import { randomBlob, streamedDigest } from './helpers/oci.js';
import { pushContent, rawImage } from './helpers/upstream-push.js';

const LAYER_BYTES = 50 * 1024 * 1024;
const PULLS = 20;

describe('concurrent cold pulls of one blob through two nodes', { skip: existsSync(DISTRIBUTION) ? false : `${DISTRIBUTION} not installed` }, () => {
  let upstream: Distribution;
  let counting: CountingProxy;
  let cluster: TestCluster | { skip: string };
  const image = rawImage([randomBlob(LAYER_BYTES)]);
  const layer = image.layers[0]!;

  before(async () => {
    upstream = await startDistribution();
    await pushContent(upstream.url, 'big/layer', image, 'v1');
    counting = await startCountingProxy(upstream.url);
    cluster = await startTestCluster({ 'proxy.upstreams': [{ name: 'dist', url: counting.url, prefix: 'hub' }] });
  });
  after(async () => {
    if (cluster && !('skip' in cluster)) await cluster.close();
    await counting?.close();
    await upstream?.close();
  });

  it('fetches the layer from the upstream once and gives every client the right bytes', async (t) => {
    if ('skip' in cluster) return t.skip(cluster.skip);
    const nodes = cluster.nodes.map((n) => n.url);
    assert.equal(nodes.length, 2);
    const manifest = await fetch(`${nodes[0]}/v2/hub/big/layer/manifests/v1`, { headers: { accept: image.mediaType } });
    assert.equal(manifest.status, 200);
    counting.reset();
    const digests = await Promise.all(Array.from({ length: PULLS }, (_, i) => streamedDigest(`${nodes[i % 2]}/v2/hub/big/layer/blobs/${layer.digest}`)));
    assert.deepEqual(new Set(digests), new Set([layer.digest]));
    assert.equal(counting.count(`/blobs/${layer.digest}`, 'GET'), 1, counting.requests.join('\n'));
    assert.equal(counting.bytesFor(`/blobs/${layer.digest}`), LAYER_BYTES);
    // Warm now: both nodes serve it from the store.
    assert.equal(await streamedDigest(`${nodes[1]}/v2/hub/big/layer/blobs/${layer.digest}`), layer.digest);
    assert.equal(counting.count(`/blobs/${layer.digest}`, 'GET'), 1);
  });
});
