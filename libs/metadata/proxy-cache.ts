import { sql, type ColumnType } from 'kysely';
import type { Executor } from './schema.js';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface ProxyChecksTable {
  repository_id: number;
  ref: string;
  checked_at: Timestamp;
}

export interface ProxyPullsTable {
  repository_id: number;
  kind: 'manifest' | 'blob';
  digest: string;
  upstream: string;
  last_pulled_at: Timestamp;
}

export interface ProxyBlobFillsTable {
  digest: string;
  owner: string;
  started_at: Timestamp;
  heartbeat_at: Timestamp;
}

export interface CachedTag {
  id: number;
  repository_id: number;
  digest: string;
  media_type: string;
  size: number;
  payload?: Buffer;
  /** When the upstream was last asked about the tag; null if never (a tag pushed before the prefix was proxied). */
  checked_at: Date | null;
}

/** The manifest a cached tag points at, with when the upstream last confirmed it. */
export async function findCachedTag(db: Executor, repository: string, tag: string, withPayload: boolean): Promise<CachedTag | undefined> {
  const query = db
    .selectFrom('tags as t')
    .innerJoin('repositories as r', 'r.id', 't.repository_id')
    .innerJoin('manifests as m', 'm.id', 't.manifest_id')
    .leftJoin('proxy_checks as c', (j) => j.onRef('c.repository_id', '=', 't.repository_id').onRef('c.ref', '=', 't.name'))
    .select(['m.id', 'm.repository_id', 'm.digest', 'm.media_type', 'm.size', 'c.checked_at'])
    .where('r.name', '=', repository)
    .where('t.name', '=', tag);
  return (withPayload ? query.select('m.payload') : query).executeTakeFirst() as Promise<CachedTag | undefined>;
}

export async function lastChecked(db: Executor, repositoryId: number, ref: string): Promise<Date | undefined> {
  const row = await db.selectFrom('proxy_checks').select('checked_at').where('repository_id', '=', repositoryId).where('ref', '=', ref).executeTakeFirst();
  return row?.checked_at;
}

export async function markChecked(db: Executor, repositoryId: number, ref: string): Promise<void> {
  await db
    .insertInto('proxy_checks')
    .values({ repository_id: repositoryId, ref })
    .onConflict((oc) => oc.columns(['repository_id', 'ref']).doUpdateSet({ checked_at: sql`now()` }))
    .execute();
}

export async function forgetCheck(db: Executor, repositoryId: number, ref: string): Promise<void> {
  await db.deleteFrom('proxy_checks').where('repository_id', '=', repositoryId).where('ref', '=', ref).execute();
}

/** Records a pull (or the first caching) of a manifest or blob link now. */
export async function touchPull(db: Executor, row: { repository_id: number; kind: 'manifest' | 'blob'; digest: string; upstream: string }): Promise<void> {
  await db
    .insertInto('proxy_pulls')
    .values(row)
    .onConflict((oc) => oc.columns(['repository_id', 'kind', 'digest']).doUpdateSet({ last_pulled_at: sql`now()`, upstream: row.upstream }))
    .execute();
}

/** Same as touchPull, by repository name; nothing when the repository is gone. */
export async function touchPullByName(db: Executor, repository: string, kind: 'manifest' | 'blob', digest: string, upstream: string): Promise<void> {
  await sql`
    insert into proxy_pulls (repository_id, kind, digest, upstream)
    select id, ${kind}, ${digest}, ${upstream} from repositories where name = ${repository}
    on conflict (repository_id, kind, digest) do update set last_pulled_at = now()`.execute(db);
}

/**
 * Takes the fill of `digest` for `owner`: true when no one holds it, or its holder's heartbeat
 * is older than `staleSeconds` (that node is gone). One row per digest: exactly one taker wins.
 */
export async function claimFill(db: Executor, digest: string, owner: string, staleSeconds: number): Promise<boolean> {
  const result = await sql<{ owner: string }>`
    insert into proxy_blob_fills (digest, owner) values (${digest}, ${owner})
    on conflict (digest) do update set owner = excluded.owner, started_at = now(), heartbeat_at = now()
      where proxy_blob_fills.heartbeat_at < now() - make_interval(secs => ${staleSeconds})
    returning owner`.execute(db);
  return result.rows[0]?.owner === owner;
}

export async function heartbeatFill(db: Executor, digest: string, owner: string): Promise<void> {
  await db.updateTable('proxy_blob_fills').set({ heartbeat_at: sql`now()` }).where('digest', '=', digest).where('owner', '=', owner).execute();
}

export async function releaseFill(db: Executor, digest: string, owner: string): Promise<void> {
  await db.deleteFrom('proxy_blob_fills').where('digest', '=', digest).where('owner', '=', owner).execute();
}

/** Seconds since the fill of `digest` last renewed its heartbeat; undefined when no fill is under way. */
export async function fillHeartbeatAge(db: Executor, digest: string): Promise<number | undefined> {
  const row = await db
    .selectFrom('proxy_blob_fills')
    .select(sql<number>`extract(epoch from now() - heartbeat_at)::float8`.as('age'))
    .where('digest', '=', digest)
    .executeTakeFirst();
  return row ? Number(row.age) : undefined;
}

/** The blob row by digest, linked anywhere or nowhere. */
export async function findStoredBlob(db: Executor, digest: string): Promise<{ digest: string; size: number; storage_key: string } | undefined> {
  return db.selectFrom('blobs').select(['digest', 'size', 'storage_key']).where('digest', '=', digest).executeTakeFirst();
}

/** Whether a manifest of the repository names the blob (config or layer): the upstream has it there. */
export async function referencedInRepository(db: Executor, repositoryId: number, digest: string): Promise<boolean> {
  const row = await db
    .selectFrom('manifest_references as mr')
    .innerJoin('manifests as m', 'm.id', 'mr.manifest_id')
    .select('m.id')
    .where('m.repository_id', '=', repositoryId)
    .where('mr.child_digest', '=', digest)
    .where('mr.kind', 'in', ['config', 'layer'])
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

export interface ExpiredEntry {
  repository: string;
  repository_id: number;
  kind: 'manifest' | 'blob';
  digest: string;
}

/** Cached manifests and blob links of `upstream` under `prefix` not pulled for `olderThanSeconds`, oldest first. */
export async function expiredPulls(db: Executor, upstream: string, prefix: string, olderThanSeconds: number, limit: number): Promise<ExpiredEntry[]> {
  return db
    .selectFrom('proxy_pulls as p')
    .innerJoin('repositories as r', 'r.id', 'p.repository_id')
    .select(['r.name as repository', 'p.repository_id', 'p.kind', 'p.digest'])
    .where('p.upstream', '=', upstream)
    .where('r.name', 'like', `${prefix.replace(/[\\%_]/g, '\\$&')}/%`)
    .where('p.last_pulled_at', '<', sql<Date>`now() - make_interval(secs => ${olderThanSeconds})`)
    .orderBy('p.last_pulled_at')
    .limit(limit)
    .execute();
}

export async function forgetPull(db: Executor, repositoryId: number, kind: 'manifest' | 'blob', digest: string): Promise<void> {
  await db.deleteFrom('proxy_pulls').where('repository_id', '=', repositoryId).where('kind', '=', kind).where('digest', '=', digest).execute();
}
