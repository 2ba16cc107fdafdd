import type { Executor } from './schema.js';

/** Points `tag` at the manifest; records history only when the target actually changes. */
export async function setTag(db: Executor, repositoryId: number, tag: string, manifestId: number, digest: string): Promise<void> {
  const changed = await db
    .insertInto('tags')
    .values({ repository_id: repositoryId, name: tag, manifest_id: manifestId })
    .onConflict((oc) =>
      oc
        .columns(['repository_id', 'name'])
        .doUpdateSet((eb) => ({ manifest_id: eb.ref('excluded.manifest_id'), updated_at: new Date() }))
        .whereRef('tags.manifest_id', '<>', 'excluded.manifest_id'),
    )
    .returning('name')
    .executeTakeFirst();
  if (changed) {
    await db.insertInto('tag_history').values({ repository_id: repositoryId, tag, digest }).execute();
  }
}

/** Removes the tag; returns the digest it pointed at, or undefined if there was no such tag. */
export async function deleteTag(db: Executor, repositoryId: number, tag: string): Promise<{ digest: string; mediaType: string; size: number } | undefined> {
  const target = await db
    .selectFrom('tags as t')
    .innerJoin('manifests as m', 'm.id', 't.manifest_id')
    .select(['m.digest', 'm.media_type', 'm.size'])
    .where('t.repository_id', '=', repositoryId)
    .where('t.name', '=', tag)
    .forUpdate()
    .executeTakeFirst();
  if (!target) return undefined;
  await db.deleteFrom('tags').where('repository_id', '=', repositoryId).where('name', '=', tag).execute();
  return { digest: target.digest, mediaType: target.media_type, size: target.size };
}

export async function listTags(db: Executor, repositoryId: number, n: number, last: string | undefined): Promise<string[]> {
  let query = db.selectFrom('tags').select('name').where('repository_id', '=', repositoryId).orderBy('name').limit(n);
  if (last !== undefined) query = query.where('name', '>', last);
  return (await query.execute()).map((r) => r.name);
}

export async function tagsOfManifest(db: Executor, manifestId: number): Promise<string[]> {
  return (await db.selectFrom('tags').select('name').where('manifest_id', '=', manifestId).orderBy('name').execute()).map((r) => r.name);
}
