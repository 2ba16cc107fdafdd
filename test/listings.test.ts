import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { randomUUID } from 'node:crypto';
import { Subjects, buildEvent, type RegistryEvent } from '../libs/events/index.js';
import { CatalogIndexer, ManifestLister, rebuildReadModels } from '../libs/registry/index.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { OCI_EMPTY, OCI_MANIFEST, blobOf, errorCode, pushBlob, pushImage, putManifest } from './helpers/oci.js';
import { eventually } from './helpers/wait.js';

// Every assert inside eventually() carries a message: without one, node:assert reads the source file to build it, slowly.

let wharf: TestWharf;
let base: string;

before(async () => {
  wharf = await startTestWharf();
  base = wharf.base;
});
after(async () => wharf?.close());

async function getJson<T>(path: string, init?: RequestInit): Promise<{ res: Response; body: T }> {
  const res = await fetch(`${base}${path}`, init);
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return { res, body: (await res.json()) as T };
}

async function deleteManifest(name: string, digest: string): Promise<void> {
  const res = await fetch(`${base}/v2/${name}/manifests/${digest}`, { method: 'DELETE' });
  assert.equal(res.status, 202);
}

interface ManifestEntry {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  tags: string[];
  pushedAt: string;
}

/** An artifact manifest (empty config) with an artifactType and annotations. */
async function pushArtifact(name: string, reference: string, artifactType: string, annotations: Record<string, string>): Promise<string> {
  const empty = blobOf('{}');
  await pushBlob(base, name, empty);
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType,
    config: { mediaType: OCI_EMPTY, digest: empty.digest, size: empty.size },
    layers: [{ mediaType: OCI_EMPTY, digest: empty.digest, size: empty.size }],
    annotations,
  });
  const res = await putManifest(base, name, reference, body, OCI_MANIFEST);
  assert.equal(res.status, 201);
  return res.headers.get('docker-content-digest')!;
}

/** The read models' rows (everything a listing shows), in a stable order. */
async function readModels() {
  const db = wharf.database.db;
  return {
    catalog: (await sql`select * from catalog_entries order by name`.execute(db)).rows,
    tree: (await sql`select * from namespace_children order by parent, child`.execute(db)).rows,
    listing: (await sql`select * from manifest_listing order by repository_id, digest`.execute(db)).rows,
  };
}

/** What the read models should hold now: the source views they are computed from. */
async function fromSources() {
  const db = wharf.database.db;
  return {
    catalog: (await sql`select * from catalog_entry_source order by name`.execute(db)).rows,
    tree: (await sql`select * from namespace_source order by parent, child`.execute(db)).rows,
    listing: (await sql`select * from manifest_listing_source order by repository_id, digest`.execute(db)).rows,
  };
}

/** Waits until the workers have applied every event so far (embedded or cluster). */
async function settled(): Promise<void> {
  await eventually(async () => {
    const pending = await wharf.database.db.selectFrom('outbox').select('id').where('published_at', 'is', null).execute();
    assert.equal(pending.length, 0, 'outbox drained');
    const models = await readModels();
    // The tree is derived from the catalog entries: compare it with what the entries imply.
    assert.deepEqual({ catalog: models.catalog, listing: models.listing }, { catalog: (await fromSources()).catalog, listing: (await fromSources()).listing }, 'models caught up');
    assert.deepEqual(models.tree, (await fromSources()).tree, 'tree caught up');
  }, 20_000);
}

describe('catalog', () => {
  it('pages lexicographically with Link, clamps n, and drops a repository once all its manifests are deleted', async () => {
    const a = await pushImage(base, 'cat/a', 'v1');
    await pushImage(base, 'cat/b', 'v1');
    await pushImage(base, 'cat/c', 'v1');
    await eventually(async () => {
      const { body } = await getJson<{ repositories: string[] }>('/v2/_catalog?last=cat/');
      assert.deepEqual(
        body.repositories.filter((r) => r.startsWith('cat/')),
        ['cat/a', 'cat/b', 'cat/c'],
        'three listed',
      );
    });
    const first = await getJson<{ repositories: string[] }>('/v2/_catalog?n=2&last=cat/');
    assert.deepEqual(first.body.repositories, ['cat/a', 'cat/b']);
    assert.equal(first.res.headers.get('link'), '</v2/_catalog?n=2&last=cat%2Fb>; rel="next"');
    const big = await getJson<{ repositories: string[] }>('/v2/_catalog?n=100000');
    assert.ok(big.body.repositories.length <= 1000);

    await deleteManifest('cat/a', a.digest);
    await eventually(async () => {
      const { body } = await getJson<{ repositories: string[] }>('/v2/_catalog?last=cat/');
      assert.ok(!body.repositories.includes('cat/a'), 'cat/a gone');
    });
  });
});

