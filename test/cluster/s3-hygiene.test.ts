/**
 * Nothing left in the bucket: cancelled, expired and abandoned uploads abort their S3 multipart
 * uploads; the gc worker's sweep aborts multipart uploads no session owns; wharf gc reports them.
 * Asserted with ListMultipartUploads on the real S3 server (Ceph RGW in CI). s3rver has no
 * ListMultipartUploads: there the suite is skipped, saying so.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { openDatabase, type Database } from '../../libs/metadata/index.js';
import '../../libs/storage/s3.js'; // before the S3Client below: it quiets the SDK's Node 20 notice
import { reconcile } from '../../services/cli/reconcile.js';
import { openBlobStore } from '../../services/cli/parts.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, blobOf, pushBlob, putManifest } from '../helpers/oci.js';
import { eventually } from '../helpers/wait.js';

const MiB = 1024 * 1024;
let cluster: TestCluster | undefined;
let skip: string | undefined;
let s3: S3Client;
let bucket: string;
let db: Database;

before(async () => {
  const started = await startTestCluster({
    'storage.s3.prefix': 'nodes/',
    'storage.s3.partsize': 5 * MiB,
    'uploads.maxidle': 10,
    'gc.sweepinterval': 1,
    'gc.uploadgrace': 3,
    'gc.pollinterval': 50,
  });
  if ('skip' in started) {
    skip = started.skip;
    return;
  }
  cluster = started;
  const { endpoint, region, accessKeyId, secretAccessKey } = cluster.services.s3;
  bucket = cluster.services.s3.bucket;
  s3 = new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey }, requestChecksumCalculation: 'WHEN_REQUIRED' });
  try {
    await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  } catch (err) {
    skip = `this S3 server has no ListMultipartUploads (${(err as Error).name}); run with WHARF_TEST_S3_ENDPOINT (scripts/rgw.sh)`;
  }
  db = openDatabase({ url: cluster.config['database.url'], poolSize: 2, uploadPoolSize: 1 });
});

after(async () => {
  await db?.close();
  s3?.destroy();
  await cluster?.close();
});

async function multipartUploads(prefix: string): Promise<Array<{ key: string; uploadId: string }>> {
  const page = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (page.Uploads ?? []).map((u) => ({ key: u.Key!, uploadId: u.UploadId! }));
}

async function objectKeys(prefix: string): Promise<string[]> {
  const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (page.Contents ?? []).map((o) => o.Key!);
}

/** A session with one full part and a tail object in S3, left as a client that went away leaves it. */
async function abandonedUpload(name: string): Promise<string> {
  const start = await fetch(`${cluster!.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  assert.equal(start.status, 202);
  const location = new URL(start.headers.get('location')!, cluster!.url).toString();
  const body = randomBytes(5 * MiB + 1234);
  const patch = await fetch(location, {
    method: 'PATCH',
    headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${body.length - 1}`, 'content-length': String(body.length) },
    body,
  });
  assert.equal(patch.status, 202, await patch.text());
  return location;
}

/** What a node that crashed right after CreateMultipartUpload leaves: an upload with a part and no session. */
async function strayMultipartUpload(key: string): Promise<string> {
  const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId!, PartNumber: 1, Body: randomBytes(MiB) }));
  return created.UploadId!;
}

