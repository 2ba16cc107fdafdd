/**
 * Garbage collection scenarios shared by the embedded suite (test/gc.test.ts) and the cluster
 * suite (test/cluster/gc.test.ts, on s3rver). Each takes the registry's base URL, its database and
 * a way to count storage objects.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Schema } from '../../libs/metadata/index.js';
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, blobOf, pushBlob, putManifest, randomBlob, sha256, type Blob } from './oci.js';
import { eventually } from './wait.js';

export interface GcTarget {
  base: string;
  db: Kysely<Schema>;
  /** Storage objects of the registry (files or S3 keys), whatever they are. */
  countObjects(): Promise<number>;
}

/** Enough for a 1 s grace and a worker polling every 50 ms on a busy 2-core machine. */
const SETTLE_MS = 30_000;

export function imageManifest(config: Blob, layers: Blob[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
    ...extra,
  });
}

export function configBlob(): Blob {
  return blobOf(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomBytes(8).toString('hex') }));
}

/**
 * Pushes the blobs (skipping those the repository has, as clients do after a HEAD) and the
 * manifest. With the suites' 1 s gc.uploadgrace, a busy machine can take longer than that between
 * a layer and the manifest, and the collector rightly takes the layer first: then the manifest
 * answers MANIFEST_BLOB_UNKNOWN and the push starts over from the HEADs, as a client's retry does.
 * It ends on the registry's state (the manifest accepted, or refused for another reason), not on
 * how fast this machine is.
 */
export async function pushWith(base: string, name: string, reference: string, config: Blob, layers: Blob[]): Promise<{ digest: string; res: Response }> {
  const body = imageManifest(config, layers);
  for (let attempt = 1; ; attempt++) {
    for (const b of [config, ...layers]) {
      const head = await fetch(`${base}/v2/${name}/blobs/${b.digest}`, { method: 'HEAD' });
      if (head.status !== 200) await pushBlob(base, name, b);
    }
    const res = await putManifest(base, name, reference, body, OCI_MANIFEST);
    if (res.status !== 400 || attempt >= 50) return { digest: sha256(body), res };
    const code = ((await res.clone().json()) as { errors?: Array<{ code: string }> }).errors?.[0]?.code;
    if (code !== 'MANIFEST_BLOB_UNKNOWN') return { digest: sha256(body), res };
  }
}

