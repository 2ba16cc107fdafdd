/**
 * The failure matrix of docs/operations.md, for S3 and NATS: each taken away through a TCP proxy
 * the test controls, and brought back, while an API node and a worker keep running.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../libs/log/index.js';
import { startServe, startWorker, type RunningWharf } from '../../services/cli/start.js';
import { clusterConfig } from '../helpers/cluster.js';
import { blobOf, pushBlob } from '../helpers/oci.js';
import { clusterSuite, migrateDatabase, type ClusterServices } from '../helpers/services.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { eventually } from '../helpers/wait.js';

let s3Proxy: TcpProxy;
let natsProxy: TcpProxy;
let node: RunningWharf;
let worker: { url?: string; close(): Promise<void> };

interface Readiness {
  status: string;
  down: string[];
  note?: string;
  checks: Record<string, { ok: boolean; error?: string }>;
}

const suite = clusterSuite({ setup, teardown });

async function setup(services: ClusterServices): Promise<void> {
  const s3 = new URL(services.s3.endpoint);
  const nats = new URL(services.natsUrl);
  s3Proxy = await startTcpProxy({ host: s3.hostname, port: Number(s3.port) });
  natsProxy = await startTcpProxy({ host: nats.hostname, port: Number(nats.port || 4222) });
  const config = clusterConfig(services, {
    'storage.s3.endpoint': `http://127.0.0.1:${s3Proxy.port}`,
    'nats.url': `nats://127.0.0.1:${natsProxy.port}`,
    'worker.httpaddr': '127.0.0.1:0',
    'health.timeout': 1,
  });
  await migrateDatabase(config['database.url']);
  const logger = createLogger(process.env.WHARF_TEST_LOG_LEVEL ?? 'silent');
  node = await startServe(config, logger);
  worker = await startWorker(config, logger);
}

async function teardown(): Promise<void> {
  await worker?.close();
  await node?.close();
  await s3Proxy?.close();
  await natsProxy?.close();
}

async function readiness(url: string): Promise<{ status: number; body: Readiness }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as Readiness };
}

async function metric(url: string, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('dependencies going away and coming back', () => {
  it('the worker answers /healthz, /readyz and /metrics on worker.httpaddr', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    assert.ok(worker.url);
    assert.equal((await fetch(`${worker.url}/healthz`)).status, 200);
    assert.equal((await readiness(worker.url)).status, 200);
    assert.equal(await metric(worker.url, 'wharf_dependency_up{dependency="postgresql"}'), 1);
  });

  it('NATS down: the node stays ready and keeps accepting pushes; the outbox holds the events until NATS is back', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    assert.equal((await readiness(node.url)).status, 200);
    await natsProxy.stop();
    const { status, body } = await eventually(async () => {
      const r = await readiness(node.url);
      assert.equal(r.body.checks.nats!.ok, false);
      return r;
    });
    assert.equal(status, 200, 'losing NATS does not make a node unready');
    assert.equal((body.checks.nats as { required?: boolean }).required, false);
    assert.deepEqual(body.down, ['nats']);
    assert.match(body.note ?? '', /outbox/);

    const blob = blobOf(`while NATS is down ${Date.now()}`);
    assert.equal((await pushBlob(node.url, 'outage/nats', blob)).status, 201);
    assert.ok(((await metric(node.url, 'wharf_outbox_backlog')) ?? 0) >= 1, 'the event waits in the outbox');
    assert.equal(await metric(node.url, 'wharf_dependency_up{dependency="nats"}'), 0);

    await natsProxy.start();
    await eventually(async () => assert.equal(await metric(node.url, 'wharf_outbox_backlog'), 0), 20_000, 200);
    assert.equal(await metric(node.url, 'wharf_outbox_oldest_unpublished_age_seconds'), 0);
    await eventually(async () => assert.equal(await metric(node.url, 'wharf_dependency_up{dependency="nats"}'), 1));
  });

  it('S3 down: /readyz 503 naming storage, blob reads and uploads 503 UNAVAILABLE, metadata still served; all recovers', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const blob = blobOf(`before S3 goes ${Date.now()}`);
    assert.equal((await pushBlob(node.url, 'outage/s3', blob)).status, 201);
    await s3Proxy.stop();
    const { body } = await eventually(async () => {
      const r = await readiness(node.url);
      assert.equal(r.status, 503);
      return r;
    });
    assert.deepEqual(body.down, ['storage']);
    assert.ok(body.checks.storage!.error);
    assert.equal(body.checks.postgresql!.ok, true);

    const get = await fetch(`${node.url}/v2/outage/s3/blobs/${blob.digest}`);
    assert.equal(get.status, 503);
    assert.equal(get.headers.get('retry-after'), '5');
    const error = ((await get.json()) as { errors: Array<{ code: string; detail: { unavailable: string[] } }> }).errors[0]!;
    assert.equal(error.code, 'UNAVAILABLE');
    assert.deepEqual(error.detail.unavailable, ['storage']);
    const post = await fetch(`${node.url}/v2/outage/s3/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 503, 'an upload cannot start without the store');
    assert.equal((await fetch(`${node.url}/v2/outage/s3/blobs/${blob.digest}`, { method: 'HEAD' })).status, 200, 'metadata comes from PostgreSQL');
    await eventually(async () => assert.equal(await metric(node.url, 'wharf_dependency_up{dependency="storage"}'), 0));

    await s3Proxy.start();
    await eventually(async () => assert.equal((await readiness(node.url)).status, 200));
    const again = await fetch(`${node.url}/v2/outage/s3/blobs/${blob.digest}`);
    assert.equal(again.status, 200);
    assert.equal(Buffer.from(await again.arrayBuffer()).toString(), blob.bytes.toString());
  });
});