describe('nothing left in the bucket (S3 multipart uploads)', () => {
  it('a cancelled upload (DELETE) aborts its multipart upload and deletes its tail at once', async (t) => {
    if (skip) return t.skip(skip);
    const location = await abandonedUpload('hygiene/cancel');
    const id = location.split('/').pop()!.split('?')[0]!;
    const mine = (u: { key: string }) => u.key.includes(id);
    assert.equal((await multipartUploads('nodes/')).filter(mine).length, 1, 'the PATCH left a multipart upload with a part');
    assert.equal((await objectKeys('nodes/')).filter((k) => k.includes(id)).length, 1, 'and a tail object');
    const res = await fetch(location, { method: 'DELETE' });
    assert.equal(res.status, 204);
    assert.deepEqual((await multipartUploads('nodes/')).filter(mine), []);
    assert.deepEqual(
      (await objectKeys('nodes/')).filter((k) => k.includes(id)),
      [],
    );
  });

  it('an abandoned chunked upload and a multipart upload no session owns are gone after the sweep', async (t) => {
    if (skip) return t.skip(skip);
    const location = await abandonedUpload('hygiene/abandoned');
    const id = location.split('/').pop()!.split('?')[0]!;
    const strayKey = `nodes/zz/crashed-${randomBytes(4).toString('hex')}`;
    const strayId = await strayMultipartUpload(strayKey);
    const before = await multipartUploads('nodes/');
    assert.ok(before.some((u) => u.key.includes(id)));
    assert.ok(before.some((u) => u.uploadId === strayId));
    // uploads.maxidle expires the session (which aborts its upload); the sweep aborts the stray one
    // once it is older than gc.uploadgrace.
    await eventually(async () => assert.deepEqual(await multipartUploads('nodes/'), []), 60_000, 250);
    assert.deepEqual(
      (await objectKeys('nodes/')).filter((k) => k.includes(id)),
      [],
      'the tail object is deleted too',
    );
    assert.equal((await fetch(location)).status, 404, 'the session is gone');
  });

  it('a finished chunked push leaves exactly its blob object and no multipart upload', async (t) => {
    if (skip) return t.skip(skip);
    const name = 'hygiene/finished';
    const bytes = randomBytes(11 * MiB + 77) as Buffer<ArrayBuffer>;
    const layer = blobOf(bytes);
    const start = await fetch(`${cluster!.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
    let location = new URL(start.headers.get('location')!, cluster!.url).toString();
    const id = location.split('/').pop()!.split('?')[0]!;
    // Three PATCHes of uneven sizes, so parts, a tail and a part from tail + chunk all happen.
    for (const [from, to] of [
      [0, 3 * MiB],
      [3 * MiB, 8 * MiB + 5],
      [8 * MiB + 5, bytes.length],
    ] as const) {
      const chunk = bytes.subarray(from, to);
      const res = await fetch(location, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${from}-${to - 1}`, 'content-length': String(chunk.length) },
        body: chunk,
      });
      assert.equal(res.status, 202, await res.text());
      location = new URL(res.headers.get('location')!, cluster!.url).toString();
    }
    const put = await fetch(`${location}${location.includes('?') ? '&' : '?'}digest=${layer.digest}`, { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    // A manifest names it, so garbage collection keeps it while this test looks.
    const config = blobOf(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    assert.equal((await pushBlob(cluster!.url, name, config)).status, 201);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: [{ mediaType: OCI_LAYER, digest: layer.digest, size: layer.size }],
    });
    assert.equal((await putManifest(cluster!.url, name, 'v1', manifest, OCI_MANIFEST)).status, 201);

    const row = await db.db.selectFrom('blobs').select('storage_key').where('digest', '=', layer.digest).executeTakeFirstOrThrow();
    const keys = await objectKeys('nodes/');
    assert.ok(keys.includes(`nodes/${row.storage_key}`), 'the blob object is there');
    assert.deepEqual(
      keys.filter((k) => k.includes(id) && k !== `nodes/${row.storage_key}`),
      [],
      'no tail object is left',
    );
    assert.ok(!(await multipartUploads('nodes/')).some((u) => u.key.includes(id)), 'the multipart upload is completed');
    const back = Buffer.from(await (await fetch(`${cluster!.url}/v2/${name}/blobs/${layer.digest}`)).arrayBuffer());
    assert.ok(back.equals(bytes));
  });

  it('wharf gc --dry-run reports a multipart upload no session owns; --apply aborts it', async (t) => {
    if (skip) return t.skip(skip);
    // Under a prefix of its own, which the cluster's sweep does not look at.
    const config = { ...cluster!.config, 'storage.s3.prefix': 'reconcile/' };
    const store = await openBlobStore(config);
    const key = `reconcile/ab/stray-${randomBytes(4).toString('hex')}`;
    const uploadId = await strayMultipartUpload(key);
    const dry = await reconcile(db.db, store, { apply: false, minAgeSeconds: 0 });
    assert.deepEqual(
      dry.strayUploads.map((u) => [u.key, u.uploadId]),
      [[key.slice('reconcile/'.length), uploadId]],
    );
    assert.equal(dry.strayUploadsAborted, 0);
    assert.equal((await multipartUploads('reconcile/')).length, 1, 'a dry run changes nothing');
    const applied = await reconcile(db.db, store, { apply: true, minAgeSeconds: 0 });
    assert.equal(applied.strayUploadsAborted, 1);
    assert.deepEqual(await multipartUploads('reconcile/'), []);
    (store as { destroy?: () => void }).destroy?.();
  });
});
