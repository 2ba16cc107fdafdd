import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, blobOf, errorCode, pushBlob, pushImage, putManifest, randomBlob, sha256 } from './helpers/oci.js';
import { eventually } from './helpers/wait.js';

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

let wharf: TestWharf;
let base: string;

before(async () => {
  wharf = await startTestWharf();
  base = wharf.base;
});
after(async () => wharf?.close());

describe('manifest types', () => {
  it('stores a Docker schema 2 manifest and a manifest list with their media types', async () => {
    const config = blobOf('{"architecture":"amd64","os":"linux"}');
    const layer = randomBlob(500);
    await pushBlob(base, 'docker/app', config);
    await pushBlob(base, 'docker/app', layer);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: config.digest, size: config.size },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: layer.digest, size: layer.size }],
    });
    const put = await putManifest(base, 'docker/app', 'amd64', manifest, DOCKER_MANIFEST);
    assert.equal(put.status, 201);
    const list = JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_LIST,
      manifests: [{ mediaType: DOCKER_MANIFEST, digest: sha256(manifest), size: manifest.length, platform: { architecture: 'amd64', os: 'linux' } }],
    });
    assert.equal((await putManifest(base, 'docker/app', 'latest', list, DOCKER_LIST)).status, 201);
    const get = await fetch(`${base}/v2/docker/app/manifests/latest`);
    assert.equal(get.headers.get('content-type'), DOCKER_LIST);
    assert.equal(await get.text(), list);
  });

  it('stores an OCI index over two platform manifests', async () => {
    const amd = await pushImage(base, 'multi/app', 'amd64');
    const arm = await pushImage(base, 'multi/app', 'arm64');
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: amd.digest, size: amd.body.length, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: OCI_MANIFEST, digest: arm.digest, size: arm.body.length, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    });
    const put = await putManifest(base, 'multi/app', 'latest', index, OCI_INDEX);
    assert.equal(put.status, 201);
    assert.equal(put.headers.get('docker-content-digest'), sha256(index));
    const head = await fetch(`${base}/v2/multi/app/manifests/latest`, { method: 'HEAD' });
    assert.equal(head.headers.get('content-type'), OCI_INDEX);
  });

  it('accepts a manifest whose body omits mediaType, taking the Content-Type', async () => {
    const image = await pushImage(base, 'nomt/app', 'base');
    const parsed = JSON.parse(image.body) as Record<string, unknown>;
    delete parsed.mediaType;
    const body = JSON.stringify(parsed);
    const put = await putManifest(base, 'nomt/app', 'v2', body, OCI_MANIFEST);
    assert.equal(put.status, 201);
    const get = await fetch(`${base}/v2/nomt/app/manifests/v2`);
    assert.equal(get.headers.get('content-type'), OCI_MANIFEST);
  });

  it('PUT by digest stores an untagged manifest', async () => {
    const image = await pushImage(base, 'bydigest/app', 'seed');
    const other = JSON.stringify({ ...JSON.parse(image.body), annotations: { 'org.example': 'x' } });
    const digest = sha256(other);
    const put = await putManifest(base, 'bydigest/app', digest, other, OCI_MANIFEST);
    assert.equal(put.status, 201);
    assert.equal(put.headers.get('location'), `/v2/bydigest/app/manifests/${digest}`);
    assert.equal((await fetch(`${base}/v2/bydigest/app/manifests/${digest}`)).status, 200);
  });
});

