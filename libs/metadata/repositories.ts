import type { Executor } from './schema.js';

export async function findRepositoryId(db: Executor, name: string): Promise<number | undefined> {
  const row = await db.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirst();
  return row?.id;
}

/** The repository's id, creating the row on first use. */
export async function ensureRepository(db: Executor, name: string): Promise<number> {
  const inserted = await db
    .insertInto('repositories')
    .values({ name })
    .onConflict((oc) => oc.column('name').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (inserted) return inserted.id;
  return (await db.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id;
}

/** Up to `n` repository names after `last` that hold at least one manifest, in byte order. */
export async function listRepositoriesWithContent(db: Executor, n: number, last: string | undefined): Promise<string[]> {
  let query = db
    .selectFrom('repositories as r')
    .select('r.name')
    .where(({ exists, selectFrom }) => exists(selectFrom('manifests as m').select('m.id').whereRef('m.repository_id', '=', 'r.id')))
    .orderBy('r.name')
    .limit(n);
  if (last !== undefined) query = query.where('r.name', '>', last);
  return (await query.execute()).map((r) => r.name);
}