describe('namespace tree', () => {
  it('lists the names directly under the root and under 3 levels of namespaces, paginated', async () => {
    for (const name of ['ns/team/app/api', 'ns/team/app/web', 'ns/team/tools', 'ns/other']) await pushImage(base, name, 'v1');
    const cli = await pushImage(base, 'ns/team/app/cli', 'v1');
    await eventually(async () => {
      const { body } = await getJson<{ name: string; repositories: string[] }>('/v2/ns/team/app/_wharf/repositories');
      assert.deepEqual(body, { name: 'ns/team/app', repositories: ['api', 'cli', 'web'] }, 'third level');
    });
    const root = await getJson<{ name: string; repositories: string[] }>('/v2/_wharf/repositories');
    assert.equal(root.body.name, '');
    assert.ok(root.body.repositories.includes('ns'));
    assert.deepEqual((await getJson('/v2/ns/_wharf/repositories')).body, { name: 'ns', repositories: ['other', 'team'] });
    const page = await getJson<{ repositories: string[] }>('/v2/ns/team/_wharf/repositories?n=1');
    assert.deepEqual(page.body.repositories, ['app']);
    assert.equal(page.res.headers.get('link'), '</v2/ns/team/_wharf/repositories?n=1&last=app>; rel="next"');
    assert.deepEqual((await getJson('/v2/ns/team/_wharf/repositories?n=1&last=app')).body, { name: 'ns/team', repositories: ['tools'] });
    // A repository is also a namespace: nothing below it yet.
    assert.deepEqual((await getJson('/v2/ns/other/_wharf/repositories')).body, { name: 'ns/other', repositories: [] });

    await deleteManifest('ns/team/app/cli', cli.digest);
    await eventually(async () => {
      const { body } = await getJson<{ repositories: string[] }>('/v2/ns/team/app/_wharf/repositories');
      assert.deepEqual(body.repositories, ['api', 'web'], 'cli gone');
    });
  });

  it('refuses an invalid prefix with NAME_INVALID', async () => {
    const res = await fetch(`${base}/v2/Bad..Name/_wharf/repositories`);
    assert.equal(res.status, 400);
    assert.equal(await errorCode(res), 'NAME_INVALID');
  });
});

