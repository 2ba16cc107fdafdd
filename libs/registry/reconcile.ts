import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { gc, type Schema } from '../metadata/index.js';
import { isForeignLayer, parseManifest } from '../oci/index.js';
import type { BlobStore, UnfinishedUpload } from '../storage/index.js';
import { sweepUnfinishedUploads } from './multipart-sweep.js';

export interface ReconcileOptions {
  /** Delete orphan objects, and forget blobs whose object is gone (so clients upload them again). */
  apply: boolean;
  /** Objects younger than this are never orphans: their metadata may be a moment behind. */
  minAgeSeconds: number;
  onProgress?: (done: number, total: number | undefined) => void;
}

export interface ReconcileReport {
  objects: number;
  bytes: number;
  /** Objects no metadata names (no blob, upload session, or queued deletion). */
  orphans: Array<{ key: string; size: number }>;
  orphanBytes: number;
  /** Blob rows whose object is not in storage. */
  missing: Array<{ digest: string; key: string; manifests: string[] }>;
  /** A manifest naming a config or layer that has no blob (a foreign layer excepted). */
  dangling: Array<{ manifest: string; digest: string }>;
  /** S3 multipart uploads older than minAgeSeconds that no upload session owns (their parts are in no listing). */
  strayUploads: UnfinishedUpload[];
  /** With apply: orphans deleted, stray multipart uploads aborted and missing blobs forgotten. */
  orphansDeleted: number;
  strayUploadsAborted: number;
  blobsForgotten: number;
}

async function objectExists(store: BlobStore, key: string): Promise<boolean> {
  try {
    const stream = await store.read(key);
    stream.destroy();
    return true;
  } catch {
    return false;
  }
}

/**
 * Compares storage with metadata, online. Blob rows are read before the listing and checked
 * again after it, and the keys metadata knows are read after it, so a blob pushed or collected
 * while this runs is neither an orphan nor missing.
 */
export async function reconcile(db: Kysely<Schema>, store: BlobStore, options: ReconcileOptions): Promise<ReconcileReport> {
  const before = new Map<string, { digest: string; key: string }>();
  for (let after = ''; ; ) {
    const page = await gc.blobPage(db, after, 5000);
    for (const row of page) before.set(row.storage_key, { digest: row.digest, key: row.storage_key });
    if (page.length < 5000) break;
    after = page[page.length - 1]!.digest;
  }
  const listed = new Map<string, { belongsTo: string; size: number; modified: Date }>();
  let bytes = 0;
  for await (const object of store.list()) {
    listed.set(object.key, object);
    bytes += object.size;
    if (listed.size % 1000 === 0) options.onProgress?.(listed.size, undefined);
  }
  const known = await gc.knownStorageKeys(db);
  const uploadKeys = new Set((await db.selectFrom('uploads').select('storage_key').execute()).map((r) => r.storage_key));
  const cutoff = Date.now() - options.minAgeSeconds * 1000;

  const orphans: ReconcileReport['orphans'] = [];
  for (const [key, object] of listed) {
    if (object.modified.getTime() > cutoff) continue;
    const owned = key === object.belongsTo ? known.has(key) : uploadKeys.has(object.belongsTo);
    if (!owned) orphans.push({ key, size: object.size });
  }

  const missing: ReconcileReport['missing'] = [];
  for (const [key, blob] of before) {
    if (listed.has(key)) continue;
    const still = await db.selectFrom('blobs').select('storage_key').where('digest', '=', blob.digest).executeTakeFirst();
    if (still?.storage_key !== key || (await objectExists(store, key))) continue;
    missing.push({ digest: blob.digest, key, manifests: await gc.manifestsNaming(db, blob.digest, 10) });
  }

  const strays = await sweepUnfinishedUploads(db, store, { olderThanSeconds: options.minAgeSeconds, apply: options.apply });

  let orphansDeleted = 0;
  let blobsForgotten = 0;
  if (options.apply) {
    for (const orphan of orphans) {
      await store.delete(orphan.key);
      orphansDeleted++;
    }
    for (const m of missing) if (await gc.forgetBlob(db, m.digest, m.key)) blobsForgotten++;
  }
  return {
    dangling: await danglingReferences(db),
    objects: listed.size,
    bytes,
    orphans,
    orphanBytes: orphans.reduce((sum, o) => sum + o.size, 0),
    missing,
    strayUploads: strays.stray,
    orphansDeleted,
    strayUploadsAborted: strays.aborted,
    blobsForgotten,
  };
}

async function danglingReferences(db: Kysely<Schema>): Promise<ReconcileReport['dangling']> {
  const dangling: ReconcileReport['dangling'] = [];
  for (const row of await gc.blobReferencesWithoutBlob(db)) {
    let foreign = false;
    try {
      const parsed = parseManifest(row.payload, row.media_type);
      foreign = parsed.references.some((r) => r.descriptor.digest === row.child_digest && isForeignLayer(r.descriptor));
    } catch {
      // a stored manifest always parsed once; if it no longer does, report the reference
    }
    if (!foreign) dangling.push({ manifest: `${row.repository}@${row.digest}`, digest: row.child_digest });
  }
  return dangling;
}

export interface FsckReport {
  checked: number;
  bytes: number;
  ok: number;
  /** Objects whose bytes do not hash to the blob's digest, or whose size differs. */
  corrupt: Array<{ digest: string; key: string; actual: string; size: number }>;
  /** Blob rows whose object cannot be read. */
  unreadable: Array<{ digest: string; key: string; error: string }>;
}

/** Re-reads blobs (all, or `sample` picked at random) and checks their digests and sizes. */
export async function fsck(
  db: Kysely<Schema>,
  store: BlobStore,
  options: { sample?: number; concurrency?: number; onProgress?: (done: number, total: number) => void },
): Promise<FsckReport> {
  const report: FsckReport = { checked: 0, bytes: 0, ok: 0, corrupt: [], unreadable: [] };
  const rows = options.sample !== undefined ? await gc.sampleBlobs(db, options.sample) : await allBlobs(db);
  let next = 0;
  const check = async (row: { digest: string; size: number; storage_key: string }) => {
    const [algorithm, expectedHex] = row.digest.split(':') as [string, string];
    let hash;
    try {
      hash = createHash(algorithm);
    } catch {
      report.unreadable.push({ digest: row.digest, key: row.storage_key, error: `unsupported algorithm ${algorithm}` });
      return;
    }
    let size = 0;
    try {
      for await (const chunk of await store.read(row.storage_key)) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
    } catch (err) {
      const still = await db.selectFrom('blobs').select('digest').where('digest', '=', row.digest).where('storage_key', '=', row.storage_key).executeTakeFirst();
      if (still) report.unreadable.push({ digest: row.digest, key: row.storage_key, error: (err as Error).message });
      return;
    }
    report.bytes += size;
    const actual = hash.digest('hex');
    if (actual === expectedHex && size === row.size) report.ok++;
    else report.corrupt.push({ digest: row.digest, key: row.storage_key, actual: `${algorithm}:${actual}`, size });
  };
  const worker = async () => {
    while (next < rows.length) {
      const row = rows[next++]!;
      await check(row);
      report.checked++;
      options.onProgress?.(report.checked, rows.length);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
  return report;
}

async function allBlobs(db: Kysely<Schema>) {
  const rows: Array<{ digest: string; size: number; storage_key: string }> = [];
  for (let after = ''; ; ) {
    const page = await gc.blobPage(db, after, 5000);
    rows.push(...page);
    if (page.length < 5000) return rows;
    after = page[page.length - 1]!.digest;
  }
}
