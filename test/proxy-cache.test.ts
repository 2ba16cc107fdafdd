/**
 * The pull-through cache over HTTP, against CNCF Distribution 2.8.2 as upstream (behind a counting
 * proxy the tests stop and cut) and a second Wharf with token auth: manifests by tag and digest,
 * ttl and revalidation, stale serving, blobs, DENIED pushes, referrers, events, metrics.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeAuthFixture, startCredentialProxy, type AuthFixture } from './helpers/auth.js';
import { startCountingProxy, type CountingProxy } from './helpers/counting-proxy.js';
import { DISTRIBUTION, startDistribution, type Distribution } from './helpers/distribution.js';
import { OCI_MANIFEST, errorCode, randomBlob, sha256 } from './helpers/oci.js';
import { buildArtifact, buildImage } from './helpers/oci-layout.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { pushContent, putManifestBytes, rawImage } from './helpers/upstream-push.js';
import { eventually } from './helpers/wait.js';

const skip = existsSync(DISTRIBUTION) ? false : `${DISTRIBUTION} not installed`;
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json';

async function getManifest(base: string, name: string, ref: string, method = 'GET'): Promise<Response> {
  return fetch(`${base}/v2/${name}/manifests/${ref}`, { method, headers: { accept: ACCEPT } });
}

async function digestOfManifest(base: string, name: string, ref: string): Promise<string> {
  const res = await getManifest(base, name, ref);
  assert.equal(res.status, 200, `${name}:${ref}: ${res.status} ${await res.clone().text()}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.equal(res.headers.get('docker-content-digest'), sha256(bytes));
  return sha256(bytes);
}

async function blobDigest(base: string, name: string, digest: string): Promise<string> {
  const res = await fetch(`${base}/v2/${name}/blobs/${digest}`);
  assert.equal(res.status, 200, `${name}@${digest}: ${res.status}`);
  return `sha256:${createHash('sha256')
    .update(Buffer.from(await res.arrayBuffer()))
    .digest('hex')}`;
}

async function metric(base: string, line: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(line));
  return found ? Number(found.slice(line.length).trim()) : 0;
}

describe('pull-through cache in front of Distribution 2.8.2', { skip }, () => {
  let upstream: Distribution;
  let counting: CountingProxy;
  let wharf: TestWharf;
  let tmp: string;
  const image = rawImage([randomBlob(5000), randomBlob(200_000)]);
  const official = rawImage([randomBlob(3000)]);
  const deep = rawImage([randomBlob(4000)]);

  before(async () => {
    upstream = await startDistribution();
    counting = await startCountingProxy(upstream.url);
    tmp = await mkdtemp(join(tmpdir(), 'wharf-proxy-'));
    await pushContent(upstream.url, 'team/app', image, 'v1');
    await pushContent(upstream.url, 'library/alpine', official, '3');
    await pushContent(upstream.url, 'org/team/deep', deep, 'latest');
    wharf = await startTestWharf({
      'proxy.upstreams': [
        { name: 'dist', url: counting.url, prefix: 'dist', library: true, ttl: '1h' },
        { name: 'fast', url: counting.url, prefix: 'fast', ttl: '1s' },
        { name: 'forgetful', url: counting.url, prefix: 'forgetful', ttl: '1s', onnotfound: 'forget' },
        { name: 'sub', url: counting.url, prefix: 'mirrors/sub', path: 'org/team', ttl: '1h' },
      ],
    });
  });
  after(async () => {
    await wharf?.close();
    await counting?.close();
    await upstream?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('pulls a manifest by tag and its blobs through the cache, then serves them without asking the upstream', async () => {
    counting.reset();
    assert.equal(await digestOfManifest(wharf.base, 'dist/team/app', 'v1'), image.digest);
    for (const blob of image.blobs) assert.equal(await blobDigest(wharf.base, 'dist/team/app', blob.digest), blob.digest);
    const asked = counting.requests.length;
    assert.ok(asked >= 1 + image.blobs.length, counting.requests.join('\n'));
    assert.equal(await digestOfManifest(wharf.base, 'dist/team/app', 'v1'), image.digest);
    assert.equal(await digestOfManifest(wharf.base, 'dist/team/app', image.digest), image.digest);
    for (const blob of image.blobs) assert.equal(await blobDigest(wharf.base, 'dist/team/app', blob.digest), blob.digest);
    const head = await fetch(`${wharf.base}/v2/dist/team/app/blobs/${image.layers[1]!.digest}`, { method: 'HEAD' });
    assert.equal(head.headers.get('content-length'), String(image.layers[1]!.size));
    assert.equal(counting.requests.length, asked, `no upstream request for cached content:\n${counting.requests.slice(asked).join('\n')}`);
    assert.ok((await metric(wharf.base, 'wharf_proxy_requests_total{upstream="dist",kind="manifest",result="hit"}')) >= 2);
    assert.ok((await metric(wharf.base, 'wharf_proxy_upstream_bytes_total{upstream="dist"}')) >= image.layers[1]!.size);
  });

  it('expands single-segment names to library/<x> and maps a prefix to an upstream sub-path', async () => {
    assert.equal(await digestOfManifest(wharf.base, 'dist/alpine', '3'), official.digest);
    assert.equal(await blobDigest(wharf.base, 'dist/alpine', official.layers[0]!.digest), official.layers[0]!.digest);
    assert.equal(await digestOfManifest(wharf.base, 'mirrors/sub/deep', 'latest'), deep.digest);
    assert.equal((await getManifest(wharf.base, 'dist/team/app', 'nope')).status, 404);
    assert.equal((await getManifest(wharf.base, 'dist', 'v1')).status, 404);
  });

  it('refuses pushes into a proxied prefix with DENIED, and leaves nothing behind', async () => {
    const post = await fetch(`${wharf.base}/v2/dist/team/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 403);
    assert.equal(await errorCode(post), 'DENIED');
    const blob = randomBlob(10);
    const mono = await fetch(`${wharf.base}/v2/dist/new/blobs/uploads/?digest=${blob.digest}`, { method: 'POST', body: blob.bytes });
    assert.equal(mono.status, 403);
    const mount = await fetch(`${wharf.base}/v2/dist/other/blobs/uploads/?mount=${image.layers[0]!.digest}&from=dist/team/app`, { method: 'POST' });
    assert.equal(mount.status, 403);
    const put = await fetch(`${wharf.base}/v2/dist/team/app/manifests/v9`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: new Uint8Array(image.bytes) });
    assert.equal(put.status, 403);
    assert.equal(await errorCode(put), 'DENIED');
    assert.equal((await getManifest(wharf.base, 'dist/team/app', 'v9')).status, 404);
    // Outside the prefix, pushes work as ever.
    await pushContent(wharf.base, 'local/app', image, 'v1');
  });

  it('shows cached content in tags/list, _catalog and the _wharf listings; its push events name the upstream', async () => {
    const tags = (await (await fetch(`${wharf.base}/v2/dist/team/app/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['v1']);
    await eventually(async () => {
      const catalog = (await (await fetch(`${wharf.base}/v2/_catalog`)).json()) as { repositories: string[] };
      assert.ok(catalog.repositories.includes('dist/team/app'), JSON.stringify(catalog));
      const listing = (await (await fetch(`${wharf.base}/v2/dist/team/app/_wharf/manifests`)).json()) as { manifests: Array<{ digest: string }> };
      assert.ok(
        listing.manifests.some((m) => m.digest === image.digest),
        JSON.stringify(listing),
      );
    });
    const rows = await wharf.database.db.selectFrom('outbox').select(['subject', 'payload']).execute();
    const pushes = rows
      .map((r) => r.payload as { action: string; actor: { name?: string }; target: { repository: string; tag?: string } })
      .filter((e) => e.target.repository === 'dist/team/app' && e.action === 'push');
    assert.ok(pushes.length >= 1 + image.blobs.length);
    assert.ok(
      pushes.every((e) => e.actor.name === 'dist'),
      JSON.stringify(pushes.map((e) => e.actor)),
    );
  });

  it('serves the old digest within the ttl and the new one after it, when the tag moves upstream', async () => {
    const first = rawImage([randomBlob(1000)]);
    const second = rawImage([randomBlob(1001)]);
    await pushContent(upstream.url, 'team/moving', first, 'stable');
    assert.equal(await digestOfManifest(wharf.base, 'dist/team/moving', 'stable'), first.digest);
    assert.equal(await digestOfManifest(wharf.base, 'fast/team/moving', 'stable'), first.digest);
    await pushContent(upstream.url, 'team/moving', second, 'stable');
    counting.reset();
    // ttl 1h: the cached tag is trusted, no upstream request at all.
    assert.equal(await digestOfManifest(wharf.base, 'dist/team/moving', 'stable'), first.digest);
    assert.equal(counting.count('/team/moving/'), 0);
    // ttl 1s: once it passes, one HEAD finds the move and the new manifest is fetched by digest.
    await eventually(async () => assert.equal(await digestOfManifest(wharf.base, 'fast/team/moving', 'stable'), second.digest), 30_000, 200);
    assert.ok(counting.count('/v2/team/moving/manifests/stable', 'HEAD') >= 1);
    assert.equal(counting.count('/v2/team/moving/manifests/stable', 'GET'), 0, counting.requests.join('\n'));
    assert.ok((await metric(wharf.base, 'wharf_proxy_requests_total{upstream="fast",kind="manifest",result="revalidated"}')) >= 1);
  });

  it('serves cached content by tag and digest while the upstream is down, counting stale serves', async () => {
    await digestOfManifest(wharf.base, 'fast/team/app', 'v1');
    for (const blob of image.blobs) await blobDigest(wharf.base, 'fast/team/app', blob.digest);
    await counting.stop();
    try {
      const staleBefore = await metric(wharf.base, 'wharf_proxy_requests_total{upstream="fast",kind="manifest",result="stale"}');
      // Past the 1 s ttl every tag request revalidates, fails, and serves the cached copy.
      await eventually(
        async () => {
          assert.equal(await digestOfManifest(wharf.base, 'fast/team/app', 'v1'), image.digest);
          assert.ok((await metric(wharf.base, 'wharf_proxy_requests_total{upstream="fast",kind="manifest",result="stale"}')) > staleBefore);
        },
        30_000,
        200,
      );
      assert.equal(await digestOfManifest(wharf.base, 'fast/team/app', image.digest), image.digest);
      for (const blob of image.blobs) assert.equal(await blobDigest(wharf.base, 'fast/team/app', blob.digest), blob.digest);
      assert.ok((await metric(wharf.base, 'wharf_proxy_upstream_errors_total{upstream="fast",reason="unavailable"}')) >= 1);
      // What was never cached cannot be served: 503 naming the upstream.
      const cold = await getManifest(wharf.base, 'fast/team/never', 'v1');
      assert.equal(cold.status, 503);
      assert.match(await cold.text(), /upstream fast/);
    } finally {
      await counting.start();
    }
  });

  it('keeps serving a tag the upstream deleted (onnotfound serve), or forgets it (onnotfound forget)', async () => {
    const gone = rawImage([randomBlob(700)]);
    await pushContent(upstream.url, 'team/gone', gone, 'old');
    assert.equal(await digestOfManifest(wharf.base, 'fast/team/gone', 'old'), gone.digest);
    assert.equal(await digestOfManifest(wharf.base, 'forgetful/team/gone', 'old'), gone.digest);
    const del = await fetch(`${upstream.url}/v2/team/gone/manifests/${gone.digest}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    await eventually(async () => assert.equal((await getManifest(wharf.base, 'forgetful/team/gone', 'old')).status, 404), 30_000, 200);
    assert.equal(await digestOfManifest(wharf.base, 'fast/team/gone', 'old'), gone.digest);
    // Cached by digest: immutable, still there.
    assert.equal(await digestOfManifest(wharf.base, 'forgetful/team/gone', gone.digest), gone.digest);
  });

  it('answers an upstream death mid-blob with an error, keeps nothing half-written, and fills cleanly on retry', async () => {
    const big = rawImage([randomBlob(8 * 1024 * 1024)]);
    await pushContent(upstream.url, 'team/big', big, 'v1');
    await digestOfManifest(wharf.base, 'dist/team/big', 'v1');
    const layer = big.layers[0]!;
    const cut = counting.cutNext(`/blobs/${layer.digest}`, 3 * 1024 * 1024);
    const res = await fetch(`${wharf.base}/v2/dist/team/big/blobs/${layer.digest}`);
    const body = res.status === 200 ? res.arrayBuffer() : Promise.reject(new Error(`status ${res.status}`));
    await assert.rejects(body);
    await cut;
    await eventually(async () => {
      const fills = await wharf.database.db.selectFrom('proxy_blob_fills').selectAll().execute();
      assert.equal(fills.length, 0);
    });
    assert.equal(await wharf.database.db.selectFrom('blobs').select('digest').where('digest', '=', layer.digest).executeTakeFirst(), undefined);
    assert.equal(await blobDigest(wharf.base, 'dist/team/big', layer.digest), layer.digest);
    assert.equal(await blobDigest(wharf.base, 'dist/team/big', layer.digest), layer.digest);
  });

  it('serves a range of a blob that is not cached yet', async () => {
    const ranged = rawImage([randomBlob(100_000)]);
    await pushContent(upstream.url, 'team/ranged', ranged, 'v1');
    await digestOfManifest(wharf.base, 'dist/team/ranged', 'v1');
    const layer = ranged.layers[0]!;
    const res = await fetch(`${wharf.base}/v2/dist/team/ranged/blobs/${layer.digest}`, { headers: { range: 'bytes=10-19' } });
    assert.equal(res.status, 206);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), layer.bytes.subarray(10, 20));
  });

  it('brings referrers in through the tag schema when the upstream has no referrers API', async () => {
    const subject = buildImage({ layers: 1 });
    const sbom = buildArtifact({ subject: subject.descriptor });
    await pushContent(upstream.url, 'team/signed', subject, 'v1');
    await pushContent(upstream.url, 'team/signed', sbom);
    const fallback = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [sbom.descriptor] }));
    await putManifestBytes(upstream.url, 'team/signed', `sha256-${subject.digest.slice(7)}`, 'application/vnd.oci.image.index.v1+json', fallback);
    const res = await fetch(`${wharf.base}/v2/dist/team/signed/referrers/${subject.digest}`);
    assert.equal(res.status, 200);
    const index = (await res.json()) as { manifests: Array<{ digest: string; artifactType?: string }> };
    assert.deepEqual(
      index.manifests.map((m) => [m.digest, m.artifactType]),
      [[sbom.digest, sbom.artifactType]],
    );
    assert.equal(await digestOfManifest(wharf.base, 'dist/team/signed', sbom.digest), sbom.digest);
  });
});

describe('pull-through cache in front of a Wharf with token auth', () => {
  let fx: AuthFixture;
  let upstream: TestWharf;
  let wharf: TestWharf;
  let tmp: string;
  const image = buildImage({ layers: 2 });
  const sbom = buildArtifact({ subject: image.descriptor });

  before(async () => {
    fx = await makeAuthFixture({ cache: 'cache-secret' });
    upstream = await startTestWharf({ 'auth.mode': 'token', 'auth.htpasswd.path': fx.htpasswdPath, 'auth.token.signingkey': fx.signingKeyPath });
    const pusher = await startCredentialProxy(upstream.url, '', 'bearer', { user: 'cache', password: 'cache-secret' });
    try {
      await pushContent(pusher.url, 'org/svc', image, 'v1');
      await pushContent(pusher.url, 'org/svc', sbom);
    } finally {
      await pusher.close();
    }
    tmp = await mkdtemp(join(tmpdir(), 'wharf-proxy-'));
    await writeFile(join(tmp, 'password'), 'cache-secret\n');
    wharf = await startTestWharf({
      'proxy.upstreams': [{ name: 'upwharf', url: upstream.url, prefix: 'up', username: 'cache', passwordfile: join(tmp, 'password') }],
    });
  });
  after(async () => {
    await wharf?.close();
    await upstream?.close();
    await fx?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('pulls through the Docker token flow', async () => {
    assert.equal(await digestOfManifest(wharf.base, 'up/org/svc', 'v1'), image.digest);
    for (const blob of image.blobs) assert.equal(await blobDigest(wharf.base, 'up/org/svc', blob.digest), blob.digest);
  });

  it('brings referrers in from the upstream referrers API', async () => {
    const res = await fetch(`${wharf.base}/v2/up/org/svc/referrers/${image.digest}`);
    const index = (await res.json()) as { manifests: Array<{ digest: string }> };
    assert.deepEqual(
      index.manifests.map((m) => m.digest),
      [sbom.digest],
    );
    assert.equal(await blobDigest(wharf.base, 'up/org/svc', sbom.layers[0]!.digest), sbom.layers[0]!.digest);
  });
});
