/**
 * Client input PostgreSQL cannot take as it is: U+0000 and lone surrogates in manifest strings
 * and query parameters, and manifests with more references than one statement has bind
 * parameters. Each gets a 4xx in OCI error JSON (or, for a filter, an empty answer) and leaves
 * nothing behind; never a 500, never a 503.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { blobs, gc, manifests, repositories } from '../libs/metadata/index.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, blobOf, errorCode, pushBlob, pushImage, putManifest, randomBlob, sha256 } from './helpers/oci.js';

let wharf: TestWharf;
let base: string;
let counter = 0;
const repo = (what: string) => `hostile/${what}-${++counter}`;

before(async () => {
  wharf = await startTestWharf();
  base = wharf.base;
});
after(async () => wharf?.close());

async function manifestRows(name: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from manifests m join repositories r on r.id = m.repository_id where r.name = ${name}`.execute(
    wharf.database.db,
  );
  return rows[0]!.n;
}

/** JSON text with `bad` spliced in raw, so escapes like \u0000 and \ud800 reach the server as the client wrote them. */
function manifestWith(config: { digest: string; size: number }, layer: { digest: string; size: number }, splice: (bad: string) => Record<string, string>, bad: string): string {
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
    layers: [{ mediaType: OCI_LAYER, digest: layer.digest, size: layer.size }],
  };
  let text = JSON.stringify(doc);
  for (const [placeholder, replacement] of Object.entries(splice(bad))) text = text.replace(JSON.stringify(placeholder), replacement);
  return text;
}

const BAD = { nul: '"\\u0000"', 'nul inside': '"a\\u0000b"', 'lone high surrogate': '"x\\ud800"', 'lone low surrogate': '"\\udc00y"' };

describe('manifest strings PostgreSQL refuses', () => {
  let name: string;
  let config: { digest: string; size: number };
  let layer: { digest: string; size: number };
  before(async () => {
    name = repo('manifests');
    const c = blobOf(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
    const l = randomBlob(100);
    await pushBlob(base, name, c);
    await pushBlob(base, name, l);
    config = c;
    layer = l;
  });

  // Where the bad string goes: each case rewrites the manifest text around a placeholder.
  const places: Record<string, (text: string) => string> = {
    'annotation value': (t) => t.replace(/}$/, ',"annotations":{"k":@}}'),
    'annotation key': (t) => t.replace(/}$/, ',"annotations":{@:"v"}}'),
    artifactType: (t) => t.replace(/}$/, ',"artifactType":@}'),
    'layer mediaType': (t) => t.replace(`"mediaType":"${OCI_LAYER}"`, '"mediaType":@'),
    'config mediaType': (t) => t.replace(`"mediaType":"${OCI_CONFIG}"`, '"mediaType":@'),
    'layer annotation': (t) => t.replace(/("size":\d+)}]/, '$1,"annotations":{"k":@}}]'),
    'layer artifactType': (t) => t.replace(/("size":\d+)}]/, '$1,"artifactType":@}]'),
  };

  for (const [place, rewrite] of Object.entries(places)) {
    for (const [what, bad] of Object.entries(BAD)) {
      it(`${what} in the ${place}: 400 MANIFEST_INVALID, nothing stored`, async () => {
        const plain = manifestWith(config, layer, () => ({}), '');
        const text = rewrite(plain).replace('@', bad);
        assert.notEqual(text, plain);
        JSON.parse(text); // valid JSON: only PostgreSQL would refuse it
        const before = await manifestRows(name);
        const res = await putManifest(base, name, `t${counter++}`, text, OCI_MANIFEST);
        assert.equal(res.status, 400, `${place} ${what}: ${await res.clone().text()}`);
        assert.equal(await errorCode(res), 'MANIFEST_INVALID');
        assert.equal(await manifestRows(name), before);
      });
    }
  }

  it('a NUL in a field Wharf does not read is kept: the bytes are stored as they are', async () => {
    const text = manifestWith(config, layer, () => ({}), '').replace(/}$/, ',"x-extra":"a\\u0000b"}');
    const res = await putManifest(base, name, 'extra-nul', text, OCI_MANIFEST);
    assert.equal(res.status, 201, await res.clone().text());
    const got = await fetch(`${base}/v2/${name}/manifests/extra-nul`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(await got.text(), text);
  });

  it('an index whose child descriptor carries a NUL in its platform: 400 MANIFEST_INVALID', async () => {
    const image = await pushImage(base, name, 'child');
    const text = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: image.digest, size: Buffer.byteLength(image.body), platform: { os: 'PLACEHOLDER', architecture: 'amd64' } }],
    }).replace('"PLACEHOLDER"', '"linux\\u0000"');
    const res = await putManifest(base, name, 'index-nul', text, OCI_INDEX);
    assert.equal(res.status, 400, await res.clone().text());
    assert.equal(await errorCode(res), 'MANIFEST_INVALID');
  });
});

