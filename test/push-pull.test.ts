import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestWharf, testAuth, type TestWharf } from './helpers/server.js';
import { blobOf, errorCode, pushBlob, pushImage, randomBlob, sha256 } from './helpers/oci.js';

let wharf: TestWharf;
let base: string;

before(async () => {
  wharf = await startTestWharf();
  base = wharf.base;
});
after(async () => wharf?.close());

describe('base endpoint', () => {
  it('GET /v2/ answers 200 with the API version header', async () => {
    const res = await fetch(`${base}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
  });
});

describe('blob push', () => {
  it('POST then PUT (monolithic) stores the blob and links it', async () => {
    const blob = randomBlob(5000);
    const post = await fetch(`${base}/v2/mono/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 202);
    const location = post.headers.get('location')!;
    assert.match(location, /^\/v2\/mono\/app\/blobs\/uploads\/[0-9a-f-]{36}$/);
    assert.equal(post.headers.get('range'), '0-0');
    assert.ok(post.headers.get('docker-upload-uuid'));
    const put = await fetch(`${base}${location}?digest=${blob.digest}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: blob.bytes,
    });
    assert.equal(put.status, 201);
    assert.equal(put.headers.get('location'), `/v2/mono/app/blobs/${blob.digest}`);
    assert.equal(put.headers.get('docker-content-digest'), blob.digest);
    const get = await fetch(`${base}/v2/mono/app/blobs/${blob.digest}`);
    assert.equal(get.status, 200);
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), blob.bytes);
    assert.equal(get.headers.get('docker-content-digest'), blob.digest);
    assert.equal(get.headers.get('content-length'), String(blob.size));
  });

  it('POST ?digest= uploads in one request (201)', async () => {
    const blob = randomBlob(3000);
    const res = await pushBlob(base, 'one/shot', blob);
    assert.equal(res.headers.get('location'), `/v2/one/shot/blobs/${blob.digest}`);
    const head = await fetch(`${base}/v2/one/shot/blobs/${blob.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(blob.size));
    assert.equal(head.headers.get('docker-content-digest'), blob.digest);
  });

  it('chunked PATCH with Content-Range, upload status, then PUT with no body', async () => {
    const blob = randomBlob(250_000);
    const post = await fetch(`${base}/v2/chunked/blobs/uploads/`, { method: 'POST' });
    let location = post.headers.get('location')!;
    const chunks = [blob.bytes.subarray(0, 100_000), blob.bytes.subarray(100_000, 200_000), blob.bytes.subarray(200_000)];
    let offset = 0;
    for (const chunk of chunks) {
      const res = await fetch(`${base}${location}`, {
        method: 'PATCH',
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${offset}-${offset + chunk.length - 1}`,
          'content-length': String(chunk.length),
        },
        body: chunk,
      });
      assert.equal(res.status, 202, await res.text());
      offset += chunk.length;
      assert.equal(res.headers.get('range'), `0-${offset - 1}`);
      location = res.headers.get('location')!;
      const status = await fetch(`${base}${location}`);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), `0-${offset - 1}`);
    }
    const put = await fetch(`${base}${location}?digest=${blob.digest}`, { method: 'PUT' });
    assert.equal(put.status, 201);
    const get = await fetch(`${base}/v2/chunked/blobs/${blob.digest}`);
    assert.equal(sha256(Buffer.from(await get.arrayBuffer())), blob.digest);
  });

  it('PATCH without Content-Range (streamed) appends', async () => {
    const blob = randomBlob(70_000);
    const post = await fetch(`${base}/v2/streamed/blobs/uploads/`, { method: 'POST' });
    const patch = await fetch(`${base}${post.headers.get('location')}`, { method: 'PATCH', body: blob.bytes });
    assert.equal(patch.status, 202);
    assert.equal(patch.headers.get('range'), `0-${blob.size - 1}`);
    const put = await fetch(`${base}${patch.headers.get('location')}?digest=${blob.digest}`, { method: 'PUT' });
    assert.equal(put.status, 201);
  });

  it('an out-of-order chunk gets 416 and the session stays usable', async () => {
    const blob = randomBlob(2000);
    const post = await fetch(`${base}/v2/ooo/blobs/uploads/`, { method: 'POST' });
    const loc = post.headers.get('location')!;
    const first = await fetch(`${base}${loc}`, { method: 'PATCH', headers: { 'content-range': '0-999' }, body: blob.bytes.subarray(0, 1000) });
    assert.equal(first.status, 202);
    const repeated = await fetch(`${base}${loc}`, { method: 'PATCH', headers: { 'content-range': '0-999' }, body: blob.bytes.subarray(0, 1000) });
    assert.equal(repeated.status, 416);
    assert.equal(repeated.headers.get('range'), '0-999');
    const skipped = await fetch(`${base}${loc}`, { method: 'PATCH', headers: { 'content-range': '1500-1999' }, body: blob.bytes.subarray(1500) });
    assert.equal(skipped.status, 416);
    const rest = await fetch(`${base}${loc}?digest=${blob.digest}`, { method: 'PUT', headers: { 'content-range': '1000-1999' }, body: blob.bytes.subarray(1000) });
    assert.equal(rest.status, 201);
  });

  it('DELETE cancels an upload session', async () => {
    const post = await fetch(`${base}/v2/cancel/blobs/uploads/`, { method: 'POST' });
    const loc = post.headers.get('location')!;
    assert.equal((await fetch(`${base}${loc}`, { method: 'DELETE' })).status, 204);
    const status = await fetch(`${base}${loc}`);
    assert.equal(status.status, 404);
    assert.equal(await errorCode(status), 'BLOB_UPLOAD_UNKNOWN');
  });

  it('a blob pushed twice is stored once', async () => {
    const blob = randomBlob(4096);
    await pushBlob(base, 'dedupe/a', blob);
    await pushBlob(base, 'dedupe/b', blob);
    const rows = await wharf.database.db.selectFrom('blobs').selectAll().where('digest', '=', blob.digest).execute();
    assert.equal(rows.length, 1);
    const links = await wharf.database.db.selectFrom('repository_blobs').selectAll().where('digest', '=', blob.digest).execute();
    assert.equal(links.length, 2);
  });

  it('accepts a sha512 digest', async () => {
    const { createHash } = await import('node:crypto');
    const bytes = Buffer.from('sha512 content');
    const digest = `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
    const res = await fetch(`${base}/v2/five12/blobs/uploads/?digest=${digest}`, { method: 'POST', body: bytes });
    assert.equal(res.status, 201);
    assert.equal((await fetch(`${base}/v2/five12/blobs/${digest}`, { method: 'HEAD' })).status, 200);
  });
});

describe('cross-repository mount', () => {
  it('mounts from a repository that has the blob (201)', async () => {
    const blob = randomBlob(1000);
    await pushBlob(base, 'mount/src', blob);
    const res = await fetch(`${base}/v2/mount/dst/blobs/uploads/?mount=${blob.digest}&from=mount/src`, { method: 'POST' });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('location'), `/v2/mount/dst/blobs/${blob.digest}`);
    assert.equal(res.headers.get('docker-content-digest'), blob.digest);
    assert.equal((await fetch(`${base}/v2/mount/dst/blobs/${blob.digest}`, { method: 'HEAD' })).status, 200);
  });

  it('falls back to a new session (202) when the source lacks the blob', async () => {
    const missing = randomBlob(10);
    const res = await fetch(`${base}/v2/mount/dst/blobs/uploads/?mount=${missing.digest}&from=mount/src`, { method: 'POST' });
    assert.equal(res.status, 202);
    assert.match(res.headers.get('location')!, /\/blobs\/uploads\//);
  });

  it('mounts automatically when from is absent but the blob exists', {
    skip: testAuth() === 'bearer' && 'a token names the repositories it may read; an automatic mount finds none of them',
  }, async () => {
    const blob = randomBlob(1000);
    await pushBlob(base, 'auto/src', blob);
    const res = await fetch(`${base}/v2/auto/dst/blobs/uploads/?mount=${blob.digest}`, { method: 'POST' });
    assert.equal(res.status, 201);
    assert.equal((await fetch(`${base}/v2/auto/dst/blobs/${blob.digest}`, { method: 'HEAD' })).status, 200);
  });

  it('a blob of another repository is not readable until mounted', async () => {
    const blob = randomBlob(100);
    await pushBlob(base, 'private/src', blob);
    const res = await fetch(`${base}/v2/private/other/blobs/${blob.digest}`);
    assert.equal(res.status, 404);
    assert.equal(await errorCode(res), 'BLOB_UNKNOWN');
  });
});

describe('blob range reads', () => {
  it('serves 206 for a range and 416 beyond the end', async () => {
    const blob = blobOf(Buffer.from('0123456789abcdef'));
    await pushBlob(base, 'ranges', blob);
    const partial = await fetch(`${base}/v2/ranges/blobs/${blob.digest}`, { headers: { range: 'bytes=2-5' } });
    assert.equal(partial.status, 206);
    assert.equal(partial.headers.get('content-range'), `bytes 2-5/${blob.size}`);
    assert.equal(await partial.text(), '2345');
    const suffix = await fetch(`${base}/v2/ranges/blobs/${blob.digest}`, { headers: { range: 'bytes=-3' } });
    assert.equal(await suffix.text(), 'def');
    const open = await fetch(`${base}/v2/ranges/blobs/${blob.digest}`, { headers: { range: 'bytes=10-' } });
    assert.equal(await open.text(), 'abcdef');
    const beyond = await fetch(`${base}/v2/ranges/blobs/${blob.digest}`, { headers: { range: 'bytes=100-200' } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get('content-range'), `bytes */${blob.size}`);
  });
});

describe('blob delete', () => {
  it('unlinks the blob from the repository only', async () => {
    const blob = randomBlob(100);
    await pushBlob(base, 'bdel/a', blob);
    await pushBlob(base, 'bdel/b', blob);
    const del = await fetch(`${base}/v2/bdel/a/blobs/${blob.digest}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    assert.equal((await fetch(`${base}/v2/bdel/a/blobs/${blob.digest}`, { method: 'HEAD' })).status, 404);
    assert.equal((await fetch(`${base}/v2/bdel/b/blobs/${blob.digest}`, { method: 'HEAD' })).status, 200);
    const again = await fetch(`${base}/v2/bdel/a/blobs/${blob.digest}`, { method: 'DELETE' });
    assert.equal(again.status, 404);
    assert.equal(await errorCode(again), 'BLOB_UNKNOWN');
  });
});

describe('manifest pull', () => {
  it('GET and HEAD by tag and by digest return the exact bytes and headers', async () => {
    const image = await pushImage(base, 'pull/app', 'v1', { layers: 2 });
    for (const ref of ['v1', image.digest]) {
      const get = await fetch(`${base}/v2/pull/app/manifests/${ref}`);
      assert.equal(get.status, 200);
      assert.equal(await get.text(), image.body);
      assert.equal(get.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
      assert.equal(get.headers.get('docker-content-digest'), image.digest);
      assert.equal(get.headers.get('content-length'), String(Buffer.byteLength(image.body)));
      const head = await fetch(`${base}/v2/pull/app/manifests/${ref}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('docker-content-digest'), image.digest);
      assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(image.body)));
      assert.equal(head.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
    }
  });

  it('returns the manifest through the blobs endpoint too, as Distribution does', async () => {
    const image = await pushImage(base, 'pull/viablob', 'v1');
    const res = await fetch(`${base}/v2/pull/viablob/blobs/${image.digest}`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), image.body);
  });
});
