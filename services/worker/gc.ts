import { WakeableSleep } from '../../libs/async/wakeable-sleep.js';
import { parseUpstreams } from '../../libs/config/index.js';
import { gc, proxyCache } from '../../libs/metadata/index.js';
import { counter, gauge } from '../../libs/metrics/index.js';
import { GarbageCollector, ProxyRetention, sweepUnfinishedUploads, type ReviewResult } from '../../libs/registry/index.js';
import type { WorkerContext, WorkerRole } from './role.js';

const decisions = counter({ name: 'wharf_gc_decisions_total', help: 'Garbage collection review decisions', labelNames: ['kind', 'outcome'] });
const bytesReclaimed = counter({ name: 'wharf_gc_bytes_reclaimed_total', help: 'Bytes of storage objects deleted by garbage collection' });
const objectsDeleted = counter({ name: 'wharf_gc_objects_deleted_total', help: 'Storage objects deleted by garbage collection', labelNames: ['reason'] });
const linksRemoved = counter({ name: 'wharf_gc_links_removed_total', help: 'Repository blob links removed because no manifest of the repository referenced them' });
const uploadsExpired = counter({ name: 'wharf_gc_uploads_expired_total', help: 'Upload sessions cancelled after uploads.maxidle without a request' });
const multipartAborted = counter({ name: 'wharf_gc_multipart_uploads_aborted_total', help: 'S3 multipart uploads no upload session owned, aborted by the sweep' });
const queueDepth = gauge({ name: 'wharf_gc_queue_depth', help: 'Rows in each garbage collection queue, due or not', labelNames: ['queue'] });
const oldestDue = gauge({ name: 'wharf_gc_oldest_due_seconds', help: 'How long the oldest due review or deletion has been waiting' });

function count(result: ReviewResult): void {
  decisions.inc({ kind: result.kind, outcome: result.outcome });
  if (result.linksRemoved > 0) linksRemoved.inc(result.linksRemoved);
  if (result.objectsDeleted > 0) {
    objectsDeleted.inc({ reason: 'blob-collected' }, result.objectsDeleted);
    bytesReclaimed.inc(result.bytes);
  }
}

const BURST = 50;

/** Up to BURST decisions of one kind, stopping when none is due or a candidate is busy. */
async function burst(next: () => Promise<ReviewResult | undefined>): Promise<{ decided: number; busy: boolean }> {
  let decided = 0;
  while (decided < BURST) {
    const result = await next();
    if (!result) break;
    count(result);
    decided++;
    if (result.outcome === 'busy') return { decided, busy: true };
  }
  return { decided, busy: false };
}

/**
 * The gc role: `gc.workers` loops decide due manifest reviews, then due blob reviews, polling
 * PostgreSQL when there is nothing due; one housekeeping loop deletes queued storage objects,
 * expires idle uploads and refreshes the queue gauges. Any number of replicas share the queues.
 */
export const gcRole: WorkerRole = {
  name: 'gc',
  async start(context: WorkerContext) {
    const { config, gcPolicy, database, store, logger } = context;
    const collector = new GarbageCollector({
      db: database.db,
      store,
      policy: gcPolicy,
      source: { addr: '', instanceID: config['events.instanceid'] || `gc-${process.pid}` },
      // The relay on this process polls the outbox; a collected manifest's event goes out within its interval.
      outboxWritten: () => {},
      warn: (message, err) => logger.warn({ err }, message),
    });
    const upstreams = parseUpstreams(config['proxy.upstreams']);
    const retention = upstreams.length
      ? new ProxyRetention(
          { db: database.db, policy: gcPolicy, source: { addr: '', instanceID: config['events.instanceid'] || `gc-${process.pid}` }, outboxWritten: () => {} },
          upstreams,
        )
      : undefined;
    const pollMs = config['gc.pollinterval'];
    const naps = new WakeableSleep();
    let running = true;

    const reviewLoop = async () => {
      while (running) {
        try {
          // Manifests first (collecting one schedules its blobs), each kind in bursts: an empty
          // claim costs a round trip, so the loop does not alternate after every decision.
          const manifests = await burst(() => collector.reviewNextManifest());
          const blobs = await burst(() => collector.reviewNextBlob());
          if (manifests.decided + blobs.decided === 0) await naps.sleep(pollMs);
          else if (manifests.busy || blobs.busy) await naps.sleep(Math.min(pollMs, 50));
        } catch (err) {
          logger.warn({ err }, 'gc review pass failed; will retry');
          await naps.sleep(Math.max(pollMs, 1000));
        }
      }
    };

    let nextSweep = 0;
    const sweep = async () => {
      if (Date.now() < nextSweep) return;
      nextSweep = Date.now() + config['gc.sweepinterval'] * 1000;
      const report = await sweepUnfinishedUploads(database.db, store, { olderThanSeconds: config['gc.uploadgrace'], apply: true });
      if (report.aborted > 0) multipartAborted.inc(report.aborted);
      if (report.stray.length > 0) logger.info({ aborted: report.aborted, failed: report.failed }, 'multipart uploads no session owns were aborted');
    };

    const housekeepingLoop = async () => {
      while (running) {
        try {
          await sweep();
          const expired = await collector.expireIdleUploads(config['uploads.maxidle'], 500);
          if (expired > 0) uploadsExpired.inc(expired);
          // Pull-through fills whose node died and that no request took over: their objects join the queue.
          await proxyCache.expireAbandonedFills(database.db, Math.max(4 * config['proxy.filllease'], 60), 100);
          const { deleted } = await collector.deleteQueuedObjects(100);
          // Cached content of a pull-through upstream unpulled past its retention (docs/proxy.md).
          if (retention) await retention.sweep(100);
          for (const d of deleted) {
            objectsDeleted.inc({ reason: d.reason });
            bytesReclaimed.inc(d.size);
          }
          const stats = await gc.queueStats(database.db);
          queueDepth.set({ queue: 'blob' }, stats.blobReviews);
          queueDepth.set({ queue: 'manifest' }, stats.manifestReviews);
          queueDepth.set({ queue: 'storage' }, stats.storageDeletions);
          oldestDue.set(stats.oldestDueSeconds);
          if (expired === 0 && deleted.length < 100) await naps.sleep(Math.max(pollMs, 1000));
        } catch (err) {
          logger.warn({ err }, 'gc housekeeping pass failed; will retry');
          await naps.sleep(Math.max(pollMs, 1000));
        }
      }
    };

    const loops = [housekeepingLoop(), ...Array.from({ length: config['gc.workers'] }, () => reviewLoop())];
    return async () => {
      running = false;
      naps.wake();
      await Promise.allSettled(loops);
    };
  },
};
