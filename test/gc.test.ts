import assert from 'node:assert/strict';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { configBlob, crossRepoScenario, emptyScenario, pushWith, tagDeleteScenario, type GcTarget } from './helpers/gc.js';
import { runWharfCommand } from './helpers/processes.js';
import { ConfigError, loadConfig } from '../libs/config/index.js';
import { parseUntaggedPolicy } from '../libs/config/index.js';
import { pushBlob, randomBlob } from './helpers/oci.js';
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
    await eventually(
      async () => {
        assert.equal((await fetch(`${wharf.base}${location}`)).status, 404);
        await assert.rejects(readdir(join(wharf.dataDir!, 'blobs', key)), 'the upload file is gone');
        const queued = await wharf.database.db.selectFrom('gc_storage_deletions').select('id').execute();
        assert.equal(queued.length, 0);
      },
      30_000,
      200,
    );
  });

  it('wharf reconcile and wharf fsck attach to the running embedded PostgreSQL and find planted damage', async () => {
    const cliEnv = { WHARF_DATA_DIR: wharf.dataDir!, WHARF_LOG_LEVEL: 'silent' };
    const layer = randomBlob(1200);
    const pushed = await pushWith(wharf.base, 'gc/cli', 'v1', configBlob(), [layer]);
    assert.equal(pushed.res.status, 201);
    const key = (await wharf.database.db.selectFrom('blobs').select('storage_key').where('digest', '=', layer.digest).executeTakeFirstOrThrow()).storage_key;
    await rm(join(wharf.dataDir!, 'blobs', key));
    await mkdir(join(wharf.dataDir!, 'blobs', 'zz'), { recursive: true });
    await writeFile(join(wharf.dataDir!, 'blobs', 'zz', 'planted'), 'orphan');
    const dry = await runWharfCommand(['reconcile', '--dry-run', '--min-age', '0'], cliEnv);
    assert.equal(dry.code, 1, dry.stdout + dry.stderr);
    assert.match(dry.stdout, /orphan object zz\/planted \(6 bytes\)/);
    assert.ok(dry.stdout.includes(`missing object ${key} of blob ${layer.digest}`), dry.stdout);
    const fsck = await runWharfCommand(['fsck'], cliEnv);
    assert.equal(fsck.code, 1, fsck.stdout + fsck.stderr);
    assert.match(fsck.stdout, /1 unreadable/);
    const usage = await runWharfCommand(['reconcile'], cliEnv);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /needs --dry-run or --apply/);
    // `wharf gc`, the old name, is the same command.
    const alias = await runWharfCommand(['gc', '--dry-run', '--min-age', '0'], cliEnv);
    assert.equal(alias.code, 1, alias.stdout + alias.stderr);
    assert.match(alias.stdout, /orphan object zz\/planted \(6 bytes\)/);
    const apply = await runWharfCommand(['reconcile', '--apply', '--min-age', '0'], cliEnv);
    assert.equal(apply.code, 1, apply.stdout + apply.stderr);
    const dangling = await runWharfCommand(['reconcile', '--dry-run', '--min-age', '0'], cliEnv);
    assert.equal(dangling.code, 1, 'the manifest still names the lost blob');
    assert.ok(dangling.stdout.includes(`dangling reference: gc/cli@${pushed.digest} names ${layer.digest}`), dangling.stdout);
    await pushBlob(wharf.base, 'gc/cli', layer); // the client pushes it again
    const after = await runWharfCommand(['reconcile', '--dry-run', '--min-age', '0'], cliEnv);
    assert.equal(after.code, 0, after.stdout + after.stderr);
    assert.match(after.stdout, /0 orphan objects .*0 blobs with a missing object.*0 dangling references/);
  });

  it('refuses a gc.untagged that is neither keep nor delete-after <duration>, naming the key', () => {
    for (const bad of ['delete', 'delete-after', 'delete-after 3 weeks', 'forever']) {
      assert.throws(
        () => loadConfig({ env: { WHARF_GC_UNTAGGED: bad } }),
        (err: Error) => err instanceof ConfigError && /gc\.untagged/.test(err.message),
        bad,
      );
    }
    assert.equal(loadConfig({ env: { WHARF_GC_UNTAGGED: 'delete-after 7d' } })['gc.untagged'], 'delete-after 7d');
    assert.equal(parseUntaggedPolicy('delete-after 7d'), 7 * 86_400);
    assert.equal(parseUntaggedPolicy('keep'), null);
  });

  it('serves the gc metrics', async () => {
    const text = await (await fetch(`${wharf.url}/metrics`)).text();
    for (const name of ['wharf_gc_decisions_total', 'wharf_gc_bytes_reclaimed_total', 'wharf_gc_objects_deleted_total', 'wharf_gc_queue_depth', 'wharf_gc_oldest_due_seconds']) {
      assert.match(text, new RegExp(`^${name}`, 'm'), name);
    }
    assert.match(text, /wharf_gc_decisions_total\{kind="blob",outcome="deleted"\} [1-9]/);
  });
});
