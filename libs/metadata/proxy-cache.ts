import { sql, type ColumnType, type Kysely } from 'kysely';
import type { Executor, Schema } from './schema.js';

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
  /** The object the fill writes; named before it exists, so a dead fill's partial object is found. */
  storage_key: string | null;
  storage_state: ColumnType<Record<string, unknown>, string | undefined, string>;
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

export type FillClaim = { stored: { digest: string; size: number; storage_key: string } } | { claimed: boolean };

/**
 * In one statement: the stored blob when the registry has `digest`; otherwise takes its fill for
 * `owner`, writing to `storageKey`, unless someone holds it (claimed: false). One row per digest:
 * exactly one taker wins. A stale fill is taken over with takeOverFill, not here.
 */
export async function claimFillUnlessStored(db: Executor, digest: string, owner: string, storageKey: string, storageState: Record<string, unknown>): Promise<FillClaim> {
  const result = await sql<{ digest: string | null; size: number | null; storage_key: string | null; owner: string | null }>`
    with stored as (select digest, size, storage_key from blobs where digest = ${digest}),
    claim as (
      insert into proxy_blob_fills (digest, owner, storage_key, storage_state)
      select ${digest}, ${owner}, ${storageKey}, ${JSON.stringify(storageState)}::jsonb where not exists (select 1 from stored)
      on conflict (digest) do nothing
      returning owner)
    select s.digest, s.size, s.storage_key, (select owner from claim) as owner
      from (values (1)) as one left join stored s on true`.execute(db);
  const row = result.rows[0]!;
  if (row.digest !== null) return { stored: { digest: row.digest, size: Number(row.size), storage_key: row.storage_key! } };
  return { claimed: row.owner === owner };
}

export type BlobGetClaim = { linked: { digest: string; size: number; storage_key: string } } | { manifest: { digest: string; payload: Buffer } } | FillClaim;

/**
 * A blob GET in a proxied repository, in one round trip: the blob linked there; else the
 * repository's manifest of that digest (readable as a blob); else as claimFillUnlessStored (the
 * stored blob, or the fill taken for `owner` unless someone holds it). Each step runs only when
 * the ones before found nothing.
 */
export async function findOrClaimFill(
  db: Executor,
  repository: string,
  digest: string,
  owner: string,
  storageKey: string,
  storageState: Record<string, unknown>,
): Promise<BlobGetClaim> {
  const result = await sql<{
    linked_size: number | null;
    linked_key: string | null;
    payload: Buffer | null;
    stored_size: number | null;
    stored_key: string | null;
    owner: string | null;
  }>`
    with linked as (
      select b.size, b.storage_key
        from repository_blobs rb join repositories r on r.id = rb.repository_id join blobs b on b.digest = rb.digest
       where r.name = ${repository} and rb.digest = ${digest}),
    manifest as (
      select m.payload from manifests m join repositories r on r.id = m.repository_id
       where r.name = ${repository} and m.digest = ${digest} and not exists (select 1 from linked)),
    stored as (
      select size, storage_key from blobs
       where digest = ${digest} and not exists (select 1 from linked) and not exists (select 1 from manifest)),
    claim as (
      insert into proxy_blob_fills (digest, owner, storage_key, storage_state)
      select ${digest}, ${owner}, ${storageKey}, ${JSON.stringify(storageState)}::jsonb
       where not exists (select 1 from linked) and not exists (select 1 from manifest) and not exists (select 1 from stored)
      on conflict (digest) do nothing
      returning owner)
    select (select size from linked) as linked_size, (select storage_key from linked) as linked_key,
           (select payload from manifest limit 1) as payload,
           (select size from stored) as stored_size, (select storage_key from stored) as stored_key,
           (select owner from claim) as owner`.execute(db);
  const row = result.rows[0]!;
  if (row.linked_key !== null) return { linked: { digest, size: Number(row.linked_size), storage_key: row.linked_key } };
  if (row.payload !== null) return { manifest: { digest, payload: row.payload } };
  if (row.stored_key !== null) return { stored: { digest, size: Number(row.stored_size), storage_key: row.stored_key } };
  return { claimed: row.owner === owner };
}

/**
 * Takes over a fill whose heartbeat is older than `leaseSeconds` (its node died or lost
 * PostgreSQL), and queues the object it was writing for deletion, in one transaction. The row
 * lock waits for an owner committing right now, whose commit removes the row: then there is
 * nothing to take over ('gone'). 'held': the fill is alive after all.
 */
