import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { configToEnv, type Config } from '../../libs/config/index.js';
import { createLogger } from '../../libs/log/index.js';
import { startWorker } from '../../services/cli/start.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { crossRepoScenario, emptyScenario, pushWith, configBlob, queuesDrained, raceScenario, tagDeleteScenario, type GcTarget } from '../helpers/gc.js';
import { randomBlob } from '../helpers/oci.js';
import { runWharfCommand } from '../helpers/processes.js';
import { listObjectKeys } from '../helpers/s3rver.js';
import { eventually } from '../helpers/wait.js';

/** A cluster of two API nodes behind the round-robin proxy, plus one gc worker, on s3rver. */
async function gcCluster(overrides: Partial<Config>): Promise<{ cluster: TestCluster; target: GcTarget; s3: S3Client; close(): Promise<void> } | { skip: string }> {
  const started = await startTestCluster(overrides);
  if ('skip' in started) return started;
  const worker = await startWorker({ ...started.config, 'worker.roles': ['gc'] }, createLogger('silent'));
  const { s3: endpoint } = started.services;
  const s3 = new S3Client({
    endpoint: endpoint.endpoint,
    region: endpoint.region,
    forcePathStyle: true,
    credentials: { accessKeyId: endpoint.accessKeyId, secretAccessKey: endpoint.secretAccessKey },
  });
  const countObjects = async () => (await listObjectKeys(s3, endpoint.bucket)).length;
  return {
    cluster: started,
    target: { base: started.url, db: started.nodes[0]!.database.db, countObjects },
    s3,
    async close() {
      await worker.close();
      await started.close();
      s3.destroy();
    },
  };
}

const SHORT = { 'gc.grace': 1, 'gc.uploadgrace': 1, 'gc.untagged': 'delete-after 0s', 'gc.pollinterval': 50, 'uploads.maxidle': 5 } as const;

let env: Awaited<ReturnType<typeof gcCluster>> | undefined;
before(async () => {
  env = await gcCluster(SHORT);
});
after(async () => {
  if (env && !('skip' in env)) await env.close();
});

function ready(t: { skip(message: string): void }): Exclude<typeof env, { skip: string } | undefined> | undefined {
  if (!env || 'skip' in env) {
    t.skip(env && 'skip' in env ? env.skip : 'cluster unavailable');
    return undefined;
  }
  return env;
}

describe('online garbage collection (cluster, S3)', () => {
  it('push and delete everything: metadata and the bucket return to empty', async (t) => {
    const e = ready(t);
    if (!e) return;
    await emptyScenario(e.target, ['gcc-empty/one', 'gcc-empty/two']);
  });

  it('deleting a tag collects the untagged manifest and its unshared blobs; a shared layer survives', async (t) => {
    const e = ready(t);
    if (!e) return;
    await tagDeleteScenario(e.target, 'gcc/tagdel');
  });

  it('a blob mounted into another repository survives while a manifest there references it', async (t) => {
    const e = ready(t);
    if (!e) return;
    await crossRepoScenario(e.target, 'gcc/from', 'gcc/to');
  });

  it('cancels an upload idle longer than uploads.maxidle: its multipart upload and tail object go', async (t) => {
    const e = ready(t);
    if (!e) return;
    await queuesDrained(e.target.db);
    const before = await e.target.countObjects();
    const post = await fetch(`${e.target.base}/v2/gcc/idle/blobs/uploads/`, { method: 'POST' });
    const location = post.headers.get('location')!;
    const patch = await fetch(`${e.target.base}${location}`, { method: 'PATCH', body: randomBlob(5000).bytes, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(patch.status, 202);
    assert.equal(await e.target.countObjects(), before + 1, 'the chunk waits in a tail object');
    await eventually(
      async () => {
        assert.equal((await fetch(`${e.target.base}${location}`)).status, 404);
        assert.equal(await e.target.countObjects(), before);
      },
      30_000,
      200,
    );
    await queuesDrained(e.target.db);
  });

  it('wharf reconcile --dry-run finds an object planted in S3 and a blob whose object was removed; --apply repairs; then it reports zero', async (t) => {
    const e = ready(t);
    if (!e) return;
    const cliEnv = configToEnv(e.cluster.config);
    const clean = await runWharfCommand(['reconcile', '--dry-run', '--min-age', '0'], cliEnv);
    assert.equal(clean.code, 0, `after continuous GC nothing dangles: ${clean.stdout}${clean.stderr}`);
    assert.match(clean.stdout, /0 orphan objects .*0 blobs with a missing object/);

    const layer = randomBlob(2000);
    const pushed = await pushWith(e.target.base, 'gcc/fsck', 'v1', configBlob(), [layer]);
    assert.equal(pushed.res.status, 201);
    const { bucket } = e.cluster.services.s3;
    await e.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'zz/planted-orphan', Body: 'not a blob' }));
    const key = (await e.target.db.selectFrom('blobs').select('storage_key').where('digest', '=', layer.digest).executeTakeFirstOrThrow()).storage_key;
    await e.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));

    const dry = await runWharfCommand(['reconcile', '--dry-run', '--min-age', '0'], cliEnv);
    assert.equal(dry.code, 1, dry.stdout + dry.stderr);
    assert.match(dry.stdout, /orphan object zz\/planted-orphan \(10 bytes\)/);
    assert.ok(dry.stdout.includes(`missing object ${key} of blob ${layer.digest}, named by gcc/fsck@${pushed.digest}`), dry.stdout);
    assert.match(dry.stdout, /1 orphan objects .*1 blobs with a missing object/);

    const fsck = await runWharfCommand(['fsck'], cliEnv);
    assert.equal(fsck.code, 1, fsck.stdout + fsck.stderr);
    assert.ok(fsck.stdout.includes(`unreadable blob ${layer.digest}`), fsck.stdout);

    const apply = await runWharfCommand(['reconcile', '--apply', '--min-age', '0'], cliEnv);
    assert.equal(apply.code, 1, 'a lost blob stays damage until it is pushed again');
    assert.match(apply.stdout, /1 deleted; 1 blobs with a missing object, 1 forgotten/);
    // The client pushes the lost blob again: HEAD says 404 now, so it uploads.
    assert.equal((await pushWith(e.target.base, 'gcc/fsck', 'v1', configBlob(), [layer])).res.status, 201);
    const after = await runWharfCommand(['reconcile', '--dry-run', '--min-age', '0'], cliEnv);
    assert.equal(after.code, 0, after.stdout);
    const good = await runWharfCommand(['fsck', '--sample', '5'], cliEnv);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /5 blobs checked .* 5 ok, 0 corrupt, 0 unreadable/);
  });
});

describe('online garbage collection racing pushes (cluster, S3, 0 s grace)', () => {
  it('20 rounds of push-referencing-X against delete-last-image-referencing-X: every manifest blob stays readable, and nothing dangles', async (t) => {
    const race = await gcCluster({ ...SHORT, 'gc.grace': 0, 'gc.pollinterval': 10 });
    if ('skip' in race) return t.skip(race.skip);
    try {
      await raceScenario(race.target, 'gcc/race', 20);
      await queuesDrained(race.target.db);
      const check = await runWharfCommand(['reconcile', '--dry-run', '--min-age', '0'], configToEnv(race.cluster.config));
      assert.equal(check.code, 0, check.stdout + check.stderr);
    } finally {
      await race.close();
    }
  });
});
