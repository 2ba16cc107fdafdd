import type { Kysely } from 'kysely';
import { Subjects, type EventSource } from '../events/index.js';
import { gc, manifests, repositories, uploads, type Schema } from '../metadata/index.js';
import type { BlobStore } from '../storage/index.js';
import type { RequestContext } from './context.js';
import { recordEvents } from './event-log.js';
import { reviewWhatManifestKept } from './gc-enqueue.js';
import type { GcPolicy } from './gc-policy.js';

export type Outcome = 'deleted' | 'kept' | 'gone' | 'busy' | 'failed';

export interface ReviewResult {
  kind: 'blob' | 'manifest';
  outcome: Outcome;
  /** Blob bytes whose metadata went (the object follows). */
  bytes: number;
  /** Repository links removed because no manifest of that repository referenced the blob. */
  linksRemoved: number;
  /** Storage objects deleted right after the decision. */
  objectsDeleted: number;
}

export interface GarbageCollectorDeps {
  db: Kysely<Schema>;
  store: BlobStore;
  policy: GcPolicy;
  source: EventSource;
  outboxWritten: () => void;
  warn: (message: string, err: unknown) => void;
}

const LOCK_NOT_AVAILABLE = '55P03';
/** A candidate a push holds right now is looked at again this soon. */
const BUSY_RETRY_SECONDS = 1;

/** Seconds before retry number `count` (1, 2, ...) of a failed decision or deletion: 5 s doubling, at most an hour. */
export function backoffSeconds(count: number): number {
  return Math.min(3600, 5 * 2 ** Math.min(Math.max(count - 1, 0), 10));
}

class Busy extends Error {}

/**
 * Decides reviews one at a time, each in one transaction: claim the due review (SKIP LOCKED, so
 * replicas share the queue), lock the candidate FOR UPDATE NOWAIT (a push holding it wins, and
 * the review comes back a second later; the collector never waits for a push, so it can never
 * deadlock with one), re-read what references it, then delete or keep. docs/gc.md has the rules.
 */
export class GarbageCollector {
  private readonly context: RequestContext;

  constructor(private readonly deps: GarbageCollectorDeps) {
    this.context = {
      request: { id: '', addr: '', host: '', method: '', useragent: 'wharf-gc' },
      actor: { name: 'wharf-gc' },
      source: deps.source,
      urlBase: '',
    };
  }

  /** Decides the next due manifest review; undefined when none is due. */
  async reviewNextManifest(): Promise<ReviewResult | undefined> {
    let claimed: gc.ClaimedManifestReview | undefined;
    const result = (extra: Partial<ReviewResult> & { outcome: Outcome }): ReviewResult => ({ kind: 'manifest', bytes: 0, linksRemoved: 0, objectsDeleted: 0, ...extra });
    try {
      const outcome = await this.deps.db.transaction().execute(async (trx) => {
        claimed = await gc.claimManifestReview(trx);
        if (!claimed) return undefined;
        const { repository_id: repositoryId, digest } = claimed;
        const manifest = await lockOrBusy(() => gc.lockManifestForCollection(trx, repositoryId, digest));
        if (!manifest) return 'gone' as const;
        if (manifest.tagged || manifest.indexed) return 'kept' as const;
        if (manifest.subject_digest !== null) {
          // A referrer lives as long as its subject; once the subject is gone, it goes too.
          if (manifest.subject_present) return 'kept' as const;
        } else if (this.deps.policy.untaggedDeleteAfterSeconds === null) {
          return 'kept' as const;
        }
        const locked = await manifests.lockManifestForDelete(trx, repositoryId, digest);
        if (!locked) return 'gone' as const;
        await reviewWhatManifestKept(trx, this.deps.policy, repositoryId, locked);
        await manifests.deleteLockedManifest(trx, locked.id);
        const repository = await repositories.repositoryName(trx, repositoryId);
        await recordEvents(trx, this.context, [
          {
            subject: Subjects.manifestDelete,
            action: 'delete',
            target: { repository, digest, mediaType: manifest.media_type, size: manifest.size },
          },
        ]);
        return 'deleted' as const;
      });
      if (outcome === undefined) return undefined;
      if (outcome === 'deleted') this.deps.outboxWritten();
      return result({ outcome });
    } catch (err) {
      if (!claimed) throw err;
      const busy = err instanceof Busy;
      if (!busy) this.deps.warn(`gc review of manifest ${claimed.digest} failed; will retry`, err);
      await gc.retryManifestReview(this.deps.db, claimed.repository_id, claimed.digest, claimed.review_count, busy ? BUSY_RETRY_SECONDS : backoffSeconds(claimed.review_count + 1));
      return result({ outcome: busy ? 'busy' : 'failed' });
    }
  }