describe('manifest listing', () => {
  const name = 'list/app';
  let tagged: string;
  let untagged: string;
  let sbom: string;

  before(async () => {
    tagged = (await pushImage(base, name, 'v1')).digest;
    untagged = (await pushImage(base, name, 'v0')).digest;
    await fetch(`${base}/v2/${name}/manifests/v0`, { method: 'DELETE' }); // untagged, still there by digest
    sbom = await pushArtifact(name, 'sbom', 'application/spdx+json', { 'org.example.kind': 'sbom', 'org.example.team': 'blue' });
    await settled();
  });

  it('lists every manifest, untagged included, with tags and push time', async () => {
    const { body } = await getJson<{ name: string; manifests: ManifestEntry[] }>(`/v2/${name}/_wharf/manifests`);
    assert.equal(body.name, name);
    assert.deepEqual(
      body.manifests.map((m) => m.digest),
      [tagged, untagged, sbom].sort(),
    );
    const byDigest = new Map(body.manifests.map((m) => [m.digest, m]));
    assert.deepEqual(byDigest.get(tagged)!.tags, ['v1']);
    assert.deepEqual(byDigest.get(untagged)!.tags, []);
    const artifact = byDigest.get(sbom)!;
    assert.equal(artifact.artifactType, 'application/spdx+json');
    assert.deepEqual(artifact.annotations, { 'org.example.kind': 'sbom', 'org.example.team': 'blue' });
    assert.equal(artifact.mediaType, OCI_MANIFEST);
    assert.ok(artifact.size > 0);
    for (const m of body.manifests) assert.ok(!Number.isNaN(Date.parse(m.pushedAt)), m.pushedAt);
  });

  it('filters by tagged, artifactType and annotations', async () => {
    const digests = async (query: string) => (await getJson<{ manifests: ManifestEntry[] }>(`/v2/${name}/_wharf/manifests?${query}`)).body.manifests.map((m) => m.digest);
    assert.deepEqual(await digests('tagged=false'), [untagged]);
    assert.deepEqual(await digests('tagged=true'), [tagged, sbom].sort());
    assert.deepEqual(await digests('artifactType=application/spdx%2Bjson'), [sbom]);
    assert.deepEqual(await digests('artifactType=application/none'), []);
    assert.deepEqual(await digests('annotation=org.example.kind=sbom&annotation=org.example.team=blue'), [sbom]);
    assert.deepEqual(await digests('annotation=org.example.team=red'), []);
    assert.deepEqual(await digests('tagged=true&artifactType=application/spdx%2Bjson'), [sbom]);
  });

  it('pages in digest order with a Link that keeps the filters', async () => {
    const all = [tagged, untagged, sbom].sort();
    const first = await getJson<{ manifests: ManifestEntry[] }>(`/v2/${name}/_wharf/manifests?n=1&tagged=true`);
    const taggedSorted = [tagged, sbom].sort();
    assert.deepEqual(
      first.body.manifests.map((m) => m.digest),
      [taggedSorted[0]],
    );
    assert.equal(first.res.headers.get('link'), `</v2/${name}/_wharf/manifests?n=1&tagged=true&last=${encodeURIComponent(taggedSorted[0]!)}>; rel="next"`);
    const second = await getJson<{ manifests: ManifestEntry[] }>(`/v2/${name}/_wharf/manifests?n=1&tagged=true&last=${taggedSorted[0]}`);
    assert.deepEqual(
      second.body.manifests.map((m) => m.digest),
      [taggedSorted[1]],
    );
    assert.equal(second.res.headers.get('link'), null);
    const two = await getJson<{ manifests: ManifestEntry[] }>(`/v2/${name}/_wharf/manifests?n=2`);
    assert.deepEqual(
      two.body.manifests.map((m) => m.digest),
      all.slice(0, 2),
    );
  });

  it('refuses bad filters and unknown repositories', async () => {
    for (const query of ['tagged=yes', 'annotation=novalue', 'annotation==x', 'artifactType=', 'n=-1']) {
      const res = await fetch(`${base}/v2/${name}/_wharf/manifests?${query}`);
      assert.equal(res.status, 400, query);
      assert.ok(await errorCode(res), query);
    }
    const unknown = await fetch(`${base}/v2/no/such/_wharf/manifests`);
    assert.equal(unknown.status, 404);
    assert.equal(await errorCode(unknown), 'NAME_UNKNOWN');
  });
});

