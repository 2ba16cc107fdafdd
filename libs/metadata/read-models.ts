import { sql, type Kysely, type Transaction } from 'kysely';
import type { Schema } from './schema.js';

/*
 * Writes of the listing read models (migrations/0003_listings.sql). Nothing here applies a delta:
 * every function recomputes the affected rows from the source tables through the *_source views,
 * so an event handled twice, late or out of order still leaves the rows equal to the source.
 */

// Advisory lock classes (first key of the two-key form): one worker at a time per repository and model.
const LOCK_CATALOG = 50_301;
const LOCK_LISTING = 50_302;
const LOCK_NAMESPACE = 50_303;

/**
 * Runs `fn` in a REPEATABLE READ transaction while holding a session lock on (lockClass, name).
 * The lock is taken before the transaction so that its snapshot is taken after the previous
 * holder committed: what it reads (the change number included) is one consistent state, never
 * older than what the previous holder wrote.
 */
async function underRepositoryLock<T>(db: Kysely<Schema>, lockClass: number, name: string, fn: (trx: Transaction<Schema>) => Promise<T>): Promise<T> {
  return db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(${lockClass}, hashtext(${name}))`.execute(conn);
    try {
      return await conn.transaction().setIsolationLevel('repeatable read').execute(fn);
    } finally {
      await sql`select pg_advisory_unlock(${lockClass}, hashtext(${name}))`.execute(conn);
    }
  });
}

export type CatalogRefresh = 'present' | 'absent' | 'unchanged';

/**
 * Recomputes the repository's catalog entry. Skipped when the entry was computed at the
 * repository's current change number: nothing it counts changed since (under a burst of pushes
 * into one repository, the first event handled brings the entry up to date for the rest).
 */
export async function refreshCatalogEntry(db: Kysely<Schema>, name: string): Promise<CatalogRefresh> {
  // First without the lock and transaction (one round trip instead of five): a snapshot that
  // shows the entry at the repository's change number holds every change committed before it,
  // the one being handled included, and a refresh under way can only move it later.
  const current = await sql`
    select 1 from repositories r join catalog_entries c on c.repository_id = r.id
     where r.name = ${name} and c.change_seq = r.change_seq`.execute(db);
  if (current.rows.length > 0) return 'unchanged';
  return underRepositoryLock(db, LOCK_CATALOG, name, async (trx) => {
    const current = await sql<{ id: number; change_seq: number; entry_seq: number | null }>`
      select r.id, r.change_seq, c.change_seq as entry_seq
        from repositories r left join catalog_entries c on c.repository_id = r.id
       where r.name = ${name}`.execute(trx);
    const repo = current.rows[0];
    if (repo && repo.entry_seq === repo.change_seq) return 'unchanged';
    await trx
      .deleteFrom('catalog_entries')
      .where((eb) => eb.or([eb('name', '=', name), ...(repo ? [eb('repository_id', '=', repo.id)] : [])]))
      .execute();
    if (!repo) return 'absent';
    const inserted = await sql`insert into catalog_entries select * from catalog_entry_source where repository_id = ${repo.id}`.execute(trx);
    return Number(inserted.numAffectedRows ?? 0) > 0 ? 'present' : 'absent';
  });
}

/** `a/b/c` → its three levels: ('', 'a', 'a'), ('a', 'b', 'a/b'), ('a/b', 'c', 'a/b/c'). */
export function namespaceLevels(name: string): Array<{ parent: string; child: string; path: string }> {
  const parts = name.split('/');
  return parts.map((child, i) => ({ parent: parts.slice(0, i).join('/'), child, path: parts.slice(0, i + 1).join('/') }));
}

/**
 * Makes the tree nodes on the path to `name` match the catalog entries: a node exists while an
 * entry lies at or below its path. Each path is locked (in one global order, so two refreshes
 * cannot deadlock) before it is checked, and the catalog entry was committed before: of two
 * refreshes under one namespace, the second always sees what the first committed.
 */
export async function refreshNamespacePath(db: Kysely<Schema>, name: string): Promise<void> {
  const levels = namespaceLevels(name);
  const parents = levels.map((l) => l.parent);
  const children = levels.map((l) => l.child);
  const paths = levels.map((l) => l.path);
  await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${LOCK_NAMESPACE}, h)
                from (select distinct hashtext(p) as h from unnest(${paths}::text[]) as p order by 1) locks`.execute(trx);
    await sql`
      with level as (
        select l.parent, l.child,
               exists (select 1 from catalog_entries c
                        where c.name = l.path or (c.name > l.path || '/' and c.name < l.path || '0')) as present
          from unnest(${parents}::text[], ${children}::text[], ${paths}::text[]) as l(parent, child, path)
      ),
      added as (
        insert into namespace_children (parent, child)
        select parent, child from level where present
        on conflict do nothing
      )
      delete from namespace_children n using level
       where not level.present and n.parent = level.parent and n.child = level.child`.execute(trx);
  });
}

