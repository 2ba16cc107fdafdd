/**
 * The embedded PostgreSQL runs with settings sized for one registry process (small shared
 * buffers, no parallel workers, no JIT, connections = the pools plus a margin), not PostgreSQL's
 * server defaults: they are what keeps its memory under the registry's budget. The query pool is
 * smaller beside it than in front of a database server of its own.
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../libs/config/index.js';
import { embeddedPostgresSettings, startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../libs/metadata/index.js';
import { queryPoolSize } from '../services/cli/parts.js';

let dir: string;
let server: EmbeddedPostgresHandle;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-embedded-pg-'));
  await chmod(dir, 0o755); // as root, the embedded PostgreSQL runs as "postgres" and must enter it
  server = await startEmbeddedPostgres(join(dir, 'postgres'), { connections: 25 });
});

after(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

it('starts with the embedded settings, max_connections from the pools', async () => {
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  try {
    const wanted = embeddedPostgresSettings(25);
    assert.equal(wanted.max_connections, '35');
    for (const [name, value] of Object.entries(wanted)) {
      const { rows } = await client.query<{ v: string }>('select current_setting($1) as v', [name]);
      assert.equal(rows[0]!.v, value, name);
    }
  } finally {
    await client.end();
  }
});

it('sizes the query pool for the embedded PostgreSQL unless database.poolsize says otherwise', () => {
  assert.equal(queryPoolSize(loadConfig({ env: {} })), 10);
  assert.equal(queryPoolSize(loadConfig({ env: { WHARF_DATABASE_URL: 'postgres://db/wharf' } })), 20);
  assert.equal(queryPoolSize(loadConfig({ env: { WHARF_DATABASE_POOLSIZE: '7' } })), 7);
});