export async function takeOverFill(
  db: Kysely<Schema>,
  digest: string,
  owner: string,
  storageKey: string,
  storageState: Record<string, unknown>,
  leaseSeconds: number,
): Promise<'taken' | 'held' | 'gone'> {
  return db.transaction().execute(async (trx) => {
    const row = await sql<{ storage_key: string | null; storage_state: Record<string, unknown>; stale: boolean }>`
      select storage_key, storage_state, heartbeat_at < now() - make_interval(secs => ${leaseSeconds}) as stale
        from proxy_blob_fills where digest = ${digest} for update`.execute(trx);
    const previous = row.rows[0];
    if (!previous) return 'gone';
    if (!previous.stale) return 'held';
    await trx
      .updateTable('proxy_blob_fills')
      .set({ owner, storage_key: storageKey, storage_state: JSON.stringify(storageState), started_at: sql`now()`, heartbeat_at: sql`now()` })
      .where('digest', '=', digest)
      .execute();
    if (previous.storage_key !== null) await queueUnlessStored(trx, digest, previous.storage_key, previous.storage_state);
    return 'taken';
  });
}

/** Queues a dead fill's object for deletion, unless a blob row serves it (a fill that committed after all must keep its bytes). */
async function queueUnlessStored(trx: Executor, digest: string, storageKey: string, storageState: Record<string, unknown>): Promise<void> {
  await sql`
    insert into gc_storage_deletions (storage_key, storage_state, reason)
    select ${storageKey}, ${JSON.stringify(storageState)}::jsonb, 'proxy-fill-abandoned'
     where not exists (select 1 from blobs where digest = ${digest} and storage_key = ${storageKey})`.execute(trx);
}

/**
 * A claim that waited on the row of a fill being committed wins the row once that commit deleted
 * it, but its statement's snapshot predates the commit, so it missed the blob the commit stored.
 * This statement sees the commit: when the blob is stored now, `owner`'s fresh claim (nothing
 * written yet) is given up and the stored blob returned.
 */
export async function storedSinceClaim(db: Executor, digest: string, owner: string): Promise<{ digest: string; size: number; storage_key: string } | undefined> {
  const result = await sql<{ digest: string; size: number; storage_key: string }>`
    with stored as (select digest, size, storage_key from blobs where digest = ${digest}),
    released as (
      delete from proxy_blob_fills where digest = ${digest} and owner = ${owner} and exists (select 1 from stored))
    select digest, size, storage_key from stored`.execute(db);
  const row = result.rows[0];
  return row && { digest: row.digest, size: Number(row.size), storage_key: row.storage_key };
}

/**
 * Renews the fill's heartbeat and, when given, records the driver state of its upload (an S3
 * multipart upload id), so a takeover can abort it; false when `owner` no longer holds it (it was
 * taken over, or committed).
 */
