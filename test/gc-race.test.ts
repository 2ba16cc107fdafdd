import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { reconcile } from '../services/cli/reconcile.js';
import { FilesystemBlobStore } from '../libs/storage/index.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { queuesDrained, raceScenario } from './helpers/gc.js';

// Its own file: one embedded PostgreSQL per process, and this one needs a 0 s grace.
let wharf: TestWharf;

before(async () => {
  wharf = await startTestWharf({ 'gc.grace': 0, 'gc.uploadgrace': 1, 'gc.untagged': 'delete-after 0s', 'gc.pollinterval': 10 });
});
after(async () => wharf?.close());

describe('online garbage collection racing pushes (embedded)', () => {
  it('20 rounds of push-referencing-X against delete-last-image-referencing-X, 0 s grace: every manifest blob stays readable, nothing dangles', async () => {
    await raceScenario({ base: wharf.base, db: wharf.database.db, countObjects: async () => 0 }, 'gc/race', 20);
    await queuesDrained(wharf.database.db);
    const report = await reconcile(wharf.database.db, new FilesystemBlobStore(join(wharf.dataDir!, 'blobs')), { apply: false, minAgeSeconds: 0 });
    assert.deepEqual({ orphans: report.orphans, missing: report.missing, dangling: report.dangling }, { orphans: [], missing: [], dangling: [] });
  });
});