describe('repository ETag', () => {
  it('answers If-None-Match and HEAD with 304/200, and changes after a push (read model) and at once (source tables)', async () => {
    const name = 'etag/app';
    await pushImage(base, name, 'v1');
    await settled();
    const listing = await fetch(`${base}/v2/${name}/_wharf/manifests`);
    const etag = listing.headers.get('etag')!;
    assert.match(etag, /^"m\d+\.\d+"$/);
    const again = await fetch(`${base}/v2/${name}/_wharf/manifests?tagged=true`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(again.headers.get('etag'), etag);
    const head = await fetch(`${base}/v2/${name}/_wharf/manifests`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('etag'), etag);
    const headMatch = await fetch(`${base}/v2/${name}/_wharf/manifests`, { method: 'HEAD', headers: { 'if-none-match': `W/${etag}, "other"` } });
    assert.equal(headMatch.status, 304);

    const tagsEtag = (await fetch(`${base}/v2/${name}/_wharf/tags`)).headers.get('etag')!;
    assert.equal((await fetch(`${base}/v2/${name}/_wharf/tags`, { headers: { 'if-none-match': tagsEtag } })).status, 304);

    await pushImage(base, name, 'v2');
    // Source-table listings: the next request already sees the push.
    const tagsAfter = await fetch(`${base}/v2/${name}/_wharf/tags`, { headers: { 'if-none-match': tagsEtag } });
    assert.equal(tagsAfter.status, 200);
    assert.notEqual(tagsAfter.headers.get('etag'), tagsEtag);
    // Read-model listing: once the manifest-lister applied it, with a body that shows it.
    await eventually(async () => {
      const res = await fetch(`${base}/v2/${name}/_wharf/manifests`, { headers: { 'if-none-match': etag } });
      assert.equal(res.status, 200, 'etag moved');
      const body = (await res.json()) as { manifests: ManifestEntry[] };
      assert.ok(
        body.manifests.some((m) => m.tags.includes('v2')),
        'v2 listed',
      );
    });
    // A delete moves it too.
    const before = (await fetch(`${base}/v2/${name}/_wharf/tags`)).headers.get('etag');
    await fetch(`${base}/v2/${name}/manifests/v1`, { method: 'DELETE' });
    assert.notEqual((await fetch(`${base}/v2/${name}/_wharf/tags`)).headers.get('etag'), before);
  });
});

describe('tags with times and history', () => {
  it('lists tags with digest, createdAt and updatedAt, paginated', async () => {
    const name = 'tagtimes/app';
    const one = await pushImage(base, name, 'a');
    await pushImage(base, name, 'b');
    const first = await getJson<{ name: string; tags: Array<{ name: string; digest: string; createdAt: string; updatedAt: string }> }>(`/v2/${name}/_wharf/tags?n=1`);
    assert.equal(first.body.tags.length, 1);
    const a = first.body.tags[0]!;
    assert.equal(a.name, 'a');
    assert.equal(a.digest, one.digest);
    assert.ok(Date.parse(a.updatedAt) >= Date.parse(a.createdAt));
    assert.equal(first.res.headers.get('link'), `</v2/${name}/_wharf/tags?n=1&last=a>; rel="next"`);
    const second = await getJson<{ tags: Array<{ name: string }> }>(`/v2/${name}/_wharf/tags?n=1&last=a`);
    assert.deepEqual(
      second.body.tags.map((t) => t.name),
      ['b'],
    );
    // Moving a tag keeps createdAt and moves updatedAt.
    const moved = await pushImage(base, name, 'a');
    const after = (await getJson<{ tags: Array<{ name: string; digest: string; createdAt: string; updatedAt: string }> }>(`/v2/${name}/_wharf/tags`)).body.tags[0]!;
    assert.equal(after.digest, moved.digest);
    assert.equal(after.createdAt, a.createdAt);
    assert.ok(Date.parse(after.updatedAt) >= Date.parse(a.updatedAt));
  });

  it('gives every digest a tag pointed to, newest first, paginated; 404 for a tag that never existed', async () => {
    const name = 'history/app';
    const digests: string[] = [];
    for (let i = 0; i < 3; i++) digests.push((await pushImage(base, name, 'latest')).digest);
    const all = await getJson<{ name: string; tag: string; history: Array<{ digest: string; createdAt: string }> }>(`/v2/${name}/_wharf/tags/latest/history`);
    assert.equal(all.body.tag, 'latest');
    assert.deepEqual(
      all.body.history.map((h) => h.digest),
      [...digests].reverse(),
    );
    const first = await getJson<{ history: Array<{ digest: string }> }>(`/v2/${name}/_wharf/tags/latest/history?n=2`);
    assert.deepEqual(
      first.body.history.map((h) => h.digest),
      [digests[2], digests[1]],
    );
    const link = first.res.headers.get('link')!;
    const next = /^<([^>]+)>; rel="next"$/.exec(link)![1]!;
    const second = await fetch(`${wharf.url}${next}`);
    assert.deepEqual(
      ((await second.json()) as { history: Array<{ digest: string }> }).history.map((h) => h.digest),
      [digests[0]],
    );

    const missing = await fetch(`${base}/v2/${name}/_wharf/tags/nope/history`);
    assert.equal(missing.status, 404);
    assert.equal(await errorCode(missing), 'MANIFEST_UNKNOWN');
    assert.equal((await fetch(`${base}/v2/${name}/_wharf/tags/nope/history`, { method: 'HEAD' })).status, 404);
    const etag = all.res.headers.get('etag')!;
    assert.equal((await fetch(`${base}/v2/${name}/_wharf/tags/latest/history`, { headers: { 'if-none-match': etag } })).status, 304);
    const badTag = await fetch(`${base}/v2/${name}/_wharf/tags/-bad/history`);
    assert.equal(badTag.status, 400);
    assert.equal(await errorCode(badTag), 'TAG_INVALID');
    const badCursor = await fetch(`${base}/v2/${name}/_wharf/tags/latest/history?last=abc`);
    assert.equal(badCursor.status, 400);
  });
});

describe('extension discovery', () => {
  it('lists _oci and _wharf in the OCI extensions format, at registry and repository level', async () => {
    const { body } = await getJson<{ extensions: Array<{ name: string; url: string; description?: string; endpoints: string[] }> }>('/v2/_oci/ext/discover');
    assert.deepEqual(
      body.extensions.map((e) => e.name),
      ['_oci', '_wharf'],
    );
    const wharfExt = body.extensions[1]!;
    assert.ok(wharfExt.url);
    assert.ok(wharfExt.endpoints.includes('{name}/_wharf/manifests'));
    const repo = await getJson<{ extensions: Array<{ name: string; endpoints: string[] }> }>('/v2/some/repo/_oci/ext/discover');
    assert.ok(repo.body.extensions[1]!.endpoints.includes('_wharf/manifests'));
  });
});

describe('read-model workers', () => {
  it('leave the models equal to a rebuild when events are redelivered and arrive out of order', async () => {
    const name = 'order/app';
    const captured: Array<{ subject: string; event: RegistryEvent }> = [];
    const unsubscribe = wharf.bus.subscribe('wharf.events.>', (subject, event) => {
      if (event.target.repository === name) captured.push({ subject, event });
    });
    try {
      const first = await pushImage(base, name, 'latest');
      await pushImage(base, name, 'latest'); // moves the tag: the first manifest loses it
      await pushArtifact(name, 'extra', 'application/x-test', { k: 'v' });
      await fetch(`${base}/v2/${name}/manifests/extra`, { method: 'DELETE' });
      await deleteManifest(name, first.digest);
      await settled();
      await eventually(() =>
        assert.ok(
          captured.some((c) => c.subject === 'wharf.events.manifest.delete'),
          'delete captured',
        ),
      );
    } finally {
      unsubscribe();
    }
    const correct = await readModels();

    // Damage the repository's rows, then replay every event twice, newest first.
    const db = wharf.database.db;
    await sql`delete from manifest_listing where repository_id = (select id from repositories where name = ${name})`.execute(db);
    await sql`delete from catalog_entries where name = ${name}`.execute(db);
    const catalog = new CatalogIndexer(db);
    const lister = new ManifestLister(db);
    const replay = [...captured].reverse();
    for (const { subject, event } of [...replay, ...replay]) {
      await catalog.apply(subject, event);
      await lister.apply(subject, event);
    }
    assert.deepEqual(await readModels(), correct);

    // Stale events alone (the first push, handled again long after) change nothing.
    const push = captured.find((c) => c.subject === 'wharf.events.manifest.push')!;
    await catalog.apply(push.subject, push.event);
    await lister.apply(push.subject, push.event);
    assert.deepEqual(await readModels(), correct);
  });

  it('build the same models incrementally as wharf reindex builds from the source tables', async () => {
    await settled();
    const incremental = await readModels();
    assert.ok(incremental.catalog.length > 5);
    const counts = await rebuildReadModels(wharf.database.db);
    assert.equal(counts.repositories, incremental.catalog.length);
    assert.deepEqual(await readModels(), incremental);
  });

  it('apply a push while a large backlog of pull events sits in the stream, never handed one of them', async () => {
    // The read-model consumers filter the change subjects only: a pull never reaches them (it would be "ignored").
    const ignored = async () => {
      const text = await (await fetch(`${wharf.url}/metrics`)).text();
      return [...text.matchAll(/^wharf_read_model_events_total\{[^}]*outcome="ignored"[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    const before = await ignored();
    const name = 'backlog/app';
    const pull = buildEvent(
      'pull',
      { repository: name, tag: 'latest', digest: `sha256:${'2'.repeat(64)}`, size: 1, mediaType: OCI_MANIFEST },
      { request: { id: 'pulls', addr: '127.0.0.1', host: 'localhost', method: 'GET', useragent: 'test' }, actor: {}, source: { addr: 'localhost', instanceID: 'test' } },
    );
    const bus = wharf.bus;
    for (let sent = 0; sent < 20_000; sent += 1_000) {
      const chunk = Array.from({ length: 1_000 }, () => ({ ...pull, id: randomUUID() }));
      if (bus.publishUnacknowledged) for (const e of chunk) bus.publishUnacknowledged(Subjects.manifestPull, e);
      else await Promise.all(chunk.map((e) => bus.publish(Subjects.manifestPull, e)));
    }
    await pushImage(base, name, 'after-pulls');
    await eventually(async () => {
      const { body } = await getJson<{ manifests: ManifestEntry[] }>(`/v2/${name}/_wharf/manifests`);
      assert.ok(
        body.manifests.some((m) => m.tags.includes('after-pulls')),
        'the push is in the listing',
      );
    }, 60_000);
    assert.equal(await ignored(), before, 'no pull event was handed to a read-model consumer');
  });

  it('report their lag as a metric', async () => {
    const text = await (await fetch(`${wharf.url}/metrics`)).text();
    assert.match(text, /wharf_read_model_lag_seconds_count\{model="catalog"\} [1-9]/);
    assert.match(text, /wharf_read_model_lag_seconds_count\{model="manifests"\} [1-9]/);
  });
});
