import type { Kysely } from 'kysely';
import type { ConsumerLag, EventBus } from '../events/index.js';
import { adminCounts, type QueueCounts } from '../metadata/admin-status.js';
import type { Schema } from '../metadata/index.js';

export interface QueueStatus {
  queued: number;
  due: number;
  oldestDue: string | null;
}

/** What GET /_wharf/admin/status answers (docs/api.md). */
export interface AdminStatus {
  gc: { manifestReviews: QueueStatus; blobReviews: QueueStatus; storageDeletions: QueueStatus & { bytes: number } };
  outbox: { unpublished: number; oldestUnpublished: string | null };
  readModels: { catalog: { repositoriesBehind: number } };
  /** Durable consumers this process runs (embedded mode: all of them; an API-only node: none). */
  consumers: ConsumerLag[];
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
const queue = (q: QueueCounts): QueueStatus => ({ queued: q.queued, due: q.due, oldestDue: iso(q.oldestDue) });

/** The operator's view of the background work: gc queues, the outbox, read-model lag. */
export class AdminStatusService {
  constructor(
    private readonly db: Kysely<Schema>,
    private readonly bus: EventBus,
  ) {}

  async status(): Promise<AdminStatus> {
    const [counts, consumers] = await Promise.all([adminCounts(this.db), this.bus.consumerLag?.() ?? Promise.resolve([])]);
    return {
      gc: {
        manifestReviews: queue(counts.gc.manifestReviews),
        blobReviews: queue(counts.gc.blobReviews),
        storageDeletions: { ...queue(counts.gc.storageDeletions), bytes: counts.gc.storageDeletions.bytes },
      },
      outbox: { unpublished: counts.outbox.unpublished, oldestUnpublished: iso(counts.outbox.oldestUnpublished) },
      readModels: { catalog: { repositoriesBehind: counts.catalogBehind } },
      consumers,
    };
  }
}
