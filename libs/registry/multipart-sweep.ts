import type { Kysely } from 'kysely';
import { unfinishedUploads, type Schema } from '../metadata/index.js';
import type { BlobStore, UnfinishedUpload } from '../storage/index.js';

export interface SweepOptions {
  /** Multipart uploads younger than this are left alone: their session row may be a moment behind. */
  olderThanSeconds: number;
  /** Abort what no session owns; without it the sweep only reports. */
  apply: boolean;
}

export interface SweepReport {
  /** Multipart uploads in progress in the store. */
  found: number;
  /** Old enough, and owned by no upload session or queued deletion. */
  stray: UnfinishedUpload[];
  aborted: number;
  /** Aborts that failed (the next sweep tries again). */
  failed: number;
}

const PAGE = 500;

/**
 * Finds the store's unfinished multipart uploads that no upload session owns — a crash between
 * CreateMultipartUpload and the session's insert, a retried create, an abort that failed — and
 * aborts them: on AWS their parts cost money and are in no listing of objects. Stores without
 * multipart uploads have nothing to sweep.
 */
export async function sweepUnfinishedUploads(db: Kysely<Schema>, store: BlobStore, options: SweepOptions): Promise<SweepReport> {
  const report: SweepReport = { found: 0, stray: [], aborted: 0, failed: 0 };
  if (!store.listUnfinishedUploads) return report;
  const cutoff = Date.now() - options.olderThanSeconds * 1000;
  let batch: UnfinishedUpload[] = [];
  const check = async () => {
    const owned = await unfinishedUploads.ownedMultipartUploads(db, [...new Set(batch.map((u) => u.key))]);
    for (const upload of batch) {
      if (owned.has(unfinishedUploads.multipartId(upload.key, upload.uploadId))) continue;
      report.stray.push(upload);
      if (!options.apply) continue;
      try {
        await store.abortUnfinishedUpload!(upload.key, upload.uploadId);
        report.aborted++;
      } catch {
        report.failed++;
      }
    }
    batch = [];
  };
  for await (const upload of store.listUnfinishedUploads()) {
    report.found++;
    if (upload.initiated.getTime() > cutoff) continue;
    batch.push(upload);
    if (batch.length >= PAGE) await check();
  }
  await check();
  return report;
}
