import { sql } from 'kysely';
import type { Executor, ManifestListingTable } from './schema.js';

/*
 * Reads behind the listing endpoints. Every page is a keyset range scan: `where key > last order
 * by key limit n`, served by an index, so its cost depends on the page, not on the table.
 */

/** Up to `n` repository names after `last` from the catalog read model, in byte order. */
export async function catalogPage(db: Executor, n: number, last: string | undefined): Promise<string[]> {
  let query = db.selectFrom('catalog_entries').select('name').orderBy('name').limit(n);
  if (last !== undefined) query = query.where('name', '>', last);
  return (await query.execute()).map((r) => r.name);
}

/** Up to `n` path segments directly under `parent` ('' for the root) after `last`. */
export async function namespacePage(db: Executor, parent: string, n: number, last: string | undefined): Promise<string[]> {
  let query = db.selectFrom('namespace_children').select('child').where('parent', '=', parent).orderBy('child').limit(n);
  if (last !== undefined) query = query.where('child', '>', last);
  return (await query.execute()).map((r) => r.child);
}

export interface RepositoryVersion {
  id: number;
  /** repositories.change_seq: moves at the commit of every change (source tables). */
  changeSeq: number;
  /** manifest_listing_state.version: moves when the manifest-lister applies a change (read model). */
  listingVersion: number;
}

/** The repository's id and change numbers, or undefined when no such repository exists. */
export async function repositoryVersion(db: Executor, name: string): Promise<RepositoryVersion | undefined> {
  const row = await db
    .selectFrom('repositories as r')
    .leftJoin('manifest_listing_state as s', 's.repository_id', 'r.id')
    .select(['r.id', 'r.change_seq', 's.version'])
    .where('r.name', '=', name)
    .executeTakeFirst();
  return row && { id: row.id, changeSeq: row.change_seq, listingVersion: row.version ?? 0 };
}

export interface ManifestFilter {
  tagged?: boolean;
  artifactType?: string;
  /** Every pair must be among the manifest's annotations. */
  annotations?: Record<string, string>;
}

/** A listing row as a page returns it: the read-model row without its repository and `tagged` flag. */
export type ManifestListingRow = Omit<ManifestListingTable, 'repository_id' | 'tagged'>;

/** Up to `n` manifest listing rows of the repository after digest `last`, in digest order. */
export async function manifestPage(db: Executor, repositoryId: number, filter: ManifestFilter, n: number, last: string | undefined): Promise<ManifestListingRow[]> {
  let query = db
    .selectFrom('manifest_listing')
    .select(['digest', 'media_type', 'size', 'artifact_type', 'annotations', 'tags', 'pushed_at'])
    .where('repository_id', '=', repositoryId)
    .orderBy('digest')
    .limit(n);
  if (last !== undefined) query = query.where('digest', '>', last);
  if (filter.tagged !== undefined) query = query.where('tagged', '=', filter.tagged);
  if (filter.artifactType !== undefined) query = query.where('artifact_type', '=', filter.artifactType);
  if (filter.annotations !== undefined) query = query.where(sql<boolean>`annotations @> ${JSON.stringify(filter.annotations)}::jsonb`);
  return query.execute();
}

export interface TagDetailRow {
  name: string;
  digest: string;
  created_at: Date;
  updated_at: Date;
}

/** Up to `n` tags of the repository after `last`, in byte order, with their digest and times (source tables). */
export async function tagDetailsPage(db: Executor, repositoryId: number, n: number, last: string | undefined): Promise<TagDetailRow[]> {
  let query = db
    .selectFrom('tags as t')
    .innerJoin('manifests as m', 'm.id', 't.manifest_id')
    .select(['t.name', 'm.digest', 't.created_at', 't.updated_at'])
    .where('t.repository_id', '=', repositoryId)
    .orderBy('t.name')
    .limit(n);
  if (last !== undefined) query = query.where('t.name', '>', last);
  return query.execute();
}

export interface TagHistoryRow {
  id: number;
  digest: string;
  created_at: Date;
}

/** Up to `n` digests the tag pointed to, newest first, older than history entry `before` when given. */
export async function tagHistoryPage(db: Executor, repositoryId: number, tag: string, n: number, before: number | undefined): Promise<TagHistoryRow[]> {
  let query = db.selectFrom('tag_history').select(['id', 'digest', 'created_at']).where('repository_id', '=', repositoryId).where('tag', '=', tag).orderBy('id', 'desc').limit(n);
  if (before !== undefined) query = query.where('id', '<', before);
  return query.execute();
}
