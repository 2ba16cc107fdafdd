/**
 * Manifests that must be refused: invalid tags, missing blobs and children, oversize and
 * malformed bodies; a refused PUT keeps what was there.
 * Each gets a 4xx in OCI error JSON and leaves nothing half-written.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  closeBadInputWharf,
  DOCKER_MANIFEST,
  MANIFEST_LIMIT,
  assertNoManifest,
  assertUnchanged,
  expectError,
  expectRawError,
  imageManifest,
  repo,
  repoWithBlobs,
  repositoryExists,
  snapshot,
  startBadInputWharf,
} from '../helpers/bad-input.js';
import { OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, blobOf, pushImage, putManifest, randomBlob, sha256, type Blob } from '../helpers/oci.js';
import { rawRequest } from '../helpers/raw-http.js';
import { behindTestProxy } from '../helpers/server.js';

let base: string;

before(async () => {
  base = await startBadInputWharf();
});
after(closeBadInputWharf);

describe('invalid tags on manifest PUT', () => {
  const tags: Array<[string, string]> = [
    ['-bad', '-bad'],
    ['a 129-character tag', 'a'.repeat(129)],
    ['"bad tag!" (url-encoded)', encodeURIComponent('bad tag!')],
    ['.dot-first', '.dot-first'],
  ];
  for (const [label, tag] of tags) {
    it(`tag ${label}: 400 TAG_INVALID, nothing stored`, async () => {
      const { name, manifest } = await repoWithBlobs('bad-tag');
      const before = await snapshot();
      await expectError(await putManifest(base, name, tag, manifest, OCI_MANIFEST), 400, 'TAG_INVALID', `PUT tag ${label}`);
      await assertUnchanged(before, `PUT tag ${label}`);
      await assertNoManifest(name, sha256(manifest));
    });
  }
});

describe('manifests naming what is not there', () => {
  it('a manifest whose config was never uploaded, in a new repository: 400 MANIFEST_BLOB_UNKNOWN, no repository row', async () => {
    const name = repo('missing-config');
    const config = blobOf('{"architecture":"amd64","os":"linux","never":"uploaded"}');
    const manifest = imageManifest(config, []);
    const before = await snapshot();
    const body = await expectError(await putManifest(base, name, 'v1', manifest, OCI_MANIFEST), 400, 'MANIFEST_BLOB_UNKNOWN', 'missing config');
    assert.deepEqual(body.errors[0]!.detail, { digest: config.digest });
    assert.equal(await repositoryExists(name), false);
    await assertUnchanged(before, 'missing config');
  });

  it('a manifest whose layer was never uploaded: 400 MANIFEST_BLOB_UNKNOWN, no manifest, no tag', async () => {
    const { name, config } = await repoWithBlobs('missing-layer');
    const missing = randomBlob(321);
    const manifest = imageManifest(config, [missing]);
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'v1', manifest, OCI_MANIFEST), 400, 'MANIFEST_BLOB_UNKNOWN', 'missing layer');
    await assertUnchanged(before, 'missing layer');
    await assertNoManifest(name, 'v1');
    await assertNoManifest(name, sha256(manifest));
  });

  it('a manifest naming a blob that exists only in another repository: 400 MANIFEST_BLOB_UNKNOWN, no repository row', async () => {
    const other = await repoWithBlobs('blob-elsewhere-src');
    const name = repo('blob-elsewhere');
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'v1', other.manifest, OCI_MANIFEST), 400, 'MANIFEST_BLOB_UNKNOWN', 'blob in another repo');
    assert.equal(await repositoryExists(name), false);
    await assertUnchanged(before, 'blob in another repo');
  });

  it('an index naming a child manifest not in the repository: 404 MANIFEST_UNKNOWN, nothing stored', async () => {
    const image = await pushImage(base, repo('index-child-src'), 'v1');
    const name = repo('index-missing-child');
    await pushImage(base, name, 'present');
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: image.digest, size: image.body.length, platform: { architecture: 'amd64', os: 'linux' } }],
    });
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'multi', index, OCI_INDEX), 404, 'MANIFEST_UNKNOWN', 'index with missing child');
    await assertUnchanged(before, 'index with missing child');
    await assertNoManifest(name, 'multi');
  });

  it('an index naming a missing child, in a new repository: 404 MANIFEST_UNKNOWN, no repository row', async () => {
    const name = repo('index-new-repo');
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: sha256('no such manifest'), size: 16 }],
    });
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'multi', index, OCI_INDEX), 404, 'MANIFEST_UNKNOWN', 'index in new repo');
    assert.equal(await repositoryExists(name), false);
    await assertUnchanged(before, 'index in new repo');
  });
});

describe('refused manifests keep what was there', () => {
  it('a refused PUT under an existing tag leaves the tag on its manifest', async () => {
    const name = repo('keep-tag');
    const image = await pushImage(base, name, 'latest');
    const bad = imageManifest(image.config, [randomBlob(99)]);
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'latest', bad, OCI_MANIFEST), 400, 'MANIFEST_BLOB_UNKNOWN', 'PUT over existing tag');
    await assertUnchanged(before, 'PUT over existing tag');
    const get = await fetch(`${base}/v2/${name}/manifests/latest`);
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('docker-content-digest'), image.digest);
    assert.equal(await get.text(), image.body);
  });

  it('a refused PUT by digest of an already stored manifest changes nothing', async () => {
    const name = repo('keep-digest');
    const image = await pushImage(base, name, 'v1');
    const before = await snapshot();
    await expectError(await putManifest(base, name, image.digest, `${image.body} `, OCI_MANIFEST), 400, 'DIGEST_INVALID', 'PUT by digest, other bytes');
    await assertUnchanged(before, 'PUT by digest, other bytes');
    const get = await fetch(`${base}/v2/${name}/manifests/${image.digest}`);
    assert.equal(await get.text(), image.body);
  });
});

describe('oversize manifests', () => {
  /** A syntactically valid image manifest of exactly `size` bytes, padded with an annotation. */
  function manifestOfSize(config: Blob, layer: Blob, size: number): Buffer {
    const skeleton = imageManifest(config, [layer], { annotations: { pad: '' } });
    return Buffer.from(skeleton.replace('"pad":""', `"pad":"${'x'.repeat(size - skeleton.length)}"`));
  }

  it('more than 4 MiB with a truthful Content-Length: 413 MANIFEST_INVALID, nothing stored', {
    skip: behindTestProxy() && 'the test proxy cannot relay an answer a node sends before the body it is still forwarding',
  }, async () => {
    const { name, config, layer } = await repoWithBlobs('big-cl');
    const body = manifestOfSize(config, layer, MANIFEST_LIMIT + 1);
    assert.equal(body.length, MANIFEST_LIMIT + 1);
    const before = await snapshot();
    const result = await rawRequest({
      url: `${base}/v2/${name}/manifests/big`,
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST, 'Content-Length': String(body.length) },
      body,
    });
    expectRawError(result, 413, 'MANIFEST_INVALID', 'oversize manifest (Content-Length)');
    await assertUnchanged(before, 'oversize manifest (Content-Length)');
    await assertNoManifest(name, 'big');
  });

  it('more than 4 MiB with chunked transfer-encoding: 413 MANIFEST_INVALID, nothing stored', {
    skip: behindTestProxy() && 'the test proxy cannot relay an answer a node sends before the body it is still forwarding',
  }, async () => {
    const { name, config, layer } = await repoWithBlobs('big-chunked');
    const body = manifestOfSize(config, layer, MANIFEST_LIMIT + 64 * 1024);
    const pieces: Buffer[] = [];
    for (let at = 0; at < body.length; at += 64 * 1024) pieces.push(body.subarray(at, at + 64 * 1024));
    const before = await snapshot();
    const result = await rawRequest({
      url: `${base}/v2/${name}/manifests/big`,
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST },
      body: pieces,
      chunked: true,
    });
    expectRawError(result, 413, 'MANIFEST_INVALID', 'oversize manifest (chunked)');
    await assertUnchanged(before, 'oversize manifest (chunked)');
    await assertNoManifest(name, 'big');
  });

  it('exactly 4 MiB is accepted (the limit is inclusive)', async () => {
    const { name, config, layer } = await repoWithBlobs('big-exact');
    const body = manifestOfSize(config, layer, MANIFEST_LIMIT);
    const res = await fetch(`${base}/v2/${name}/manifests/exact`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: new Uint8Array(body) });
    assert.equal(res.status, 201, await res.text());
  });
});