describe('query parameters PostgreSQL refuses', () => {
  let name: string;
  let digest: string;
  before(async () => {
    name = repo('queries');
    digest = (await pushImage(base, name, 'v1')).digest;
  });

  const lastUrls = () => [
    `${base}/v2/_catalog?last=%00`,
    `${base}/v2/_catalog?n=5&last=a%00b`,
    `${base}/v2/${name}/tags/list?last=%00`,
    `${base}/v2/_wharf/repositories?last=%00`,
    `${base}/v2/hostile/_wharf/repositories?last=%00`,
    `${base}/v2/${name}/_wharf/manifests?last=%00`,
    `${base}/v2/${name}/_wharf/tags?last=%00`,
  ];

  it('?last= with a NUL: a 400 in OCI error JSON on every listing, never a 500', async () => {
    for (const url of lastUrls()) {
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(url, { method });
        if (method === 'HEAD' && res.status === 405) continue;
        assert.equal(res.status, 400, `${method} ${url}: ${res.status}`);
        if (method === 'GET') assert.ok(['NAME_INVALID', 'TAG_INVALID', 'DIGEST_INVALID'].includes((await errorCode(res))!), url);
      }
    }
  });

  it('?artifactType= with a NUL: the filter matches nothing (referrers and _wharf/manifests)', async () => {
    const referrers = await fetch(`${base}/v2/${name}/referrers/${digest}?artifactType=%00`);
    assert.equal(referrers.status, 200);
    assert.deepEqual(((await referrers.json()) as { manifests: unknown[] }).manifests, []);
    const listing = await fetch(`${base}/v2/${name}/_wharf/manifests?artifactType=a%00`);
    assert.equal(listing.status, 200);
    assert.deepEqual(((await listing.json()) as { manifests: unknown[] }).manifests, []);
  });

  it('?annotation= with a NUL in the key or value: the filter matches nothing', async () => {
    for (const q of ['annotation=k%00=v', 'annotation=k=v%00']) {
      const res = await fetch(`${base}/v2/${name}/_wharf/manifests?${q}`);
      assert.equal(res.status, 200, q);
      assert.deepEqual(((await res.json()) as { manifests: unknown[] }).manifests, [], q);
    }
  });

  it('a NUL in an upload parameter (?digest=, ?mount=, ?from=): a 400, not a 500', async () => {
    const mount = await fetch(`${base}/v2/${name}/blobs/uploads/?mount=sha256:%00&from=${name}`, { method: 'POST' });
    assert.ok(mount.status === 400 || mount.status === 202, `mount: ${mount.status}`);
    const from = await fetch(`${base}/v2/${name}/blobs/uploads/?mount=${digest}&from=a%00`, { method: 'POST' });
    assert.equal(from.status, 202);
    const put = await fetch(`${base}/v2/${name}/blobs/uploads/?digest=sha256:%00`, { method: 'POST', body: 'x' });
    assert.equal(put.status, 400);
  });
});

describe('manifests with more references than one statement can bind', () => {
  it('an image manifest with 22,000 layer descriptors is stored (201), and answers with its exact bytes', async () => {
    const name = repo('many-layers');
    const config = blobOf(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
    const layer = randomBlob(10);
    await pushBlob(base, name, config);
    await pushBlob(base, name, layer);
    // One layer repeated: legal, and the cheapest way past 65,535 / 3 bind parameters.
    const text = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: Array.from({ length: 22_000 }, (_, i) => ({ mediaType: OCI_LAYER, digest: layer.digest, size: layer.size, annotations: { i: String(i) } })),
    });
    const res = await putManifest(base, name, 'big', text, OCI_MANIFEST);
    assert.equal(res.status, 201, await res.text());
    const got = await fetch(`${base}/v2/${name}/manifests/big`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(got.status, 200);
    assert.equal(await got.text(), text);
  });

  it('the gc queue and lock helpers take more digests than the protocol has bind parameters', async () => {
    const db = wharf.database.db;
    const digests = Array.from({ length: 70_000 }, () => `sha256:${randomBytes(32).toString('hex')}`);
    const repositoryId = await repositories.ensureRepository(db, repo('bulk'));
    await gc.enqueueBlobReviews(db, digests, 86_400, 'test');
    await gc.postponeBlobReviews(db, digests, 86_400);
    await gc.enqueueManifestReviews(db, repositoryId, digests, 86_400, 'test');
    await db.transaction().execute(async (trx) => {
      assert.equal((await blobs.lockLinkedDigests(trx, repositoryId, digests)).size, 0);
      assert.equal((await manifests.lockManifestDigests(trx, repositoryId, digests)).size, 0);
    });
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from gc_blob_reviews where digest = any(${digests}::text[])`.execute(db);
    assert.equal(rows[0]!.n, digests.length);
    await sql`delete from gc_blob_reviews where digest = any(${digests}::text[])`.execute(db);
    await sql`delete from gc_manifest_reviews where repository_id = ${repositoryId}`.execute(db);
  });

  it('a distinct-digest manifest near the limit: references batched, listing and referrers answer', async () => {
    const name = repo('wide-index');
    const image = await pushImage(base, name, 'child');
    const size = Buffer.byteLength(image.body);
    const text = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: Array.from({ length: 22_000 }, (_, i) => ({ mediaType: OCI_MANIFEST, digest: image.digest, size, annotations: { i: String(i) } })),
    });
    const res = await putManifest(base, name, 'wide', text, OCI_INDEX);
    assert.equal(res.status, 201, await res.text());
    const listing = await fetch(`${base}/v2/${name}/manifests/${sha256(text)}`, { method: 'HEAD' });
    assert.equal(listing.status, 200);
  });
});