export async function blobStatus(base: string, name: string, digest: string): Promise<number> {
  const res = await fetch(`${base}/v2/${name}/blobs/${digest}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  if (res.status === 200) assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, digest, `blob ${digest} in ${name} has other bytes`);
  return res.status;
}

export async function blobRow(db: Kysely<Schema>, digest: string) {
  return db.selectFrom('blobs').selectAll().where('digest', '=', digest).executeTakeFirst();
}

/** Waits until nothing is left to review or delete (due or not), so a check can follow. */
export async function queuesDrained(db: Kysely<Schema>): Promise<void> {
  await eventually(
    async () => {
      const [b, m, s] = await Promise.all([
        db.selectFrom('gc_blob_reviews').select('digest').execute(),
        db.selectFrom('gc_manifest_reviews').select('digest').execute(),
        db.selectFrom('gc_storage_deletions').select('id').execute(),
      ]);
      assert.deepEqual([b.length, m.length, s.length], [0, 0, 0], 'gc queues still hold work');
    },
    SETTLE_MS,
    100,
  );
}

/** Delete a tag: the untagged manifest goes (policy delete), its own layers go, a layer another image shares stays. */
export async function tagDeleteScenario(t: GcTarget, name: string): Promise<void> {
  const shared = randomBlob(2048);
  const own1 = randomBlob(3000);
  const own2 = randomBlob(3001);
  const config1 = configBlob();
  const config2 = configBlob();
  const one = await pushWith(t.base, name, 'v1', config1, [shared, own1]);
  assert.equal(one.res.status, 201);
  const two = await pushWith(t.base, name, 'v2', config2, [shared, own2]);
  assert.equal(two.res.status, 201);
  const own1Key = (await blobRow(t.db, own1.digest))!.storage_key;

  assert.equal((await fetch(`${t.base}/v2/${name}/manifests/v1`, { method: 'DELETE' })).status, 202);
  await eventually(
    async () => {
      assert.equal((await fetch(`${t.base}/v2/${name}/manifests/${one.digest}`)).status, 404, 'untagged manifest collected');
      assert.equal(await blobRow(t.db, own1.digest), undefined, 'its own layer collected');
      assert.equal(await blobRow(t.db, config1.digest), undefined, 'its config collected');
    },
    SETTLE_MS,
    100,
  );
  await queuesDrained(t.db);
  assert.equal(await blobStatus(t.base, name, own1.digest), 404);
  assert.equal(await blobStatus(t.base, name, shared.digest), 200, 'the shared layer survives');
  assert.equal(await blobStatus(t.base, name, own2.digest), 200);
  assert.equal(await blobStatus(t.base, name, config2.digest), 200);
  assert.equal((await fetch(`${t.base}/v2/${name}/manifests/v2`)).status, 200);
  const leftover = await t.db.selectFrom('blobs').select('digest').where('storage_key', '=', own1Key).execute();
  assert.equal(leftover.length, 0);
}

/** A blob mounted into another repository survives while a manifest there references it; then it goes. */
export async function crossRepoScenario(t: GcTarget, from: string, to: string): Promise<void> {
  const layer = randomBlob(4096);
  const a = await pushWith(t.base, from, 'v1', configBlob(), [layer]);
  assert.equal(a.res.status, 201);
  const mount = await fetch(`${t.base}/v2/${to}/blobs/uploads/?mount=${layer.digest}&from=${from}`, { method: 'POST' });
  assert.equal(mount.status, 201);
  const b = await pushWith(t.base, to, 'v1', configBlob(), [layer]);
  assert.equal(b.res.status, 201);

  assert.equal((await fetch(`${t.base}/v2/${from}/manifests/${a.digest}`, { method: 'DELETE' })).status, 202);
  await queuesDrained(t.db);
  assert.equal(await blobStatus(t.base, to, layer.digest), 200, 'still referenced from the other repository');
  assert.equal(await blobStatus(t.base, from, layer.digest), 404, 'the unreferenced link expired with the grace period');

  assert.equal((await fetch(`${t.base}/v2/${to}/manifests/${b.digest}`, { method: 'DELETE' })).status, 202);
  await eventually(async () => assert.equal(await blobRow(t.db, layer.digest), undefined), SETTLE_MS, 100);
  assert.equal(await blobStatus(t.base, to, layer.digest), 404);
}

/**
 * The race: each round pushes an image referencing X while the last image referencing X is
 * deleted, with a 0 s grace and the collector running (run with gc.uploadgrace 1 s, so a
 * re-upload lives long enough for its manifest). Each round starts once X's earlier reviews are
 * done, so the deletion's review is due at once. A push whose blob went in between gets
 * MANIFEST_BLOB_UNKNOWN and uploads again, as a client does. Afterwards every manifest's blobs
 * are readable.
 */
export async function raceScenario(t: GcTarget, name: string, rounds = 20): Promise<void> {
  const x = randomBlob(8192);
  const config = configBlob();
  const manifestOf = (round: number) => JSON.stringify({ ...JSON.parse(imageManifest(config, [x])), annotations: { round: String(round) } });
  const push = async (round: number) => {
    for (let attempt = 0; attempt < 10; attempt++) {
      for (const b of [config, x]) {
        if ((await fetch(`${t.base}/v2/${name}/blobs/${b.digest}`, { method: 'HEAD' })).status !== 200) await pushBlob(t.base, name, b);
      }
      const body = manifestOf(round);
      const res = await putManifest(t.base, name, `tag${round}`, body, OCI_MANIFEST);
      if (res.status === 201) return { digest: sha256(body), retried: attempt };
      const error = (await res.json()) as { errors: Array<{ code: string }> };
      assert.equal(error.errors[0]?.code, 'MANIFEST_BLOB_UNKNOWN', `round ${round}: ${JSON.stringify(error)}`);
    }
    throw new Error(`round ${round}: manifest never accepted`);
  };
  const xKey = async () => (await blobRow(t.db, x.digest))?.storage_key;
  const reviewsOfX = async () => (await t.db.selectFrom('gc_blob_reviews').select('digest').where('digest', 'in', [x.digest, config.digest]).execute()).length;

  let current = await push(0);
  let retries = 0;
  let collected = 0;
  for (let round = 1; round <= rounds; round++) {
    await eventually(async () => assert.equal(await reviewsOfX(), 0), SETTLE_MS, 20);
    const before = await xKey();
    const [pushed, removed] = await Promise.all([push(round), fetch(`${t.base}/v2/${name}/manifests/${current.digest}`, { method: 'DELETE' })]);
    assert.equal(removed.status, 202);
    retries += pushed.retried;
    if ((await xKey()) !== before) collected++;
    current = pushed;
  }
  await queuesDrained(t.db);
  const rows = await t.db
    .selectFrom('manifests as m')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .innerJoin('manifest_references as mr', 'mr.manifest_id', 'm.id')
    .select(['m.digest', 'mr.child_digest'])
    .where('r.name', '=', name)
    .execute();
  assert.equal(rows.length, 2, 'the last image is there with its config and layer');
  for (const row of rows) assert.equal(await blobStatus(t.base, name, row.child_digest), 200, `${row.digest} names ${row.child_digest}`);
  // How often each side won depends on timing: reported, not asserted.
  console.log(`# race: ${rounds} rounds; X collected and uploaded again in ${collected}; ${retries} manifest PUTs answered MANIFEST_BLOB_UNKNOWN`);
}

/** Push then delete everything: metadata and storage return to empty. */
export async function emptyScenario(t: GcTarget, names: string[]): Promise<void> {
  const pushed: Array<{ name: string; digest: string }> = [];
  const shared = randomBlob(1500);
  for (const name of names) {
    for (const tag of ['a', 'b']) {
      const p = await pushWith(t.base, name, tag, configBlob(), [shared, randomBlob(700)]);
      assert.equal(p.res.status, 201);
      pushed.push({ name, digest: p.digest });
    }
    await pushBlob(t.base, name, randomBlob(100)); // linked, never referenced
  }
  // An upload started and cancelled, and one that fails its digest.
  const post = await fetch(`${t.base}/v2/${names[0]}/blobs/uploads/`, { method: 'POST' });
  await fetch(`${t.base}${post.headers.get('location')}`, { method: 'PATCH', body: randomBytes(300), headers: { 'content-type': 'application/octet-stream' } });
  assert.equal((await fetch(`${t.base}${post.headers.get('location')}`, { method: 'DELETE' })).status, 204);
  const wrong = await fetch(`${t.base}/v2/${names[0]}/blobs/uploads/?digest=${sha256('other')}`, { method: 'POST', body: randomBytes(10) });
  assert.equal(wrong.status, 400);

  for (const p of pushed) assert.equal((await fetch(`${t.base}/v2/${p.name}/manifests/${p.digest}`, { method: 'DELETE' })).status, 202);
  await eventually(
    async () => {
      for (const table of ['blobs', 'repository_blobs', 'manifests', 'tags', 'uploads', 'gc_blob_reviews', 'gc_manifest_reviews', 'gc_storage_deletions'] as const) {
        const rows = await t.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow();
        assert.equal(Number(rows.n), 0, `${table} is empty`);
      }
      assert.equal(await t.countObjects(), 0, 'storage is empty');
    },
    SETTLE_MS,
    200,
  );
}