describe('artifacts and referrers', () => {
  it('accepts an artifact with an empty config and a subject, and lists it as a referrer', async () => {
    const image = await pushImage(base, 'art/app', 'v1');
    const empty = blobOf('{}');
    const sbom = blobOf('{"sbom":true}');
    await pushBlob(base, 'art/app', empty);
    await pushBlob(base, 'art/app', sbom);
    const artifact = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.sbom.v1',
      config: { mediaType: OCI_EMPTY, digest: empty.digest, size: 2 },
      layers: [{ mediaType: 'application/json', digest: sbom.digest, size: sbom.size }],
      subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.body.length },
      annotations: { 'org.opencontainers.image.created': '2026-11-23T00:00:00Z' },
    });
    const put = await putManifest(base, 'art/app', sha256(artifact), artifact, OCI_MANIFEST);
    assert.equal(put.status, 201);
    assert.equal(put.headers.get('oci-subject'), image.digest);

    const signature = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.example.signature.config.v1+json', digest: empty.digest, size: 2 },
      layers: [{ mediaType: 'application/json', digest: sbom.digest, size: sbom.size }],
      subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.body.length },
    });
    assert.equal((await putManifest(base, 'art/app', sha256(signature), signature, OCI_MANIFEST)).status, 201);

    const all = await fetch(`${base}/v2/art/app/referrers/${image.digest}`);
    assert.equal(all.status, 200);
    assert.equal(all.headers.get('content-type'), OCI_INDEX);
    const index = (await all.json()) as { schemaVersion: number; mediaType: string; manifests: Array<Record<string, unknown>> };
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.manifests.length, 2);
    const sbomEntry = index.manifests.find((m) => m.digest === sha256(artifact))!;
    assert.equal(sbomEntry.artifactType, 'application/vnd.example.sbom.v1');
    assert.deepEqual(sbomEntry.annotations, { 'org.opencontainers.image.created': '2026-11-23T00:00:00Z' });
    assert.equal(sbomEntry.size, Buffer.byteLength(artifact));
    const sigEntry = index.manifests.find((m) => m.digest === sha256(signature))!;
    assert.equal(sigEntry.artifactType, 'application/vnd.example.signature.config.v1+json', 'falls back to the config media type');

    const filtered = await fetch(`${base}/v2/art/app/referrers/${image.digest}?artifactType=application/vnd.example.sbom.v1`);
    assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
    const filteredIndex = (await filtered.json()) as { manifests: unknown[] };
    assert.equal(filteredIndex.manifests.length, 1);
  });

  it('answers an empty index for a digest nobody refers to', async () => {
    const res = await fetch(`${base}/v2/art/app/referrers/${sha256('nothing')}`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
  });

  it('accepts a manifest whose subject does not exist yet', async () => {
    const empty = blobOf('{}');
    await pushBlob(base, 'art/early', empty);
    const absent = sha256('not pushed yet');
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.early',
      config: { mediaType: OCI_EMPTY, digest: empty.digest, size: 2 },
      layers: [{ mediaType: OCI_EMPTY, digest: empty.digest, size: 2 }],
      subject: { mediaType: OCI_MANIFEST, digest: absent, size: 10 },
    });
    const put = await putManifest(base, 'art/early', sha256(body), body, OCI_MANIFEST);
    assert.equal(put.status, 201);
    const index = (await (await fetch(`${base}/v2/art/early/referrers/${absent}`)).json()) as { manifests: unknown[] };
    assert.equal(index.manifests.length, 1);
  });
});

