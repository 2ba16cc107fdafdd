/**
 * A node that dies mid-fill: two `wharf serve` processes on one PostgreSQL and S3 cache a large
 * layer from Distribution 2.8.2, served slowly (held part-way at a proxy in front of it). Node A
 * is SIGKILLed while it fills; a pull through node B waits for A's fill lease to run out, takes the
 * fill over and gets the right bytes, and the gc worker deletes what A had written: nothing
 * partial stays in the store. A dead fill nobody asks for again is swept by the gc worker. A fill
 * whose node died before it recorded its S3 multipart upload id leaves no multipart upload either.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { configToEnv, type Config } from '../libs/config/index.js';
import { openDatabase, type Database } from '../libs/metadata/index.js';
import { UNRECORDED_UPLOAD } from '../libs/storage/index.js';
import { clusterConfig } from './helpers/cluster.js';
import { startCountingProxy, type CountingProxy } from './helpers/counting-proxy.js';
import { DISTRIBUTION, startDistribution, type Distribution } from './helpers/distribution.js';
import { randomBlob, streamedDigest } from './helpers/oci.js';
import { runWharfCommand, spawnWharf, type WharfProcess } from './helpers/processes.js';
import { listObjectKeys } from './helpers/s3rver.js';
import { clusterSuite, migrateDatabase } from './helpers/services.js';
import { pushContent, rawImage } from './helpers/upstream-push.js';
import { eventually } from './helpers/wait.js';

const MiB = 1024 * 1024;
const LAYER_BYTES = 24 * MiB;
const LEASE_SECONDS = 3;

const image = rawImage([randomBlob(LAYER_BYTES)]);
const layer = image.layers[0]!;
const other = rawImage([randomBlob(6 * MiB)]);
const processes: WharfProcess[] = [];
let upstream: Distribution | undefined;
let counting: CountingProxy | undefined;
let config: Config | undefined;
let database: Database | undefined;

const suite = existsSync(DISTRIBUTION)
  ? clusterSuite({
      async setup(services) {
        upstream = await startDistribution();
        await pushContent(upstream.url, 'big/layer', image, 'v1');
        await pushContent(upstream.url, 'big/other', other, 'v1');
        counting = await startCountingProxy(upstream.url);
        config = clusterConfig(services, {
          'proxy.upstreams': [{ name: 'dist', url: counting.url, prefix: 'hub', timeout: '60s' }],
          'proxy.filllease': LEASE_SECONDS,
          'gc.pollinterval': 100,
        });
        await migrateDatabase(config['database.url']);
        database = openDatabase({ url: config['database.url'], poolSize: 2, uploadPoolSize: 1 });
        processes.push(await spawnWharf('serve', config), await spawnWharf('serve', config), await spawnWharf('worker', config));
      },
      async teardown() {
        for (const p of processes) p.child.kill('SIGKILL');
        await database?.close();
        await counting?.close();
        await upstream?.close();
      },
    })
  : undefined;

function s3Client(): S3Client {
  const s3 = suite!.services!.s3;
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

async function objectKeys(): Promise<string[]> {
  const s3 = suite!.services!.s3;
  const client = s3Client();
  try {
    return await listObjectKeys(client, s3.bucket);
  } finally {
    client.destroy();
  }
}

describe('a node killed mid-fill', { skip: suite ? false : `${DISTRIBUTION} not installed` }, () => {
  it('lets another node take the fill over, serve the right bytes, and leaves nothing partial in the store', async (t) => {
    if (suite?.skip) return t.skip(suite.skip);
    const [a, b] = processes as [WharfProcess, WharfProcess];
    const db = database!.db;
    assert.equal((await fetch(`${a.url}/v2/hub/big/layer/manifests/v1`, { headers: { accept: image.mediaType } })).status, 200);

    // Node A starts the fill; the upstream stops half-way, and A dies with the fill open.
    const held = counting!.holdNext(`/blobs/${layer.digest}`, LAYER_BYTES / 2);
    const dying = fetch(`${a.url}/v2/hub/big/layer/blobs/${layer.digest}`)
      .then(async (res) => {
        await res.arrayBuffer();
        return 'completed';
      })
      .catch(() => 'failed');
    await held.reached;
    const fill = await eventually(async () => {
      const row = await db.selectFrom('proxy_blob_fills').select(['owner', 'storage_key']).where('digest', '=', layer.digest).executeTakeFirst();
      assert.ok(row?.storage_key, 'the fill row names its object');
      return row;
    });
    a.child.kill('SIGKILL');
    await a.exited;
    held.release();
    assert.equal(await dying, 'failed');

    // Node B waits for A's lease to run out, takes the fill over and serves the layer whole.
    const taken = await streamedDigest(`${b.url}/v2/hub/big/layer/blobs/${layer.digest}`).catch((err) => {
      throw new Error(`${err}\nnode B: ${b.stderr()}\nupstream: ${counting!.requests.join('\n')}`);
    });
    assert.equal(taken, layer.digest);
    // The client's response ends once the bytes check out; the blob is recorded right after.
    const stored = await eventually(() => db.selectFrom('blobs').select(['size', 'storage_key']).where('digest', '=', layer.digest).executeTakeFirstOrThrow());
    assert.equal(stored.size, LAYER_BYTES);
    assert.notEqual(stored.storage_key, fill.storage_key, 'the blob is the new fill, not what A had written');
    assert.equal(counting!.count(`/blobs/${layer.digest}`, 'GET'), 2, counting!.requests.join('\n'));

    // A's partial object was queued with the takeover; the gc worker deletes it.
    await eventually(
      async () => {
        assert.equal((await db.selectFrom('proxy_blob_fills').selectAll().execute()).length, 0);
        assert.equal((await db.selectFrom('gc_storage_deletions').selectAll().execute()).length, 0);
      },
      30_000,
      200,
    );
    assert.deepEqual(await objectKeys(), [stored.storage_key], 'the store holds the blob and nothing else');
    if (process.env.WHARF_TEST_S3_ENDPOINT) {
      // A real S3 server lists multipart uploads too (s3rver cannot): none is left of A's.
      const check = await runWharfCommand(['reconcile', '--dry-run', '--min-age', '0'], configToEnv(config!));
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(check.stdout, /: 1 objects .*; 0 orphan objects .*0 unfinished multipart uploads no session owns/);
    }
    // And it reads back from the store, on both the surviving node and a fresh look-up.
    assert.equal(await streamedDigest(`${b.url}/v2/hub/big/layer/blobs/${layer.digest}`), layer.digest);
  });

  it('sweeps a fill whose node died and that no request took over, with its object', async (t) => {
    if (suite?.skip) return t.skip(suite.skip);
    const db = database!.db;
    const key = 'zz/abandoned-fill';
    const client = s3Client();
    try {
      await client.send(new PutObjectCommand({ Bucket: suite!.services!.s3.bucket, Key: key, Body: 'half a layer' }));
    } finally {
      client.destroy();
    }
    await db
      .insertInto('proxy_blob_fills')
      .values({ digest: `sha256:${'0'.repeat(64)}`, owner: 'a-dead-node', storage_key: key, heartbeat_at: new Date(Date.now() - 3_600_000) })
      .execute();
    await eventually(
      async () => {
        assert.equal((await db.selectFrom('proxy_blob_fills').selectAll().execute()).length, 0);
        assert.ok(!(await objectKeys()).includes(key), "the dead fill's object is deleted");
      },
      30_000,
      200,
    );
  });

  it('takes over a dead fill whose multipart upload id was never recorded, and aborts that upload too', async (t) => {
    if (suite?.skip) return t.skip(suite.skip);
    if (!process.env.WHARF_TEST_S3_ENDPOINT) return t.skip('s3rver lists no multipart uploads; run with WHARF_TEST_S3_ENDPOINT (scripts/rgw.sh)');
    const b = processes[1]!;
    const db = database!.db;
    const bucket = suite!.services!.s3.bucket;
    const blob = other.layers[0]!;
    const key = 'zz/unrecorded-fill';
    const client = s3Client();
    try {
      // A node that died between CreateMultipartUpload and writing the id into its fill row: the
      // row still holds what the claim wrote.
      await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      await db
        .insertInto('proxy_blob_fills')
        .values({ digest: blob.digest, owner: 'a-dead-node', storage_key: key, storage_state: JSON.stringify(UNRECORDED_UPLOAD), heartbeat_at: new Date(Date.now() - 3_600_000) })
        .execute();
      assert.equal((await fetch(`${b.url}/v2/hub/big/other/manifests/v1`, { headers: { accept: other.mediaType } })).status, 200);
      assert.equal(await streamedDigest(`${b.url}/v2/hub/big/other/blobs/${blob.digest}`), blob.digest);
      await eventually(
        async () => {
          assert.equal((await db.selectFrom('proxy_blob_fills').selectAll().execute()).length, 0);
          assert.equal((await db.selectFrom('gc_storage_deletions').selectAll().execute()).length, 0);
          const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
          assert.deepEqual(page.Uploads ?? [], [], 'the dead fill left no multipart upload');
        },
        30_000,
        200,
      );
    } finally {
      client.destroy();
    }
  });
});
