/**
 * The manifest cache across two API nodes: a change made through node A reaches node B's cache
 * through the event stream, and while node B's NATS connection is down its cache is not used.
 * Node B talks to NATS through a TCP proxy the test controls; node A directly.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../libs/log/index.js';
import type { ManifestReadCache } from '../../libs/registry/index.js';
import { startServe, type RunningWharf } from '../../services/cli/start.js';
import { clusterConfig } from '../helpers/cluster.js';
import { OCI_MANIFEST, pushImage } from '../helpers/oci.js';
import { clusterSuite, migrateDatabase, type ClusterServices } from '../helpers/services.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { eventually } from '../helpers/wait.js';

let natsProxy: TcpProxy;
let nodeA: RunningWharf;
let nodeB: RunningWharf;

const suite = clusterSuite({ setup, teardown });

async function setup(services: ClusterServices): Promise<void> {
  const nats = new URL(services.natsUrl);
  natsProxy = await startTcpProxy({ host: nats.hostname, port: Number(nats.port || 4222) });
  const config = clusterConfig(services);
  await migrateDatabase(config['database.url']);
  const logger = createLogger(process.env.WHARF_TEST_LOG_LEVEL ?? 'silent');
  nodeA = await startServe(config, logger.child({ node: 'A' }));
  // Same database, stream and subjects; only the way to NATS differs.
  nodeB = await startServe({ ...config, 'nats.url': `nats://127.0.0.1:${natsProxy.port}` }, logger.child({ node: 'B' }));
}

async function teardown(): Promise<void> {
  await nodeB?.close();
  await nodeA?.close();
  await natsProxy?.close();
}

const cacheOf = (node: RunningWharf) => node.registry.deps.manifestCache as ManifestReadCache;

async function digestAt(node: RunningWharf, name: string, reference: string): Promise<string | number> {
  const res = await fetch(`${node.url}/v2/${name}/manifests/${reference}`, { headers: { accept: OCI_MANIFEST } });
  await res.arrayBuffer();
  return res.status === 200 ? (res.headers.get('docker-content-digest') ?? 'no digest') : res.status;
}

async function deleteAt(node: RunningWharf, name: string, reference: string): Promise<void> {
  const res = await fetch(`${node.url}/v2/${name}/manifests/${reference}`, { method: 'DELETE' });
  await res.arrayBuffer();
  assert.equal(res.status, 202);
}

/**
 * Reads `reference` through node B until its cache holds it: the next read is served from memory.
 * Read again while the event of the push itself may still arrive (and drop the entry it fills).
 */
async function cachedOnB(name: string, reference: string, digest: string): Promise<void> {
  await eventually(() => assert.ok(cacheOf(nodeB).live, 'node B cache live'));
  const ref = reference.startsWith('sha256:') ? { digest } : { tag: reference };
  await eventually(async () => {
    assert.equal(await digestAt(nodeB, name, reference), digest);
    assert.equal(cacheOf(nodeB).lookup(name, ref)?.digest, digest, 'node B keeps it');
  });
}

describe('manifest cache coherence across nodes', () => {
  it('a tag moved through node A is seen moved through node B once the event arrives', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const first = await pushImage(nodeA.url, 'cache/move', 'v1');
    await cachedOnB('cache/move', 'v1', first.digest);
    const second = await pushImage(nodeA.url, 'cache/move', 'v1');
    // Node A dropped its own entry when it committed.
    assert.equal(await digestAt(nodeA, 'cache/move', 'v1'), second.digest);
    await eventually(async () => assert.equal(await digestAt(nodeB, 'cache/move', 'v1'), second.digest));
    // The old manifest is still there by digest.
    assert.equal(await digestAt(nodeB, 'cache/move', first.digest), first.digest);
  });

  it('a tag deleted through node A is gone through node B once the event arrives', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const image = await pushImage(nodeA.url, 'cache/tag-delete', 'v1');
    await cachedOnB('cache/tag-delete', 'v1', image.digest);
    await deleteAt(nodeA, 'cache/tag-delete', 'v1');
    assert.equal(await digestAt(nodeA, 'cache/tag-delete', 'v1'), 404);
    await eventually(async () => assert.equal(await digestAt(nodeB, 'cache/tag-delete', 'v1'), 404));
    assert.equal(await digestAt(nodeB, 'cache/tag-delete', image.digest), image.digest);
  });

  it('a manifest deleted through node A is gone through node B, by digest and by tag, once the events arrive', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const image = await pushImage(nodeA.url, 'cache/manifest-delete', 'v1');
    await cachedOnB('cache/manifest-delete', 'v1', image.digest);
    await cachedOnB('cache/manifest-delete', image.digest, image.digest);
    await deleteAt(nodeA, 'cache/manifest-delete', image.digest);
    await eventually(async () => {
      assert.equal(await digestAt(nodeB, 'cache/manifest-delete', image.digest), 404);
      assert.equal(await digestAt(nodeB, 'cache/manifest-delete', 'v1'), 404);
    });
  });

  it("NATS down for node B: its cache is emptied and not used, so node A's changes show at once; back: used again", async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const first = await pushImage(nodeA.url, 'cache/outage', 'v1');
    await cachedOnB('cache/outage', 'v1', first.digest);
    await natsProxy.stop();
    await eventually(() => assert.equal(cacheOf(nodeB).live, false));
    assert.equal(cacheOf(nodeB).size.entries, 0);
    // Node A still publishes (its NATS is up), but node B cannot hear it: B must read the database.
    const second = await pushImage(nodeA.url, 'cache/outage', 'v1');
    assert.equal(await digestAt(nodeB, 'cache/outage', 'v1'), second.digest);
    assert.equal(cacheOf(nodeB).size.entries, 0, 'nothing is stored while the subscription is down');
    await deleteAt(nodeA, 'cache/outage', 'v1');
    assert.equal(await digestAt(nodeB, 'cache/outage', 'v1'), 404);

    await natsProxy.start();
    await eventually(() => assert.ok(cacheOf(nodeB).live), 30_000);
    const third = await pushImage(nodeA.url, 'cache/outage', 'v1');
    await eventually(async () => assert.equal(await digestAt(nodeB, 'cache/outage', 'v1'), third.digest));
    await cachedOnB('cache/outage', 'v1', third.digest);
    const fourth = await pushImage(nodeA.url, 'cache/outage', 'v1');
    await eventually(async () => assert.equal(await digestAt(nodeB, 'cache/outage', 'v1'), fourth.digest));
  });
});
