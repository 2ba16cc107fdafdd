// `wharf gc`: storage compared with metadata, run next to a live registry (not the online collector).
import type { Kysely } from 'kysely';
import { inventory, type Schema } from '../../libs/metadata/index.js';
import { isForeignLayer, parseManifest } from '../../libs/oci/index.js';
import { sweepUnfinishedUploads } from '../../libs/registry/index.js';
import type { BlobStore, UnfinishedUpload } from '../../libs/storage/index.js';

export interface ReconcileOptions {
  /** Delete orphan objects, and forget blobs whose object is gone (so clients upload them again). */
  apply: boolean;
  /** Objects younger than this are never orphans: their metadata may be a moment behind. */
  minAgeSeconds: number;
  onProgress?: (done: number, total: number | undefined) => void;
  /** Pull-through cache prefixes: their manifests name blobs fetched only when first pulled, which is not dangling. */
  proxiedPrefixes?: string[];
}

export interface ReconcileReport {
  objects: number;
  bytes: number;
  /** Objects no metadata names (no blob, upload session, queued deletion, or pull-through fill under way). */
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
  const before = new Map((await inventory.allBlobs(db)).map((row) => [row.storage_key, { digest: row.digest, key: row.storage_key }]));
  const listed = new Map<string, { belongsTo: string; size: number; modified: Date }>();
  let bytes = 0;
  for await (const object of store.list()) {
    listed.set(object.key, object);
    bytes += object.size;
    if (listed.size % 1000 === 0) options.onProgress?.(listed.size, undefined);
  }
  const known = await inventory.knownStorageKeys(db);
  const uploadKeys = await inventory.uploadStorageKeys(db);
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
    if ((await inventory.blobStorageKey(db, blob.digest)) !== key || (await objectExists(store, key))) continue;
    missing.push({ digest: blob.digest, key, manifests: await inventory.manifestsNaming(db, blob.digest, 10) });
  }

  const strays = await sweepUnfinishedUploads(db, store, { olderThanSeconds: options.minAgeSeconds, apply: options.apply });

  let orphansDeleted = 0;
  let blobsForgotten = 0;
  if (options.apply) {
    for (const orphan of orphans) {
      await store.delete(orphan.key);
      orphansDeleted++;
    }
    for (const m of missing) if (await inventory.forgetBlob(db, m.digest, m.key)) blobsForgotten++;
  }
  return {
    dangling: await danglingReferences(db, options.proxiedPrefixes ?? []),
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

async function danglingReferences(db: Kysely<Schema>, proxiedPrefixes: string[]): Promise<ReconcileReport['dangling']> {
  const dangling: ReconcileReport['dangling'] = [];
  for (const row of await inventory.blobReferencesWithoutBlob(db)) {
    if (proxiedPrefixes.some((p) => row.repository.startsWith(`${p}/`))) continue;
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
