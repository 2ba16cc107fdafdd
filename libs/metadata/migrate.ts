import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type Kysely } from 'kysely';
import type { Schema } from './schema.js';

// Compiled, this module sits one level deeper (dist/libs/metadata/migrate.js) than its source.
export const MIGRATIONS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), import.meta.url.endsWith('.js') ? '../../../migrations' : '../../migrations');

// Any fixed number: every node that migrates takes the same advisory lock, so only one applies a step.
const MIGRATION_LOCK = 7_265_481_001;

/** Applies the numbered SQL files in migrations/ that this database has not seen; returns their names. */
export async function migrate(db: Kysely<Schema>, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => /^\d+_.*\.sql$/.test(f)).sort();
  return db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(${MIGRATION_LOCK})`.execute(conn);
    try {
      await sql`create table if not exists wharf_migrations (name text primary key, applied_at timestamptz not null default now())`.execute(conn);
      const done = new Set((await sql<{ name: string }>`select name from wharf_migrations`.execute(conn)).rows.map((r) => r.name));
      const applied: string[] = [];
      for (const file of files) {
        if (done.has(file)) continue;
        const text = await readFile(join(dir, file), 'utf8');
        await conn.transaction().execute(async (trx) => {
          await sql.raw(text).execute(trx);
          await sql`insert into wharf_migrations (name) values (${file})`.execute(trx);
        });
        applied.push(file);
      }
      return applied;
    } finally {
      await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`.execute(conn);
    }
  });
}

/** Migrations in migrations/ that the database has not applied: a node refuses to serve an old schema. */
export async function pendingMigrations(db: Kysely<Schema>, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => /^\d+_.*\.sql$/.test(f)).sort();
  const exists = await sql<{ t: string | null }>`select to_regclass('wharf_migrations')::text as t`.execute(db);
  if (!exists.rows[0]?.t) return files;
  const done = new Set((await sql<{ name: string }>`select name from wharf_migrations`.execute(db)).rows.map((r) => r.name));
  return files.filter((f) => !done.has(f));
}
