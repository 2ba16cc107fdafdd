import { sql } from 'kysely';
import { batches } from './batches.js';
import type { Executor } from './schema.js';

/*
 * Garbage collection queues and the queries its decisions need. The locking rules these rely on
 * are written down in docs/gc.md; in short: a writer that makes something referenced again
 * touches the review row first and then share-locks the row it relies on, while a reviewer
 * claims review rows with SKIP LOCKED and then locks the candidate FOR UPDATE before re-reading
 * its references.
 */

/** The writer of a queued deletion tries it right after committing; the gc worker takes it only if that fails or dies. */
const INLINE_ATTEMPT_SECONDS = 60;

function dueIn(seconds: number) {
  return sql<Date>`now() + make_interval(secs => ${seconds})`;
}

/**
 * Schedules a review of each blob `delaySeconds` from now. An existing review is only ever pushed
 * later, never earlier, and never dropped. Rows are written in digest order so that two writers
 * lock them in the same order.
 */
export async function enqueueBlobReviews(db: Executor, digests: string[], delaySeconds: number, event: string): Promise<void> {
  const sorted = [...new Set(digests)].sort();
  for (const batch of batches(sorted, 3)) {
    await db
      .insertInto('gc_blob_reviews')
      .values(batch.map((digest) => ({ digest, review_after: dueIn(delaySeconds), event })))
      .onConflict((oc) =>
        oc.column('digest').doUpdateSet({
          review_after: sql`greatest(gc_blob_reviews.review_after, excluded.review_after)`,
          event: sql`excluded.event`,
        }),
      )
      .execute();
  }
}

/** Pushes existing blob reviews out to at least `delaySeconds` from now; adds none. */
export async function postponeBlobReviews(db: Executor, digests: string[], delaySeconds: number): Promise<void> {
  const sorted = [...new Set(digests)].sort();
  for (const batch of batches(sorted, 1)) {
    await db
      .updateTable('gc_blob_reviews')
      .set({ review_after: sql`greatest(review_after, ${dueIn(delaySeconds)})` })
      .where('digest', 'in', batch)
      .execute();
  }
}

export async function enqueueManifestReviews(db: Executor, repositoryId: number, digests: string[], delaySeconds: number, event: string): Promise<void> {
  const sorted = [...new Set(digests)].sort();
  for (const batch of batches(sorted, 4)) {
    await db
      .insertInto('gc_manifest_reviews')
      .values(batch.map((digest) => ({ repository_id: repositoryId, digest, review_after: dueIn(delaySeconds), event })))
      .onConflict((oc) =>
        oc.columns(['repository_id', 'digest']).doUpdateSet({
          review_after: sql`greatest(gc_manifest_reviews.review_after, excluded.review_after)`,
          event: sql`excluded.event`,
        }),
      )
      .execute();
  }
}

export interface ClaimedBlobReview {
  digest: string;
  review_count: number;
}

/**
 * Takes one due blob review: deleted in this transaction (a rollback puts it back), and skipped by
 * every other transaction meanwhile. One statement: claiming is the queue's hot path.
 */
export async function claimBlobReview(trx: Executor): Promise<ClaimedBlobReview | undefined> {
  const result = await sql<ClaimedBlobReview>`
    delete from gc_blob_reviews where digest = (
      select digest from gc_blob_reviews where review_after <= now()
       order by review_after limit 1 for update skip locked)
    returning digest, review_count`.execute(trx);
  return result.rows[0];
}

export interface ClaimedManifestReview {
  repository_id: number;
  digest: string;
  review_count: number;
}

export async function claimManifestReview(trx: Executor): Promise<ClaimedManifestReview | undefined> {
  const result = await sql<ClaimedManifestReview>`
    delete from gc_manifest_reviews where (repository_id, digest) = (
      select repository_id, digest from gc_manifest_reviews where review_after <= now()
       order by review_after limit 1 for update skip locked)
    returning repository_id, digest, review_count`.execute(trx);
  return result.rows[0];
}

/**
 * After a failed decision (its claim rolled back, so the row is back): try again `delaySeconds`
 * from now, or later if a writer pushed it further.
 */
export async function retryBlobReview(db: Executor, digest: string, reviewCount: number, delaySeconds: number): Promise<void> {
  await db
    .updateTable('gc_blob_reviews')
    .set({ review_count: reviewCount + 1, review_after: sql`greatest(review_after, ${dueIn(delaySeconds)})` })
    .where('digest', '=', digest)
    .execute();
}

