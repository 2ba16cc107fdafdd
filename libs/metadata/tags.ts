import { sql } from 'kysely';
import type { Executor } from './schema.js';

/**
 * Points `tag` at the manifest; records history only when the target actually changes. Returns the
 * digest the tag pointed at before, when it moved (that manifest may now be untagged).
 */
export async function setTag(db: Executor, repositoryId: number, tag: string, manifestId: number, digest: string): Promise<{ previous?: string }> {
  const result = await sql<{ previous: string | null }>`
    with old as (
      select m.digest from tags t join manifests m on m.id = t.manifest_id
       where t.repository_id = ${repositoryId} and t.name = ${tag} for update of t)
    insert into tags (repository_id, name, manifest_id) values (${repositoryId}, ${tag}, ${manifestId})
    on conflict (repository_id, name) do update set manifest_id = excluded.manifest_id, updated_at = now()
      where tags.manifest_id <> excluded.manifest_id
    returning (select digest from old) as previous`.execute(db);
  const changed = result.rows[0];
  if (!changed) return {};
  await db.insertInto('tag_history').values({ repository_id: repositoryId, tag, digest }).execute();
  return changed.previous && changed.previous !== digest ? { previous: changed.previous } : {};
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

/**
 * Up to `n` tag names after `last`, in byte order; undefined when the repository does not exist.
 * One round trip, and one JSON value instead of a row per tag: a 1,000-tag page is the common case.
 */
export async function listTags(db: Executor, repository: string, n: number, last: string | undefined): Promise<string[] | undefined> {
  const result = await sql<{ tags: string[] }>`
    select coalesce(
      (select json_agg(t.name order by t.name)
         from (select name from tags
                where repository_id = r.id and name > ${last ?? ''}
                order by name limit ${n}) t),
      '[]'::json) as tags
    from repositories r where r.name = ${repository}`.execute(db);
  return result.rows[0]?.tags;
}

export async function tagsOfManifest(db: Executor, manifestId: number): Promise<string[]> {
  return (await db.selectFrom('tags').select('name').where('manifest_id', '=', manifestId).orderBy('name').execute()).map((r) => r.name);
}