  /** Decides the next due blob review; undefined when none is due. */
  async reviewNextBlob(): Promise<ReviewResult | undefined> {
    let claimed: gc.ClaimedBlobReview | undefined;
    try {
      const decided = await this.deps.db.transaction().execute(async (trx) => {
        claimed = await gc.claimBlobReview(trx);
        if (!claimed) return undefined;
        const { digest } = claimed;
        const blob = await lockOrBusy(() => gc.lockBlobForCollection(trx, digest));
        if (!blob) return { outcome: 'gone' as const, linksRemoved: 0 };
        const { links, referencedAnywhere } = await lockOrBusy(() => gc.lockBlobKeepers(trx, digest));
        const unreferenced = links.filter((l) => !l.referenced);
        for (const link of unreferenced) await gc.deleteLink(trx, link.repository_id, digest);
        if (unreferenced.length > 0) {
          await recordEvents(
            trx,
            this.context,
            unreferenced.map((l) => ({ subject: Subjects.blobDelete, action: 'delete' as const, target: { repository: l.name, digest } })),
          );
        }
        const linksRemoved = unreferenced.length;
        if (links.some((l) => l.referenced) || referencedAnywhere) return { outcome: 'kept' as const, linksRemoved };
        const deletion = await gc.deleteBlobQueueingObject(trx, digest);
        if (!deletion) throw new Error(`blob ${digest} vanished under its FOR UPDATE lock`);
        return { outcome: 'deleted' as const, linksRemoved, blob, deletion: deletion.id };
      });
      if (decided === undefined) return undefined;
      if (decided.linksRemoved > 0) this.deps.outboxWritten();
      let objectsDeleted = 0;
      if (decided.outcome === 'deleted') {
        // Metadata is gone and committed; the object follows now, or from the queue if this fails.
        if (await this.deleteObject(decided.deletion, decided.blob.storage_key, {})) objectsDeleted = 1;
      }
      return {
        kind: 'blob',
        outcome: decided.outcome,
        bytes: decided.outcome === 'deleted' ? decided.blob.size : 0,
        linksRemoved: decided.linksRemoved,
        objectsDeleted,
      };
    } catch (err) {
      if (!claimed) throw err;
      const busy = err instanceof Busy;
      if (!busy) this.deps.warn(`gc review of blob ${claimed.digest} failed; will retry`, err);
      await gc.retryBlobReview(this.deps.db, claimed.digest, claimed.review_count, busy ? BUSY_RETRY_SECONDS : backoffSeconds(claimed.review_count + 1));
      return { kind: 'blob', outcome: busy ? 'busy' : 'failed', bytes: 0, linksRemoved: 0, objectsDeleted: 0 };
    }
  }

  /** Deletes up to `limit` queued storage objects (collected blobs, abandoned uploads); failures come back with backoff. */
  async deleteQueuedObjects(limit: number): Promise<{ deleted: Array<{ reason: string; size: number }>; failed: number }> {
    const due = await gc.leaseStorageDeletions(this.deps.db, limit, 300);
    const deleted: Array<{ reason: string; size: number }> = [];
    let failed = 0;
    await Promise.all(
      due.map(async (entry) => {
        if (await this.deleteObject(entry.id, entry.storage_key, entry.storage_state, entry.review_count)) deleted.push({ reason: entry.reason, size: entry.size });
        else failed++;
      }),
    );
    return { deleted, failed };
  }

  /** Cancels upload sessions idle for `maxIdleSeconds`; their objects join the deletion queue. */
  async expireIdleUploads(maxIdleSeconds: number, limit: number): Promise<number> {
    return uploads.expireIdleUploads(this.deps.db, maxIdleSeconds, limit);
  }

  private async deleteObject(id: number, key: string, state: Record<string, unknown>, attempts = 0): Promise<boolean> {
    try {
      // abortUpload also drops a multipart upload and its tail objects when the state names them.
      await this.deps.store.abortUpload(key, state);
      await gc.finishStorageDeletion(this.deps.db, id);
      return true;
    } catch (err) {
      this.deps.warn(`storage object ${key} not deleted; will retry`, err);
      await gc.retryStorageDeletion(this.deps.db, id, backoffSeconds(attempts + 1)).catch(() => {});
      return false;
    }
  }
}

async function lockOrBusy<T>(lock: () => Promise<T>): Promise<T> {
  try {
    return await lock();
  } catch (err) {
    if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) throw new Busy();
    throw err;
  }
}
