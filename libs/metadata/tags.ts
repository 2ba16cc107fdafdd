import { sql } from 'kysely';
import type { Executor } from './schema.js';

/**
 * Points `tag` at the manifest; records history only when the target actually changes. Returns the
 * digest the tag pointed at before, when it moved (that manifest may now be untagged).
 */
export async function setTag(db: Executor, repositoryId: number, tag: string, manifestId: number, digest: string): Promise<{ previous?: string }> {
  // The history row is written by the same statement, only when the tag changed: one round trip.
  const result = await sql<{ previous: string | null }>`
    with old as (
      select m.digest from tags t join manifests m on m.id = t.manifest_id
       where t.repository_id = ${repositoryId} and t.name = ${tag} for update of t),
    changed as (
      insert into tags (repository_id, name, manifest_id) values (${repositoryId}, ${tag}, ${manifestId})
      on conflict (repository_id, name) do update set manifest_id = excluded.manifest_id, updated_at = now()
        where tags.manifest_id <> excluded.manifest_id
      returning 1),
    history as (
      insert into tag_history (repository_id, tag, digest) select ${repositoryId}, ${tag}, ${digest} from changed)
    select (select digest from old) as previous from changed`.execute(db);
  const changed = result.rows[0];
  if (!changed) return {};
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
 * Up to `n` tag names after `last`, in byte order, as the text of a JSON array (`["a","b"]`), with
 * the page's last name when more follow; undefined when the repository does not exist.
 *
 * A 1,000-tag page is the common case, so the array is built by PostgreSQL in one round trip and
 * passed through as text: no row per tag and no JSON parse and re-serialisation in Node. Tag names
 * are checked against the spec grammar (`[A-Za-z0-9_][A-Za-z0-9._-]*`) before they are stored,
 * so they need no JSON escaping. The aggregate's `order by` is free on PostgreSQL 16+, whose
 * planner sees that the limited index walk is already in order.
 */
export async function listTagsJson(db: Executor, repository: string, n: number, last: string | undefined): Promise<{ json: string; next?: string } | undefined> {
  const result = await sql<{ names: string | null; count: string | number | null }>`
    select p.names, p.count
      from repositories r
      left join lateral (
        select string_agg(t.name, '","' order by t.name) as names, count(*) as count
          from (select name from tags
                 where repository_id = r.id and name > ${last ?? ''}
                 order by name limit ${n + 1}) t
      ) p on true
     where r.name = ${repository}`.execute(db);
  const row = result.rows[0];
  if (!row) return undefined;
  if (n === 0) return { json: '[]' };
  let names = row.names ?? '';
  if (Number(row.count) <= n) return { json: names === '' ? '[]' : `["${names}"]` };
  names = names.slice(0, names.lastIndexOf('","')); // drop the look-ahead name
  const cut = names.lastIndexOf('","');
  return { json: names === '' ? '[]' : `["${names}"]`, next: names.slice(cut < 0 ? 0 : cut + 3) };
}