export async function retryManifestReview(db: Executor, repositoryId: number, digest: string, reviewCount: number, delaySeconds: number): Promise<void> {
  await db
    .updateTable('gc_manifest_reviews')
    .set({ review_count: reviewCount + 1, review_after: sql`greatest(review_after, ${dueIn(delaySeconds)})` })
    .where('repository_id', '=', repositoryId)
    .where('digest', '=', digest)
    .execute();
}

export interface LockedBlob {
  digest: string;
  size: number;
  storage_key: string;
}

/** The blob row, locked against every share lock a push takes on it (and against its deletion). */
export async function lockBlobForCollection(trx: Executor, digest: string): Promise<LockedBlob | undefined> {
  return trx.selectFrom('blobs').select(['digest', 'size', 'storage_key']).where('digest', '=', digest).forUpdate().noWait().executeTakeFirst();
}

export interface BlobKeepers {
  /** Every repository link, with whether a manifest of that repository references the blob. */
  links: Array<{ repository_id: number; name: string; referenced: boolean }>;
  /** Whether any manifest of any repository names the digest (config, layer, or child manifest). */
  referencedAnywhere: boolean;
}

/**
 * Locks every repository link of the blob FOR UPDATE NOWAIT (a manifest PUT share-locks the links
 * it relies on), then reads what keeps the blob. The reading is a second statement, run after
 * the lock is granted, so its snapshot holds whatever a push that held a link committed.
 */
export async function lockBlobKeepers(trx: Executor, digest: string): Promise<BlobKeepers> {
  const locked = await trx.selectFrom('repository_blobs').select('repository_id').where('digest', '=', digest).orderBy('repository_id').forUpdate().noWait().execute();
  const ids = locked.map((l) => l.repository_id);
  const result = await sql<{ links: BlobKeepers['links'] | null; anywhere: boolean }>`
    select (select json_agg(json_build_object('repository_id', r.id, 'name', r.name, 'referenced',
                    exists (select 1 from manifest_references mr join manifests m on m.id = mr.manifest_id
                             where m.repository_id = r.id and mr.child_digest = ${digest})))
              from repositories r where r.id = any(${ids}::bigint[])) as links,
           exists (select 1 from manifest_references where child_digest = ${digest}) as anywhere`.execute(trx);
  const row = result.rows[0]!;
  return { links: row.links ?? [], referencedAnywhere: row.anywhere };
}

export async function deleteLink(trx: Executor, repositoryId: number, digest: string): Promise<void> {
  await trx.deleteFrom('repository_blobs').where('repository_id', '=', repositoryId).where('digest', '=', digest).execute();
}

/** Deletes the blob row and queues its object for deletion, in one statement; returns the queue entry. */
export async function deleteBlobQueueingObject(trx: Executor, digest: string): Promise<{ id: number; storage_key: string; size: number } | undefined> {
  const result = await sql<{ id: number; storage_key: string; size: number }>`
    with gone as (delete from blobs where digest = ${digest} returning storage_key, size)
    insert into gc_storage_deletions (storage_key, size, reason, review_after)
    select storage_key, size, 'blob-collected', ${dueIn(INLINE_ATTEMPT_SECONDS)} from gone
    returning id, storage_key, size`.execute(trx);
  return result.rows[0];
}

export interface CollectableManifest {
  id: number;
  digest: string;
  media_type: string;
  size: number;
  subject_digest: string | null;
  tagged: boolean;
  /** An index of the same repository lists it. */
  indexed: boolean;
  /** It is a referrer whose subject is still a manifest of the repository. */
  subject_present: boolean;
}

/** The manifest locked FOR UPDATE, then what keeps it (read after the lock, so a concurrent tag or index PUT is seen). */
export async function lockManifestForCollection(trx: Executor, repositoryId: number, digest: string): Promise<CollectableManifest | undefined> {
  const row = await trx
    .selectFrom('manifests')
    .select(['id', 'digest', 'media_type', 'size', 'subject_digest'])
    .where('repository_id', '=', repositoryId)
    .where('digest', '=', digest)
    .forUpdate()
    .noWait()
    .executeTakeFirst();
  if (!row) return undefined;
  const facts = await sql<{ tagged: boolean; indexed: boolean; subject_present: boolean }>`
    select exists (select 1 from tags where manifest_id = ${row.id}) as tagged,
           exists (select 1 from manifest_references mr join manifests p on p.id = mr.manifest_id
                    where p.repository_id = ${repositoryId} and mr.kind = 'manifest' and mr.child_digest = ${digest}) as indexed,
           ${row.subject_digest}::text is not null and exists (
             select 1 from manifests s where s.repository_id = ${repositoryId} and s.digest = ${row.subject_digest}) as subject_present`.execute(trx);
  return { ...row, ...facts.rows[0]! };
}

