/**
 * One upstream fetch for many cold pulls: 20 concurrent GETs of one uncached 50 MiB layer, spread
 * over two API nodes of a cluster (PostgreSQL, S3, NATS), make the upstream serve its bytes once,
 * counted at a proxy in front of it. Coordination is the fill row in PostgreSQL, not node memory.
 * A fill whose upload state PostgreSQL refuses to record once still serves its client whole, and
 * a request that waits on the row of a fill being committed reads what it stored.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { openDatabase } from '../libs/metadata/index.js';
import { startTestCluster, type TestCluster } from './helpers/cluster.js';
import { startCountingProxy, type CountingProxy } from './helpers/counting-proxy.js';
import { DISTRIBUTION, startDistribution, type Distribution } from './helpers/distribution.js';
import { randomBlob, streamedDigest } from './helpers/oci.js';
import { pushContent, rawImage } from './helpers/upstream-push.js';
import { eventually } from './helpers/wait.js';

const LAYER_BYTES = 50 * 1024 * 1024;
const PULLS = 20;
/** More than the store may lag the client (8 MiB) plus the client's buffer: a store that stops reading holds the client back. */
const SECOND_LAYER_BYTES = 24 * 1024 * 1024;

describe('concurrent cold pulls of one blob through two nodes', { skip: existsSync(DISTRIBUTION) ? false : `${DISTRIBUTION} not installed` }, () => {
  let upstream: Distribution;
  let counting: CountingProxy;
  let cluster: TestCluster | { skip: string };
  const image = rawImage([randomBlob(LAYER_BYTES)]);
  const layer = image.layers[0]!;
  const second = rawImage([randomBlob(SECOND_LAYER_BYTES)]);
  const third = rawImage([randomBlob(2 * 1024 * 1024)]);

  before(async () => {
    upstream = await startDistribution();
    await pushContent(upstream.url, 'big/layer', image, 'v1');
    await pushContent(upstream.url, 'big/second', second, 'v1');
    await pushContent(upstream.url, 'big/third', third, 'v1');
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

  it('serves a fill whole when recording its upload state fails once (PostgreSQL refusing a statement)', async (t) => {
    if ('skip' in cluster) return t.skip(cluster.skip);
    const layer2 = second.layers[0]!;
    const database = openDatabase({ url: cluster.config['database.url'], poolSize: 1, uploadPoolSize: 1 });
    try {
      // The first write of a fill's storage state fails, as a statement does when PostgreSQL
      // refuses a new connection ("too many clients"); a sequence counts across the rollback.
      await sql`create sequence fill_state_refusals`.execute(database.db);
      await sql`
        create function refuse_fill_state() returns trigger language plpgsql as $$
        begin
          if new.storage_state is distinct from old.storage_state then
            if nextval('fill_state_refusals') = 1 then
              raise exception 'refused for the test';
            end if;
          end if;
          return new;
        end $$`.execute(database.db);
      await sql`create trigger refuse_fill_state before update on proxy_blob_fills for each row execute function refuse_fill_state()`.execute(database.db);
      const manifest = await fetch(`${cluster.nodes[0]!.url}/v2/hub/big/second/manifests/v1`, { headers: { accept: second.mediaType } });
      assert.equal(manifest.status, 200);
      assert.equal(await streamedDigest(`${cluster.nodes[0]!.url}/v2/hub/big/second/blobs/${layer2.digest}`), layer2.digest);
      const refusals = await sql<{ last_value: string; is_called: boolean }>`select last_value, is_called from fill_state_refusals`.execute(database.db);
      assert.ok(refusals.rows[0]!.is_called, 'the fill tried to record its upload state');
      // Committed: the next GET, on the other node, reads the store; the upstream served it once.
      await eventually(async () => assert.ok(await database.db.selectFrom('blobs').select('digest').where('digest', '=', layer2.digest).executeTakeFirst()));
      assert.equal(await streamedDigest(`${cluster.nodes[1]!.url}/v2/hub/big/second/blobs/${layer2.digest}`), layer2.digest);
      assert.equal(counting.count(`/blobs/${layer2.digest}`, 'GET'), 1, counting.requests.join('\n'));
    } finally {
      await sql`drop trigger if exists refuse_fill_state on proxy_blob_fills`.execute(database.db);
      await database.close();
    }
  });

  it('a request on another node whose claim waited on the fill row while that fill committed serves the stored blob, with no second upstream fetch', async (t) => {
    if ('skip' in cluster) return t.skip(cluster.skip);
    const layer3 = third.layers[0]!;
    const url = cluster.config['database.url'];
    const database = openDatabase({ url, poolSize: 1, uploadPoolSize: 1 });
    // Holds the fill's commit at its blob row, on an advisory lock this session owns, until the
    // other node's claim is seen waiting on the fill row.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    const waiting = async (condition: string) =>
      eventually(async () => {
        const rows = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and ${sql.raw(condition)}`.execute(database.db);
        assert.ok(rows.rows[0]!.n > 0, condition);
      });
    try {
      await holder.query('select pg_advisory_lock(4717)');
      await sql`
        create function hold_blob_commit() returns trigger language plpgsql as $$
        begin
          if new.digest = ${sql.lit(layer3.digest)} then perform pg_advisory_xact_lock(4717); end if;
          return new;
        end $$`.execute(database.db);
      await sql`create trigger hold_blob_commit before insert on blobs for each row execute function hold_blob_commit()`.execute(database.db);
      const manifest = await fetch(`${cluster.nodes[0]!.url}/v2/hub/big/third/manifests/v1`, { headers: { accept: third.mediaType } });
      assert.equal(manifest.status, 200);
      counting.reset();
      // The leading client has every byte before the commit starts.
      assert.equal(await streamedDigest(`${cluster.nodes[0]!.url}/v2/hub/big/third/blobs/${layer3.digest}`), layer3.digest);
      await waiting("wait_event = 'advisory'");
      const late = streamedDigest(`${cluster.nodes[1]!.url}/v2/hub/big/third/blobs/${layer3.digest}`);
      await waiting("query ilike '%insert into proxy_blob_fills%'");
      await holder.query('select pg_advisory_unlock(4717)');
      assert.equal(await late, layer3.digest);
      assert.equal(counting.count(`/blobs/${layer3.digest}`, 'GET'), 1, counting.requests.join('\n'));
    } finally {
      await holder.end();
      await sql`drop trigger if exists hold_blob_commit on blobs`.execute(database.db);
      await sql`drop function if exists hold_blob_commit()`.execute(database.db);
      await database.close();
    }
  });
});