/** Which manifest rows of a repository an event may have changed. */
export interface ListingChange {
  /** Manifests pushed or deleted. */
  digests: string[];
  /** Tags set or removed: the rows holding them now and their current targets are refreshed too. */
  tags: string[];
  /** Recompute every row of the repository (an event the lister does not know how to narrow). */
  all?: boolean;
}

/** Recomputes the affected manifest listing rows and bumps the listing version (its ETag). Returns false for an unknown repository. */
export async function refreshManifestListing(db: Kysely<Schema>, name: string, change: ListingChange): Promise<boolean> {
  return underRepositoryLock(db, LOCK_LISTING, name, async (trx) => {
    const repo = await trx.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirst();
    // A deleted repository's rows went with it (on delete cascade).
    if (!repo) return false;
    if (change.all) {
      await trx.deleteFrom('manifest_listing').where('repository_id', '=', repo.id).execute();
      await sql`insert into manifest_listing select * from manifest_listing_source where repository_id = ${repo.id}`.execute(trx);
    } else {
      const digests = new Set(change.digests);
      if (change.tags.length > 0) {
        // The row still showing a tag is one the tag pointed to once: its history (never pruned)
        // bounds the search, so a tag event costs O(tag history), not O(repository).
        const tagged = await sql<{ digest: string }>`
          select ml.digest
            from (select distinct digest from tag_history where repository_id = ${repo.id} and tag = any(${change.tags}::text[])) h
            join manifest_listing ml on ml.repository_id = ${repo.id} and ml.digest = h.digest
           where ml.tags && ${change.tags}::text[]
          union
          select m.digest from tags t join manifests m on m.id = t.manifest_id
           where t.repository_id = ${repo.id} and t.name = any(${change.tags}::text[])`.execute(trx);
        for (const row of tagged.rows) digests.add(row.digest);
      }
      if (digests.size > 0) {
        const list = [...digests];
        await trx.deleteFrom('manifest_listing').where('repository_id', '=', repo.id).where('digest', '=', sql<string>`any(${list}::text[])`).execute();
        await sql`insert into manifest_listing select * from manifest_listing_source
                   where repository_id = ${repo.id} and digest = any(${list}::text[])`.execute(trx);
      }
    }
    await sql`insert into manifest_listing_state (repository_id, version) values (${repo.id}, 1)
              on conflict (repository_id) do update set version = manifest_listing_state.version + 1`.execute(trx);
    return true;
  });
}

/**
 * `wharf reindex`: rebuilds every read model from the source tables in one transaction. Readers
 * keep seeing the old rows until it commits; workers wait for it (their writes need the tables'
 * row locks) and then re-apply what happened meanwhile on top.
 */
export async function rebuildReadModels(db: Kysely<Schema>): Promise<{ repositories: number; manifests: number; namespaces: number }> {
  return db.transaction().execute(async (trx) => {
    await sql`lock table catalog_entries, namespace_children, manifest_listing, manifest_listing_state in exclusive mode`.execute(trx);
    await trx.deleteFrom('catalog_entries').execute();
    const repositories = await sql`insert into catalog_entries select * from catalog_entry_source`.execute(trx);
    await trx.deleteFrom('namespace_children').execute();
    const namespaces = await sql`insert into namespace_children select * from namespace_source`.execute(trx);
    await trx.deleteFrom('manifest_listing').execute();
    const manifests = await sql`insert into manifest_listing select * from manifest_listing_source`.execute(trx);
    // Every listing version moves on: a client holding an old ETag fetches again.
    await sql`insert into manifest_listing_state (repository_id, version) select id, 1 from repositories
              on conflict (repository_id) do update set version = manifest_listing_state.version + 1`.execute(trx);
    return {
      repositories: Number(repositories.numAffectedRows ?? 0),
      manifests: Number(manifests.numAffectedRows ?? 0),
      namespaces: Number(namespaces.numAffectedRows ?? 0),
    };
  });
}
