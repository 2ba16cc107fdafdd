import type { Kysely } from 'kysely';
import { Subjects, type EventSource } from '../../events/index.js';
import { blobs, gc, manifests, proxyCache, type Schema } from '../../metadata/index.js';
import type { RequestContext } from '../context.js';
import { recordEvents } from '../event-log.js';
import { reviewWhatManifestKept } from '../gc-enqueue.js';
import type { GcPolicy } from '../gc-policy.js';
import { proxyMetrics } from './metrics.js';
import type { UpstreamSettings } from './upstreams.js';

export interface RetentionDeps {
  db: Kysely<Schema>;
  policy: GcPolicy;
  source: EventSource;
  outboxWritten: () => void;
}

/**
 * Retention of cached content (an upstream's `retention`): a cached manifest nobody pulled for
 * that long is deleted with its tags, as a DELETE by digest would (its blobs, children and
 * referrers are then reviewed by garbage collection as usual); a cached blob link nobody pulled
 * and no remaining manifest of the repository names is removed, and the blob reviewed. The
 * events name `wharf-gc` as actor, as the collector's do.
 */
export class ProxyRetention {
  constructor(
    private readonly deps: RetentionDeps,
    private readonly upstreams: UpstreamSettings[],
  ) {}

  /** One pass over at most `limit` expired entries per upstream; returns how many were removed. */
  async sweep(limit: number): Promise<number> {
    let removed = 0;
    for (const upstream of this.upstreams) {
      if (upstream.retentionMs <= 0) continue;
      const due = await proxyCache.expiredPulls(this.deps.db, upstream.name, upstream.prefix, upstream.retentionMs / 1000, limit);
      for (const entry of due) {
        const gone = entry.kind === 'manifest' ? await this.expireManifest(entry) : await this.expireBlobLink(entry);
        if (gone) {
          removed++;
          proxyMetrics.expired.inc({ upstream: upstream.name, kind: entry.kind });
        }
      }
    }
    if (removed > 0) this.deps.outboxWritten();
    return removed;
  }

  private context(): RequestContext {
    return { urlBase: '', request: { id: '', addr: '', host: '', method: 'DELETE', useragent: 'wharf-gc' }, actor: { name: 'wharf-gc' }, source: this.deps.source };
  }

  private async expireManifest(entry: proxyCache.ExpiredEntry): Promise<boolean> {
    const { repository, repository_id: repositoryId, digest } = entry;
    return this.deps.db.transaction().execute(async (trx) => {
      await proxyCache.forgetPull(trx, repositoryId, 'manifest', digest);
      const locked = await manifests.lockManifestForDelete(trx, repositoryId, digest);
      if (!locked) return false;
      // Before the delete: its references go with it.
      await reviewWhatManifestKept(trx, this.deps.policy, repositoryId, locked);
      const removed = { ...locked, tags: await manifests.deleteLockedManifest(trx, locked.id) };
      await recordEvents(trx, this.context(), [
        { subject: Subjects.manifestDelete, action: 'delete', target: { repository, digest, mediaType: removed.media_type, size: removed.size } },
        ...removed.tags.map((tag) => ({ subject: Subjects.tagDelete, action: 'delete' as const, target: { repository, tag, digest, mediaType: removed.media_type } })),
      ]);
      return true;
    });
  }

  private async expireBlobLink(entry: proxyCache.ExpiredEntry): Promise<boolean> {
    const { repository, repository_id: repositoryId, digest } = entry;
    return this.deps.db.transaction().execute(async (trx) => {
      await proxyCache.forgetPull(trx, repositoryId, 'blob', digest);
      // Still named by a cached manifest: the link goes when that manifest does (its deletion reviews the blob).
      if (await proxyCache.referencedInRepository(trx, repositoryId, digest)) return false;
      await gc.enqueueBlobReviews(trx, [digest], this.deps.policy.graceSeconds, 'proxy-retention');
      if (!(await blobs.unlinkBlob(trx, repositoryId, digest))) return false;
      await recordEvents(trx, this.context(), [{ subject: Subjects.blobDelete, action: 'delete', target: { digest, repository } }]);
      return true;
    });
  }
}