export async function heartbeatFill(db: Executor, digest: string, owner: string, state?: Record<string, unknown>): Promise<boolean> {
  const result = await db
    .updateTable('proxy_blob_fills')
    .set(state === undefined ? { heartbeat_at: sql`now()` } : { heartbeat_at: sql`now()`, storage_state: JSON.stringify(state) })
    .where('digest', '=', digest)
    .where('owner', '=', owner)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/**
 * Ends `owner`'s fill and queues its object for deletion in one statement (the fill failed);
 * returns the deletion's id, for the caller to finish once it removed the object itself.
 */
export async function releaseFillDiscarding(db: Executor, digest: string, owner: string, reason: string): Promise<number | undefined> {
  const result = await sql<{ id: number }>`
    with gone as (
      delete from proxy_blob_fills where digest = ${digest} and owner = ${owner} and storage_key is not null
      returning storage_key, storage_state)
    insert into gc_storage_deletions (storage_key, storage_state, reason, review_after)
    select storage_key, storage_state, ${reason}, now() + interval '1 minute' from gone
    returning id`.execute(db);
  return result.rows[0]?.id;
}

/**
 * Removes up to `limit` fills whose heartbeat is older than `olderThanSeconds` (their node died and
 * no request for the digest came to take them over) and queues their objects for deletion, in one
 * statement. A fill an owner is committing right now is locked and skipped.
 */
export async function expireAbandonedFills(db: Executor, olderThanSeconds: number, limit: number): Promise<number> {
  const result = await sql<{ id: number }>`
    with gone as (
      delete from proxy_blob_fills where digest in (
        select digest from proxy_blob_fills where heartbeat_at < now() - make_interval(secs => ${olderThanSeconds})
         order by heartbeat_at limit ${limit} for update skip locked)
      returning digest, storage_key, storage_state)
    insert into gc_storage_deletions (storage_key, storage_state, reason)
    select g.storage_key, g.storage_state, 'proxy-fill-abandoned' from gone g
     where g.storage_key is not null and not exists (select 1 from blobs b where b.digest = g.digest and b.storage_key = g.storage_key)
    returning id`.execute(db);
  return result.rows.length;
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

export interface FilledBlob {
  digest: string;
  size: number;
  storage_key: string;
  /** The fill row's owner: nothing is written unless it still holds the fill. */
  owner: string;
  repository: string;
  upstream: string;
  /** Garbage collection review delay for the new blob (gc.uploadgrace). */
  reviewDelaySeconds: number;
  /** The blob push event for the outbox, written with the link. */
  event: { eventId: string; subject: string; payload: unknown };
}

export type FilledBlobCommit =
  | { held: false }
  /** `linked` false: the repository row appeared concurrently, unseen by this statement; the caller links the blob. */
  | { held: true; created: boolean; linked: boolean; deletion: number | undefined };

/**
 * Records a filled blob in one statement (one round trip, no transaction): releases `owner`'s
 * fill, writes the review row and then the blob row (the order garbage collection's locking
 * relies on, docs/gc.md), links the blob in the repository (created if need be), records the
 * pull time and the push event. Each step selects from the one before, so they run in that order
 * and a fill no longer held writes nothing. When the registry already has the digest, the
 * existing row is locked (ON CONFLICT DO UPDATE locks it even though `where false` changes
 * nothing) and this copy's object is queued for deletion.
 */
export async function commitFilledBlob(db: Executor, blob: FilledBlob): Promise<FilledBlobCommit> {
  const result = await sql<{ held: boolean; created: boolean; repository_id: number | null; deletion: number | null }>`
    with fill as (
      delete from proxy_blob_fills where digest = ${blob.digest} and owner = ${blob.owner} returning digest),
    review as (
      insert into gc_blob_reviews (digest, review_after, event)
      select digest, now() + make_interval(secs => ${blob.reviewDelaySeconds}), 'proxy-filled' from fill
      on conflict (digest) do update set review_after = greatest(gc_blob_reviews.review_after, excluded.review_after), event = excluded.event
      returning digest),
    created as (
      insert into blobs (digest, size, storage_key)
      select digest, ${blob.size}::bigint, ${blob.storage_key}::text from review
      on conflict (digest) do update set size = blobs.size where false
      returning digest),
    known_repository as (select id from repositories where name = ${blob.repository}),
    new_repository as (
      insert into repositories (name)
      select ${blob.repository}::text from review where not exists (select 1 from known_repository)
      on conflict (name) do nothing
      returning id),
    repository as (
      select id from known_repository where exists (select 1 from review)
      union all select id from new_repository),
    link as (
      insert into repository_blobs (repository_id, digest)
      select id, ${blob.digest}::text from repository
      on conflict (repository_id, digest) do nothing),
    pulled as (
      insert into proxy_pulls (repository_id, kind, digest, upstream)
      select id, 'blob', ${blob.digest}::text, ${blob.upstream}::text from repository
      on conflict (repository_id, kind, digest) do update set last_pulled_at = now(), upstream = excluded.upstream),
    event as (
      insert into outbox (event_id, subject, payload)
      select ${blob.event.eventId}::uuid, ${blob.event.subject}::text, ${JSON.stringify(blob.event.payload)}::jsonb from repository),
    redundant as (
      insert into gc_storage_deletions (storage_key, storage_state, size, reason, review_after)
      select ${blob.storage_key}::text, '{}'::jsonb, ${blob.size}::bigint, 'redundant-upload', now() + interval '60 seconds'
        from review where not exists (select 1 from created)
      returning id)
    select exists (select 1 from fill) as held, exists (select 1 from created) as created,
           (select id from repository limit 1) as repository_id, (select id from redundant) as deletion`.execute(db);
  const row = result.rows[0]!;
  if (!row.held) return { held: false };
  return { held: true, created: row.created, linked: row.repository_id !== null, deletion: row.deletion ?? undefined };
}
