/**
 * Names, paths and methods: invalid repository names, unknown blobs, manifests and repositories,
 * pagination numbers and ranges, methods a path does not allow.
 * Each gets a 4xx in OCI error JSON and leaves nothing half-written.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closeBadInputWharf, assertUnchanged, expectError, expectHeadError, imageManifest, repo, snapshot, startBadInputWharf } from '../helpers/bad-input.js';
import { OCI_MANIFEST, blobOf, pushImage, putManifest, randomBlob, sha256, type Blob } from '../helpers/oci.js';

let base: string;

before(async () => {
  base = await startBadInputWharf();
});
after(closeBadInputWharf);

describe('invalid repository names', () => {
  const names: Array<[string, string]> = [
    ['UPPER/case', 'UPPER/case'],
    ['a//b', 'a//b'],
    ['-lead', '-lead'],
    ['trail-', 'trail-'],
    ['a 300-character name', `${'a'.repeat(100)}/${'b'.repeat(100)}/${'c'.repeat(98)}`],
    ['a 9,000-character name', Array.from({ length: 90 }, () => 'a'.repeat(99)).join('/')],
  ];
  const digest = sha256('any');
  const manifest = imageManifest(blobOf('{}'), []);

  for (const [label, name] of names) {
    it(`manifest GET under ${label}: 400 NAME_INVALID`, async () => {
      await expectError(await fetch(`${base}/v2/${name}/manifests/latest`), 400, 'NAME_INVALID', `manifest GET ${label}`);
    });

    it(`manifest PUT under ${label}: 400 NAME_INVALID, nothing stored`, async () => {
      const before = await snapshot();
      await expectError(await putManifest(base, name, 'latest', manifest, OCI_MANIFEST), 400, 'NAME_INVALID', `manifest PUT ${label}`);
      await assertUnchanged(before, `manifest PUT ${label}`);
    });

    it(`tags/list of ${label}: 400 NAME_INVALID`, async () => {
      await expectError(await fetch(`${base}/v2/${name}/tags/list`), 400, 'NAME_INVALID', `tags/list ${label}`);
    });

    it(`blob HEAD under ${label}: 400`, async () => {
      await expectHeadError(await fetch(`${base}/v2/${name}/blobs/${digest}`, { method: 'HEAD' }), 400, `blob HEAD ${label}`);
    });

    it(`upload POST under ${label}: 400 NAME_INVALID, no session`, async () => {
      const before = await snapshot();
      await expectError(await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' }), 400, 'NAME_INVALID', `upload POST ${label}`);
      await assertUnchanged(before, `upload POST ${label}`);
    });

    it(`monolithic upload POST ?digest= under ${label}: 400 NAME_INVALID, no session, no blob`, async () => {
      const blob = randomBlob(200);
      const before = await snapshot();
      const res = await fetch(`${base}/v2/${name}/blobs/uploads/?digest=${blob.digest}`, { method: 'POST', body: blob.bytes });
      await expectError(res, 400, 'NAME_INVALID', `monolithic POST ${label}`);
      await assertUnchanged(before, `monolithic POST ${label}`);
    });
  }
});

describe('unknown blobs, manifests and repositories', () => {
  let known: { name: string; digest: string; config: Blob; layers: Blob[] };
  before(async () => {
    const name = repo('known');
    const image = await pushImage(base, name, 'v1');
    known = { name, digest: image.digest, config: image.config, layers: image.layers };
  });

  const missing = sha256('never pushed anywhere');

  it('blob GET of a digest nowhere in the registry: 404 BLOB_UNKNOWN', async () => {
    await expectError(await fetch(`${base}/v2/${known.name}/blobs/${missing}`), 404, 'BLOB_UNKNOWN', 'blob GET unknown');
  });

  it('blob GET of a digest linked only in another repository: 404 BLOB_UNKNOWN', async () => {
    await expectError(await fetch(`${base}/v2/${repo('other')}/blobs/${known.layers[0]!.digest}`), 404, 'BLOB_UNKNOWN', 'blob GET other repo');
  });

  it('blob HEAD of an unknown digest: 404, no body', async () => {
    await expectHeadError(await fetch(`${base}/v2/${known.name}/blobs/${missing}`, { method: 'HEAD' }), 404, 'blob HEAD unknown');
  });

  it('blob HEAD of a digest linked only in another repository: 404', async () => {
    await expectHeadError(await fetch(`${base}/v2/${repo('other')}/blobs/${known.layers[0]!.digest}`, { method: 'HEAD' }), 404, 'blob HEAD other repo');
  });

  it('blob DELETE of an unknown digest: 404 BLOB_UNKNOWN, nothing changes', async () => {
    const before = await snapshot();
    await expectError(await fetch(`${base}/v2/${known.name}/blobs/${missing}`, { method: 'DELETE' }), 404, 'BLOB_UNKNOWN', 'blob DELETE unknown');
    await assertUnchanged(before, 'blob DELETE unknown');
  });

  it('blob DELETE of a digest linked only in another repository: 404 BLOB_UNKNOWN, the other link stays', async () => {
    const before = await snapshot();
    const other = repo('other');
    await expectError(await fetch(`${base}/v2/${other}/blobs/${known.layers[0]!.digest}`, { method: 'DELETE' }), 404, 'BLOB_UNKNOWN', 'blob DELETE other repo');
    await assertUnchanged(before, 'blob DELETE other repo');
    assert.equal((await fetch(`${base}/v2/${known.name}/blobs/${known.layers[0]!.digest}`, { method: 'HEAD' })).status, 200);
  });

  it('manifest GET of an unknown tag: 404 MANIFEST_UNKNOWN', async () => {
    await expectError(await fetch(`${base}/v2/${known.name}/manifests/nope`), 404, 'MANIFEST_UNKNOWN', 'manifest GET unknown tag');
  });

  it('manifest GET of an unknown digest: 404 MANIFEST_UNKNOWN', async () => {
    await expectError(await fetch(`${base}/v2/${known.name}/manifests/${missing}`), 404, 'MANIFEST_UNKNOWN', 'manifest GET unknown digest');
  });

  it('manifest HEAD of an unknown tag: 404, no body', async () => {
    await expectHeadError(await fetch(`${base}/v2/${known.name}/manifests/nope`, { method: 'HEAD' }), 404, 'manifest HEAD unknown tag');
  });

  it('manifest DELETE of an unknown digest: 404 MANIFEST_UNKNOWN, nothing changes', async () => {
    const before = await snapshot();
    await expectError(await fetch(`${base}/v2/${known.name}/manifests/${missing}`, { method: 'DELETE' }), 404, 'MANIFEST_UNKNOWN', 'manifest DELETE unknown');
    await assertUnchanged(before, 'manifest DELETE unknown');
  });

  it('tags/list of an unknown repository: 404 NAME_UNKNOWN', async () => {
    await expectError(await fetch(`${base}/v2/${repo('never')}/tags/list`), 404, 'NAME_UNKNOWN', 'tags/list unknown repo');
  });

  for (const n of ['-1', 'abc', '1.5', '']) {
    it(`tags/list with n=${JSON.stringify(n)}: 400 PAGINATION_NUMBER_INVALID`, async () => {
      const res = await fetch(`${base}/v2/${known.name}/tags/list?n=${encodeURIComponent(n)}`);
      if (n === '') {
        // An empty n is no number at all; refusing it is as right as ignoring it, but never a 5xx.
        assert.ok(res.status === 200 || res.status === 400, `n="": ${res.status}`);
        await res.arrayBuffer();
        return;
      }
      await expectError(res, 400, 'PAGINATION_NUMBER_INVALID', `tags/list n=${n}`);
    });

    it(`_catalog with n=${JSON.stringify(n)}: 400 PAGINATION_NUMBER_INVALID`, async () => {
      const res = await fetch(`${base}/v2/_catalog?n=${encodeURIComponent(n)}`);
      if (n === '') {
        assert.ok(res.status === 200 || res.status === 400, `n="": ${res.status}`);
        await res.arrayBuffer();
        return;
      }
      await expectError(res, 400, 'PAGINATION_NUMBER_INVALID', `_catalog n=${n}`);
    });
  }

  for (const range of ['bytes=5000-', 'bytes=1024-', 'bytes=1024-2000', 'bytes=-0']) {
    it(`blob GET with an unsatisfiable Range (${range}): 416 with Content-Range: bytes */<size>`, async () => {
      const layer = known.layers[0]!;
      assert.equal(layer.size, 1024);
      const res = await fetch(`${base}/v2/${known.name}/blobs/${layer.digest}`, { headers: { range } });
      assert.equal(res.headers.get('content-range'), `bytes */${layer.size}`);
      await expectError(res, 416, 'RANGE_INVALID', `Range ${range}`);
    });
  }

  it('a 416 is not marked cacheable for a year like the blob itself', async () => {
    const layer = known.layers[0]!;
    const res = await fetch(`${base}/v2/${known.name}/blobs/${layer.digest}`, { headers: { range: 'bytes=5000-' } });
    await expectError(res, 416, 'RANGE_INVALID', 'Range bytes=5000-');
    const cacheControl = res.headers.get('cache-control') ?? '';
    const maxAge = Number(/max-age=(\d+)/.exec(cacheControl)?.[1] ?? 0);
    assert.equal(maxAge, 0, `an error response carries Cache-Control: ${cacheControl}`);
    assert.equal(res.headers.get('etag'), null, "an error response carries the blob's ETag");
  });
});

describe('methods and paths', () => {
  it('PATCH on a manifest: 405 UNSUPPORTED with Allow', async () => {
    const res = await fetch(`${base}/v2/some/repo/manifests/latest`, { method: 'PATCH', body: '{}' });
    const allow = res.headers.get('allow') ?? '';
    await expectError(res, 405, 'UNSUPPORTED', 'PATCH manifest');
    assert.match(allow, /\bGET\b/);
    assert.match(allow, /\bPUT\b/);
  });

  it('POST on a blob: 405 UNSUPPORTED', async () => {
    const before = await snapshot();
    const res = await fetch(`${base}/v2/some/repo/blobs/${sha256('x')}`, { method: 'POST', body: 'x' });
    await expectError(res, 405, 'UNSUPPORTED', 'POST blob');
    await assertUnchanged(before, 'POST blob');
  });

  it('DELETE on tags/list: 405 UNSUPPORTED', async () => {
    await expectError(await fetch(`${base}/v2/some/repo/tags/list`, { method: 'DELETE' }), 405, 'UNSUPPORTED', 'DELETE tags/list');
  });

  it('PUT on _catalog: 405 UNSUPPORTED', async () => {
    await expectError(await fetch(`${base}/v2/_catalog`, { method: 'PUT', body: '{}' }), 405, 'UNSUPPORTED', 'PUT _catalog');
  });

  it('an unknown path under /v2/: 404 in OCI error JSON', async () => {
    await expectError(await fetch(`${base}/v2/some/repo/nothing/here`), 404, 'UNSUPPORTED', 'unknown path');
  });

  it('an unknown path under /v2/ with a body: 404 in OCI error JSON, nothing stored', async () => {
    const before = await snapshot();
    await expectError(await fetch(`${base}/v2/some/repo/blobs`, { method: 'POST', body: 'x' }), 404, 'UNSUPPORTED', 'unknown path POST');
    await assertUnchanged(before, 'unknown path POST');
  });

  it('a path with malformed percent-encoding: 400 in OCI error JSON', async () => {
    await expectError(await fetch(`${base}/v2/bad%zzname/tags/list`), 400, 'NAME_INVALID', 'malformed percent-encoding');
  });
});
