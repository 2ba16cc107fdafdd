import { after, before, describe, it } from 'node:test';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { raceScenario } from './helpers/gc.js';

// Its own file: one embedded PostgreSQL per process, and this one needs a 0 s grace.
let wharf: TestWharf;

before(async () => {
  wharf = await startTestWharf({ 'gc.grace': 0, 'gc.uploadgrace': 1, 'gc.untagged': 'delete-after 0s', 'gc.pollinterval': 10 });
});
after(async () => wharf?.close());

describe('online garbage collection racing pushes (embedded)', () => {
  it('20 rounds of push-referencing-X against delete-last-image-referencing-X, 0 s grace: every manifest blob stays readable', async () => {
    await raceScenario({ base: wharf.base, db: wharf.database.db, countObjects: async () => 0 }, 'gc/race', 20);
  });
});