describe('invalid manifests', () => {
  it('an unknown media type in Content-Type and none in the body: 400 MANIFEST_INVALID', async () => {
    const { name, config, layer } = await repoWithBlobs('unknown-type');
    const parsed = JSON.parse(imageManifest(config, [layer])) as Record<string, unknown>;
    delete parsed.mediaType;
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'v1', JSON.stringify(parsed), 'application/x-not-a-manifest'), 400, 'MANIFEST_INVALID', 'unknown media type');
    await assertUnchanged(before, 'unknown media type');
    await assertNoManifest(name, 'v1');
  });

  it('no media type anywhere (no Content-Type, none in the body): 400 MANIFEST_INVALID', async () => {
    const { name, config, layer } = await repoWithBlobs('no-type');
    const parsed = JSON.parse(imageManifest(config, [layer])) as Record<string, unknown>;
    delete parsed.mediaType;
    const before = await snapshot();
    const res = await fetch(`${base}/v2/${name}/manifests/v1`, { method: 'PUT', body: new Uint8Array(Buffer.from(JSON.stringify(parsed))) });
    await expectError(res, 400, 'MANIFEST_INVALID', 'no media type');
    await assertUnchanged(before, 'no media type');
  });

  it('mediaType in the body differing from Content-Type: 400 MANIFEST_INVALID', async () => {
    const { name, manifest } = await repoWithBlobs('type-mismatch');
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'v1', manifest, DOCKER_MANIFEST), 400, 'MANIFEST_INVALID', 'mediaType mismatch');
    await assertUnchanged(before, 'mediaType mismatch');
    await assertNoManifest(name, 'v1');
  });

  it('garbage that is not JSON: 400 MANIFEST_INVALID', async () => {
    const name = repo('garbage');
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'v1', '{"schemaVersion": 2, this is not json', OCI_MANIFEST), 400, 'MANIFEST_INVALID', 'garbage');
    await assertUnchanged(before, 'garbage');
  });

  it('binary garbage: 400 MANIFEST_INVALID', async () => {
    const name = repo('binary');
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'v1', randomBlob(512).bytes, OCI_MANIFEST), 400, 'MANIFEST_INVALID', 'binary garbage');
    await assertUnchanged(before, 'binary garbage');
  });

  it('JSON that is not an object: 400 MANIFEST_INVALID', async () => {
    const name = repo('array');
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'v1', '[1,2,3]', OCI_MANIFEST), 400, 'MANIFEST_INVALID', 'JSON array');
    await assertUnchanged(before, 'JSON array');
  });

  it('schemaVersion 1 (Docker schema 1): 400 MANIFEST_INVALID', async () => {
    const { name, layer } = await repoWithBlobs('schema1');
    const schema1 = JSON.stringify({
      schemaVersion: 1,
      name,
      tag: 'v1',
      architecture: 'amd64',
      fsLayers: [{ blobSum: layer.digest }],
      history: [{ v1Compatibility: '{}' }],
    });
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'v1', schema1, 'application/vnd.docker.distribution.manifest.v1+prettyjws'), 400, 'MANIFEST_INVALID', 'schema 1');
    await assertUnchanged(before, 'schema 1');
  });

  it('schemaVersion 1 in an otherwise valid OCI manifest: 400 MANIFEST_INVALID', async () => {
    const { name, config, layer } = await repoWithBlobs('schema1-oci');
    const body = imageManifest(config, [layer], { schemaVersion: 1 });
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'v1', body, OCI_MANIFEST), 400, 'MANIFEST_INVALID', 'OCI schemaVersion 1');
    await assertUnchanged(before, 'OCI schemaVersion 1');
  });

  it('a layer descriptor with a malformed digest: 400 MANIFEST_INVALID', async () => {
    const { name, config } = await repoWithBlobs('bad-descriptor');
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: [{ mediaType: OCI_LAYER, digest: 'sha256:xyz', size: 1 }],
    });
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'v1', body, OCI_MANIFEST), 400, 'MANIFEST_INVALID', 'bad descriptor digest');
    await assertUnchanged(before, 'bad descriptor digest');
  });

  it('PUT by digest when the digest does not match the body: 400 DIGEST_INVALID, nothing stored', async () => {
    const { name, manifest } = await repoWithBlobs('digest-mismatch');
    const wrong = sha256(`${manifest} `);
    const before = await snapshot();
    await expectError(await putManifest(base, name, wrong, manifest, OCI_MANIFEST), 400, 'DIGEST_INVALID', 'manifest digest mismatch');
    await assertUnchanged(before, 'manifest digest mismatch');
    await assertNoManifest(name, sha256(manifest));
    await assertNoManifest(name, wrong);
  });

  it('PUT by a malformed digest reference: 400 DIGEST_INVALID, nothing stored', async () => {
    const { name, manifest } = await repoWithBlobs('digest-malformed');
    const before = await snapshot();
    await expectError(await putManifest(base, name, 'sha256:xyz', manifest, OCI_MANIFEST), 400, 'DIGEST_INVALID', 'malformed manifest digest');
    await assertUnchanged(before, 'malformed manifest digest');
  });
});
