import { sql } from 'kysely';
import type { Executor } from './schema.js';

/** One garbage-collection queue: rows waiting, rows already due, the oldest due time. */
export interface QueueCounts {
  queued: number;
  due: number;
  oldestDue: Date | null;
}

export interface AdminCounts {
  gc: { manifestReviews: QueueCounts; blobReviews: QueueCounts; storageDeletions: QueueCounts & { bytes: number } };
  outbox: { unpublished: number; oldestUnpublished: Date | null };
  /** Repositories holding manifests whose catalog entry is missing or computed at an older change number. */
  catalogBehind: number;
}

/**
 * What GET /_wharf/admin/status shows, in one round trip: the gc queues, the outbox not yet
 * published, and how far the catalog read model is behind the source tables. The catalog count
 * reads every repository row (one index scan per table), so it costs O(repositories): fine for an
 * operator's page, not for a probe polled every second.
 */
export async function adminCounts(db: Executor): Promise<AdminCounts> {
  const row = (
    await sql<{
      mr_queued: number;
      mr_due: number;
      mr_oldest: Date | null;
      br_queued: number;
      br_due: number;
      br_oldest: Date | null;
      sd_queued: number;
      sd_due: number;
      sd_oldest: Date | null;
      sd_bytes: number;
      ob_unpublished: number;
      ob_oldest: Date | null;
      catalog_behind: number;
    }>`
      select mr.*, br.*, sd.*, ob.*, cb.*
        from (select count(*)::int as mr_queued, count(*) filter (where review_after <= now())::int as mr_due,
                     min(review_after) filter (where review_after <= now()) as mr_oldest from gc_manifest_reviews) mr,
             (select count(*)::int as br_queued, count(*) filter (where review_after <= now())::int as br_due,
                     min(review_after) filter (where review_after <= now()) as br_oldest from gc_blob_reviews) br,
             (select count(*)::int as sd_queued, count(*) filter (where review_after <= now())::int as sd_due,
                     min(review_after) filter (where review_after <= now()) as sd_oldest, coalesce(sum(size), 0)::bigint as sd_bytes
                from gc_storage_deletions) sd,
             (select count(*)::int as ob_unpublished, min(created_at) as ob_oldest from outbox where published_at is null) ob,
             (select count(*)::int as catalog_behind
                from repositories r left join catalog_entries c on c.repository_id = r.id
               where c.change_seq is distinct from r.change_seq
                 and (c.repository_id is not null or exists (select 1 from manifests m where m.repository_id = r.id))) cb`.execute(db)
  ).rows[0]!;
  return {
    gc: {
      manifestReviews: { queued: row.mr_queued, due: row.mr_due, oldestDue: row.mr_oldest },
      blobReviews: { queued: row.br_queued, due: row.br_due, oldestDue: row.br_oldest },
      storageDeletions: { queued: row.sd_queued, due: row.sd_due, oldestDue: row.sd_oldest, bytes: Number(row.sd_bytes) },
    },
    outbox: { unpublished: row.ob_unpublished, oldestUnpublished: row.ob_oldest },
    catalogBehind: row.catalog_behind,
  };
}