describe('foreign layers', () => {
  it('accepts a non-distributable layer with an allowed URL without its blob', async () => {
    const config = blobOf('{"os":"windows"}');
    await pushBlob(base, 'foreign/win', config);
    const body = (url: string) =>
      JSON.stringify({
        schemaVersion: 2,
        mediaType: DOCKER_MANIFEST,
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: config.digest, size: config.size },
        layers: [{ mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', digest: sha256(url), size: 1234, urls: [url] }],
      });
    const ok = await putManifest(base, 'foreign/win', 'ok', body('https://mcr.example/layer.tar.gz'), DOCKER_MANIFEST);
    assert.equal(ok.status, 201);
    const bad = await putManifest(base, 'foreign/win', 'bad', body('ftp://elsewhere/layer'), DOCKER_MANIFEST);
    assert.equal(bad.status, 400);
    assert.equal(await errorCode(bad), 'MANIFEST_INVALID');
  });
});

describe('tags', () => {
  it('lists tags in lexical order with n, last and a Link header', async () => {
    const image = await pushImage(base, 'tags/app', 'seed');
    const names = ['b', 'a', 'c', 'd', 'e'];
    for (const t of names) assert.equal((await putManifest(base, 'tags/app', t, image.body, OCI_MANIFEST)).status, 201);
    const all = await fetch(`${base}/v2/tags/app/tags/list`);
    assert.deepEqual(await all.json(), { name: 'tags/app', tags: ['a', 'b', 'c', 'd', 'e', 'seed'] });
    assert.equal(all.headers.get('link'), null);

    const first = await fetch(`${base}/v2/tags/app/tags/list?n=2`);
    assert.deepEqual(await first.json(), { name: 'tags/app', tags: ['a', 'b'] });
    const link = first.headers.get('link')!;
    assert.match(link, /^<\/v2\/tags\/app\/tags\/list\?n=2&last=b>; rel="next"$/);
    const second = await fetch(`${base}${/<([^>]+)>/.exec(link)![1]}`);
    assert.deepEqual(await second.json(), { name: 'tags/app', tags: ['c', 'd'] });
    const after = await fetch(`${base}/v2/tags/app/tags/list?last=d`);
    assert.deepEqual(((await after.json()) as { tags: string[] }).tags, ['e', 'seed']);
    const none = await fetch(`${base}/v2/tags/app/tags/list?n=0`);
    assert.deepEqual(((await none.json()) as { tags: string[] }).tags, []);
  });

  it('answers tags/list byte for byte as JSON.stringify would, and shows a tag at once after its PUT', async () => {
    const image = await pushImage(base, 'tags/exact', 'v1');
    const text = async (query: string) => {
      const res = await fetch(`${base}/v2/tags/exact/tags/list${query}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
      return { body: await res.text(), link: res.headers.get('link') };
    };
    assert.deepEqual(await text(''), { body: JSON.stringify({ name: 'tags/exact', tags: ['v1'] }), link: null });
    for (const tag of ['v2', 'A_1', 'v1.0-rc.1']) {
      assert.equal((await putManifest(base, 'tags/exact', tag, image.body, OCI_MANIFEST)).status, 201);
      assert.ok(JSON.parse((await text('')).body).tags.includes(tag), `${tag} listed right after its PUT`);
    }
    const all = ['A_1', 'v1', 'v1.0-rc.1', 'v2'];
    assert.deepEqual(await text(''), { body: JSON.stringify({ name: 'tags/exact', tags: all }), link: null });
    assert.deepEqual(await text('?n=1'), { body: JSON.stringify({ name: 'tags/exact', tags: ['A_1'] }), link: '</v2/tags/exact/tags/list?n=1&last=A_1>; rel="next"' });
    assert.deepEqual(await text('?n=3&last=A_1'), { body: JSON.stringify({ name: 'tags/exact', tags: all.slice(1) }), link: null });
    assert.deepEqual(await text('?n=2&last=v1'), { body: JSON.stringify({ name: 'tags/exact', tags: ['v1.0-rc.1', 'v2'] }), link: null });
    assert.deepEqual(await text('?n=4'), { body: JSON.stringify({ name: 'tags/exact', tags: all }), link: null });
    assert.deepEqual(await text('?last=v2'), { body: JSON.stringify({ name: 'tags/exact', tags: [] }), link: null });
  });

  it('moving a tag keeps the old manifest by digest and records history', async () => {
    const one = await pushImage(base, 'tags/move', 'latest');
    const two = await pushImage(base, 'tags/move', 'latest');
    const get = await fetch(`${base}/v2/tags/move/manifests/latest`);
    assert.equal(get.headers.get('docker-content-digest'), two.digest);
    assert.equal((await fetch(`${base}/v2/tags/move/manifests/${one.digest}`)).status, 200);
    const history = await wharf.database.db.selectFrom('tag_history').select('digest').where('tag', '=', 'latest').orderBy('id').execute();
    assert.deepEqual(history.map((h) => h.digest).slice(-2), [one.digest, two.digest]);
  });
});

describe('deletion', () => {
  it('DELETE by tag removes only the tag and keeps the manifest', async () => {
    const image = await pushImage(base, 'del/tag', 'v1');
    await putManifest(base, 'del/tag', 'v2', image.body, OCI_MANIFEST);
    const del = await fetch(`${base}/v2/del/tag/manifests/v1`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    assert.equal((await fetch(`${base}/v2/del/tag/manifests/v1`)).status, 404);
    assert.equal((await fetch(`${base}/v2/del/tag/manifests/${image.digest}`)).status, 200);
    assert.equal((await fetch(`${base}/v2/del/tag/manifests/v2`)).status, 200);
    const list = (await (await fetch(`${base}/v2/del/tag/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(list.tags, ['v2']);
  });

  it('DELETE by digest removes the manifest and every tag on it', async () => {
    const image = await pushImage(base, 'del/digest', 'v1');
    await putManifest(base, 'del/digest', 'v2', image.body, OCI_MANIFEST);
    const del = await fetch(`${base}/v2/del/digest/manifests/${image.digest}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    for (const ref of ['v1', 'v2', image.digest]) {
      const res = await fetch(`${base}/v2/del/digest/manifests/${ref}`);
      assert.equal(res.status, 404);
      assert.equal(await errorCode(res), 'MANIFEST_UNKNOWN');
    }
    const list = (await (await fetch(`${base}/v2/del/digest/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(list.tags, []);
    const again = await fetch(`${base}/v2/del/digest/manifests/${image.digest}`, { method: 'DELETE' });
    assert.equal(again.status, 404);
  });
});

describe('catalog', () => {
  it('lists repositories that hold a manifest, paginated, leaving out ones with only blobs or nothing left', async () => {
    await pushBlob(base, 'zz/blobonly', randomBlob(10));
    const emptied = await pushImage(base, 'zz/emptied', 'v1');
    await fetch(`${base}/v2/zz/emptied/manifests/${emptied.digest}`, { method: 'DELETE' });
    await pushImage(base, 'zz/one', 'v1');
    await pushImage(base, 'zz/two', 'v1');
    // The catalog is a read model: it follows the writes through the event pipeline.
    const all = await eventually(async () => {
      const listed = (await (await fetch(`${base}/v2/_catalog`)).json()) as { repositories: string[] };
      // Messages on every assert in a polled check: without one, node:assert reads the source to build it, slowly.
      assert.ok(listed.repositories.includes('zz/one'), 'zz/one listed');
      assert.ok(listed.repositories.includes('zz/two'), 'zz/two listed');
      assert.ok(!listed.repositories.includes('zz/emptied'), 'zz/emptied gone');
      return listed;
    });
    assert.ok(!all.repositories.includes('zz/blobonly'));
    assert.deepEqual(all.repositories, [...all.repositories].sort());

    const page = await fetch(`${base}/v2/_catalog?n=1&last=zz/blobonly`);
    assert.deepEqual(await page.json(), { repositories: ['zz/one'] });
    assert.match(page.headers.get('link')!, /^<\/v2\/_catalog\?n=1&last=zz%2Fone>; rel="next"$/);
    const rest = await fetch(`${base}/v2/_catalog?n=1&last=zz/one`);
    assert.deepEqual(await rest.json(), { repositories: ['zz/two'] });
  });
});

describe('events', () => {
  it('commits an outbox row with each change and relays it to the bus once', async () => {
    const seen: Array<{ subject: string; action: string; tag?: string; repository: string; count?: number }> = [];
    const unsubscribe = wharf.bus.subscribe('wharf.events.>', (subject, event) => {
      if (event.target.repository === 'events/app') seen.push({ subject, action: event.action, tag: event.target.tag, repository: event.target.repository, count: event.count });
    });
    try {
      const image = await pushImage(base, 'events/app', 'v1');
      // Two pulls: one event with count 2 when they fall in one events.pullwindow, else two of count 1.
      await fetch(`${base}/v2/events/app/manifests/v1`);
      await fetch(`${base}/v2/events/app/manifests/v1`);
      await fetch(`${base}/v2/events/app/manifests/v1`, { method: 'DELETE' });
      await fetch(`${base}/v2/events/app/manifests/${image.digest}`, { method: 'DELETE' });
      await eventually(() => {
        const count = (subject: string) => seen.filter((s) => s.subject === subject).length;
        assert.equal(count('wharf.events.blob.push'), 2);
        assert.equal(count('wharf.events.manifest.push'), 1);
        const pulls = seen.filter((s) => s.subject === 'wharf.events.manifest.pull');
        assert.equal(
          pulls.reduce((sum, p) => sum + p.count!, 0),
          2,
          'the pull events count both pulls',
        );
        assert.equal(count('wharf.events.tag.delete'), 1);
        assert.equal(count('wharf.events.manifest.delete'), 1);
      });
      await eventually(async () => {
        const unpublished = await wharf.database.db.selectFrom('outbox').select('id').where('published_at', 'is', null).execute();
        assert.equal(unpublished.length, 0);
      });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(seen.filter((s) => s.action !== 'pull').length, 5, 'each event arrives once');
    } finally {
      unsubscribe();
    }
  });

  it('carries the Distribution event shape', async () => {
    let captured: import('../libs/events/index.js').RegistryEvent | undefined;
    const unsubscribe = wharf.bus.subscribe('wharf.events.manifest.push', (_s, event) => {
      if (event.target.repository === 'events/shape') captured = event;
    });
    try {
      const image = await pushImage(base, 'events/shape', 'v1');
      await eventually(() => assert.ok(captured, 'push event seen'));
      assert.ok(captured);
      assert.equal(captured.action, 'push');
      assert.equal(captured.target.digest, image.digest);
      assert.equal(captured.target.tag, 'v1');
      assert.equal(captured.target.mediaType, OCI_MANIFEST);
      assert.equal(captured.target.size, Buffer.byteLength(image.body));
      assert.equal(captured.target.length, captured.target.size);
      assert.match(captured.target.url!, /\/v2\/events\/shape\/manifests\/sha256:/);
      assert.match(captured.id, /^[0-9a-f-]{36}$/);
      assert.ok(captured.request.id);
      assert.equal(captured.request.method, 'PUT');
      assert.ok(captured.source.instanceID);
    } finally {
      unsubscribe();
    }
  });
});
