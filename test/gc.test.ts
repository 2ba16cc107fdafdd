import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { crossRepoScenario, emptyScenario, raceScenario, tagDeleteScenario, type GcTarget } from './helpers/gc.js';
import { randomBlob } from './helpers/oci.js';
import { eventually } from './helpers/wait.js';

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) n++;
  return n;
}

let wharf: TestWharf;
let target: GcTarget;

before(async () => {
  wharf = await startTestWharf({ 'gc.grace': 1, 'gc.uploadgrace': 1, 'gc.untagged': 'delete-after 0s', 'gc.pollinterval': 50, 'uploads.maxidle': 2 });
  target = { base: wharf.base, db: wharf.database.db, countObjects: () => countFiles(join(wharf.dataDir!, 'blobs')) };
});
after(async () => wharf?.close());

describe('online garbage collection (embedded)', () => {
  it('push and delete everything: metadata and storage return to empty', async () => {
    await emptyScenario(target, ['gc-empty/one', 'gc-empty/two']);
  });

  it('deleting a tag collects the untagged manifest and its unshared blobs after the grace period; a shared layer survives', async () => {
    await tagDeleteScenario(target, 'gc/tagdel');
  });

  it('a blob mounted into another repository survives while a manifest there references it', async () => {
    await crossRepoScenario(target, 'gc/from', 'gc/to');
  });

  it('cancels an upload idle longer than uploads.maxidle and frees its storage', async () => {
    const post = await fetch(`${wharf.base}/v2/gc/idle/blobs/uploads/`, { method: 'POST' });
    const location = post.headers.get('location')!;
    const patch = await fetch(`${wharf.base}${location}`, { method: 'PATCH', body: randomBlob(5000).bytes, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(patch.status, 202);
    const id = location.split('/').pop()!;
    const key = (await wharf.database.db.selectFrom('uploads').select('storage_key').where('id', '=', id).executeTakeFirstOrThrow()).storage_key;
    await eventually(async () => {
      assert.equal((await fetch(`${wharf.base}${location}`)).status, 404);
      await assert.rejects(readdir(join(wharf.dataDir!, 'blobs', key)), 'the upload file is gone');
      const queued = await wharf.database.db.selectFrom('gc_storage_deletions').select('id').execute();
      assert.equal(queued.length, 0);
    }, 30_000, 200);
  });

  it('serves the gc metrics', async () => {
    const text = await (await fetch(`${wharf.url}/metrics`)).text();
    for (const name of ['wharf_gc_decisions_total', 'wharf_gc_bytes_reclaimed_total', 'wharf_gc_objects_deleted_total', 'wharf_gc_queue_depth', 'wharf_gc_oldest_due_seconds']) {
      assert.match(text, new RegExp(`^${name}`, 'm'), name);
    }
    assert.match(text, /wharf_gc_decisions_total\{kind="blob",outcome="deleted"\} [1-9]/);
  });
});
