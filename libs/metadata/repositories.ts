import type { Executor } from './schema.js';

export async function findRepositoryId(db: Executor, name: string): Promise<number | undefined> {
  const row = await db.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirst();
  return row?.id;
}

export async function repositoryName(db: Executor, id: number): Promise<string> {
  return (await db.selectFrom('repositories').select('name').where('id', '=', id).executeTakeFirstOrThrow()).name;
}

/**
 * The repository's id, creating the row on first use. Looked up first: every push after a
 * repository's first finds it, in one round trip, without the speculative insert (and the
 * sequence value it burns) of INSERT ... ON CONFLICT.
 */
export async function ensureRepository(db: Executor, name: string): Promise<number> {
  const existing = await findRepositoryId(db, name);
  if (existing !== undefined) return existing;
  const inserted = await db
    .insertInto('repositories')
    .values({ name })
    .onConflict((oc) => oc.column('name').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (inserted) return inserted.id;
  return (await db.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id;
}
