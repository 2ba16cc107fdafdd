/** Retention: cached content nobody pulls for an upstream's `retention` is collected; an upstream with retention 0 keeps it. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { DISTRIBUTION, startDistribution, type Distribution } from './helpers/distribution.js';
import { randomBlob } from './helpers/oci.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { pushContent, rawImage } from './helpers/upstream-push.js';
import { eventually } from './helpers/wait.js';

describe('retention of cached content', { skip: existsSync(DISTRIBUTION) ? false : `${DISTRIBUTION} not installed` }, () => {
  let upstream: Distribution;
  let wharf: TestWharf;
  const brief = rawImage([randomBlob(3000), randomBlob(4000)]);
  const kept = rawImage([randomBlob(5000)]);

  before(async () => {
    upstream = await startDistribution();
    await pushContent(upstream.url, 'team/brief', brief, 'v1');
    await pushContent(upstream.url, 'team/kept', kept, 'v1');
    wharf = await startTestWharf({
      'gc.grace': 0,
      'gc.uploadgrace': 0,
      'gc.pollinterval': 50,
      'proxy.upstreams': [
        { name: 'short', url: upstream.url, prefix: 'short', retention: '2s' },
        { name: 'long', url: upstream.url, prefix: 'long', retention: 0 },
      ],
    });
  });
  after(async () => {
    await wharf?.close();
    await upstream?.close();
  });

  async function pullAll(prefix: string, image: ReturnType<typeof rawImage>, name: string): Promise<void> {
    const m = await fetch(`${wharf.base}/v2/${prefix}/${name}/manifests/v1`, { headers: { accept: image.mediaType } });
    assert.equal(m.status, 200);
    await m.arrayBuffer();
    for (const blob of image.blobs) {
      const b = await fetch(`${wharf.base}/v2/${prefix}/${name}/blobs/${blob.digest}`);
      assert.equal(b.status, 200);
      await b.arrayBuffer();
    }
  }

  it('collects what was not pulled within retention, manifests and blobs, and keeps what has none', async () => {
    await pullAll('short', brief, 'team/brief');
    await pullAll('long', kept, 'team/kept');
    const db = wharf.database.db;
    await eventually(
      async () => {
        const left = await db
          .selectFrom('manifests')
          .innerJoin('repositories', 'repositories.id', 'manifests.repository_id')
          .select('manifests.digest')
          .where('repositories.name', '=', 'short/team/brief')
          .execute();
        assert.deepEqual(left, []);
        const stored = await db
          .selectFrom('blobs')
          .select('digest')
          .where(
            'digest',
            'in',
            brief.blobs.map((b) => b.digest),
          )
          .execute();
        assert.deepEqual(stored, []);
      },
      60_000,
      200,
    );
    const keptManifest = await db.selectFrom('manifests').select('digest').where('digest', '=', kept.digest).executeTakeFirst();
    assert.equal(keptManifest?.digest, kept.digest);
    const keptBlobs = await db
      .selectFrom('blobs')
      .select('digest')
      .where(
        'digest',
        'in',
        kept.blobs.map((b) => b.digest),
      )
      .execute();
    assert.equal(keptBlobs.length, kept.blobs.length);
    const events = (await db.selectFrom('outbox').select('payload').execute()).map(
      (r) => r.payload as { action: string; actor: { name?: string }; target: { repository?: string; digest?: string } },
    );
    assert.ok(events.some((e) => e.action === 'delete' && e.actor.name === 'wharf-gc' && e.target.repository === 'short/team/brief' && e.target.digest === brief.digest));
    // Collected is not lost: the next pull fetches it again.
    await pullAll('short', brief, 'team/brief');
  });
});
