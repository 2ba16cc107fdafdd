/**
 * PostgreSQL that stops answering without closing anything (TCP open, no reply: a hung server, a
 * black-holing network). Requests must end with the documented 503 once the configured
 * timeouts pass, not hang until TCP gives up; once it answers again, the node serves again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../libs/log/index.js';
import { migrate, openDatabase } from '../../libs/metadata/index.js';
import { startServe, type RunningWharf } from '../../services/cli/start.js';
import { clusterConfig } from '../helpers/cluster.js';
import { blobOf, pushBlob, pushImage } from '../helpers/oci.js';
import { clusterServices, type ClusterServices } from '../helpers/services.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { eventually } from '../helpers/wait.js';

let services: ClusterServices | undefined;
let skip: string | undefined;
let proxy: TcpProxy;
let node: RunningWharf;

before(async () => {
  const found = await clusterServices();
  if ('skip' in found) {
    skip = found.skip;
    return;
  }
  services = found;
  const direct = new URL(services.databaseUrl);
  proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
  const viaProxy = new URL(services.databaseUrl);
  viaProxy.host = `127.0.0.1:${proxy.port}`;
  const config = clusterConfig(services, { 'database.url': viaProxy.toString(), 'database.statementtimeout': 2, 'health.timeout': 1 });
  const admin = openDatabase({ url: services.databaseUrl, poolSize: 1, uploadPoolSize: 1 });
  await migrate(admin.db).finally(() => admin.close());
  node = await startServe(config, createLogger(process.env.WHARF_TEST_LOG_LEVEL ?? 'silent'));
});

after(async () => {
  proxy?.resume();
  await node?.close();
  await proxy?.close();
  await services?.close();
});

async function expectUnavailable(res: Response, what: string): Promise<void> {
  assert.equal(res.status, 503, `${what}: ${res.status}`);
  const body = (await res.json()) as { errors: Array<{ code: string; detail?: { unavailable?: string[] } }> };
  assert.equal(body.errors[0]?.code, 'UNAVAILABLE', what);
  assert.deepEqual(body.errors[0]?.detail?.unavailable, ['postgresql'], what);
  assert.ok(res.headers.get('retry-after'), `${what}: Retry-After`);
}

describe('a stalled database connection', () => {
  it('requests answer 503 UNAVAILABLE instead of hanging, /readyz says so, and all recovers', { timeout: 180_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const name = 'stalled/app';
    const image = await pushImage(node.url, name, 'v1');
    // A session opened before the stall, continued during it.
    const post = await fetch(`${node.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
    const session = new URL(post.headers.get('location')!, node.url).toString();

    proxy.stall();
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
      proxy.resume();
    }

    await eventually(async () => assert.equal((await fetch(`${node.url}/readyz`)).status, 200), 60_000);
    await eventually(async () => assert.equal((await fetch(`${node.url}/v2/${name}/manifests/v1`, { method: 'HEAD' })).status, 200), 60_000);
    assert.equal((await fetch(`${node.url}/v2/${name}/manifests/${image.digest}`)).status, 200);
    assert.equal((await pushBlob(node.url, name, blobOf('after the stall'))).status, 201);
    const status = await fetch(session);
    assert.equal(status.status, 204, 'the session opened before the stall is still there');
  });
});