/** What the manifest names: blobs (config, layers) and child manifests. */
export async function referencesOf(trx: Executor, manifestId: number): Promise<Array<{ kind: 'config' | 'layer' | 'manifest'; child_digest: string }>> {
  return trx.selectFrom('manifest_references').select(['kind', 'child_digest']).where('manifest_id', '=', manifestId).execute();
}

/** Digests of the repository's manifests whose subject is `subjectDigest`. */
export async function referrerDigests(trx: Executor, repositoryId: number, subjectDigest: string): Promise<string[]> {
  const rows = await trx.selectFrom('manifests').select('digest').where('repository_id', '=', repositoryId).where('subject_digest', '=', subjectDigest).execute();
  return rows.map((r) => r.digest);
}

export interface StorageDeletion {
  id: number;
  storage_key: string;
  storage_state: Record<string, unknown>;
  size: number;
  reason: string;
  review_count: number;
}

/**
 * Records an object to delete; written in the transaction that removed the last metadata naming
 * it. Due after INLINE_ATTEMPT_SECONDS: the writer deletes the object right after its commit and
 * then removes this row, so the gc worker does not delete (and count) it a second time.
 */
export async function queueStorageDeletion(trx: Executor, entry: { storage_key: string; storage_state?: Record<string, unknown>; size?: number; reason: string }): Promise<number> {
  const row = await trx
    .insertInto('gc_storage_deletions')
    .values({
      storage_key: entry.storage_key,
      storage_state: JSON.stringify(entry.storage_state ?? {}),
      size: entry.size ?? 0,
      reason: entry.reason,
      review_after: dueIn(INLINE_ATTEMPT_SECONDS),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/**
 * Leases up to `limit` due deletions for `leaseSeconds`: another worker will not take them unless
 * this one dies before finishing. Nothing stays locked while the objects are deleted.
 */
export async function leaseStorageDeletions(db: Executor, limit: number, leaseSeconds: number): Promise<StorageDeletion[]> {
  const result = await sql<StorageDeletion>`
    update gc_storage_deletions d
       set review_after = now() + make_interval(secs => ${leaseSeconds}), review_count = d.review_count + 1
     where d.id in (select id from gc_storage_deletions where review_after <= now()
                     order by review_after limit ${limit} for update skip locked)
    returning d.id, d.storage_key, d.storage_state, d.size, d.reason, d.review_count`.execute(db);
  return result.rows;
}

export async function finishStorageDeletion(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('gc_storage_deletions').where('id', '=', id).execute();
}

export async function retryStorageDeletion(db: Executor, id: number, delaySeconds: number): Promise<void> {
  await db
    .updateTable('gc_storage_deletions')
    .set({ review_after: dueIn(delaySeconds) })
    .where('id', '=', id)
    .execute();
}

export interface QueueStats {
  blobReviews: number;
  manifestReviews: number;
  storageDeletions: number;
  /** Seconds the oldest due review has been waiting (0 when none is due). */
  oldestDueSeconds: number;
}

export async function queueStats(db: Executor): Promise<QueueStats> {
  const result = await sql<{ blobs: number; manifests: number; deletions: number; oldest: number | null }>`
    select (select count(*)::int from gc_blob_reviews) as blobs,
           (select count(*)::int from gc_manifest_reviews) as manifests,
           (select count(*)::int from gc_storage_deletions) as deletions,
           extract(epoch from now() - least(
             (select min(review_after) from gc_blob_reviews where review_after <= now()),
             (select min(review_after) from gc_manifest_reviews where review_after <= now()),
             (select min(review_after) from gc_storage_deletions where review_after <= now())))::float8 as oldest`.execute(db);
  const row = result.rows[0]!;
  return { blobReviews: row.blobs, manifestReviews: row.manifests, storageDeletions: row.deletions, oldestDueSeconds: Math.max(0, row.oldest ?? 0) };
}
