import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Executor, Schema } from './schema.js';

// The inventory of what metadata knows, for the checks that compare it with storage
// (`wharf gc`, the reconcile; `wharf fsck`). Not the online collector's queues: those are gc.ts.

/** Every storage key metadata knows of: blobs, upload sessions, objects queued for deletion, and pull-through fills under way. */
export async function knownStorageKeys(db: Executor): Promise<Set<string>> {
  const result = await sql<{ k: string }>`
    select storage_key as k from blobs
    union all select storage_key from uploads
    union all select storage_key from gc_storage_deletions
    union all select storage_key from proxy_blob_fills where storage_key is not null`.execute(db);
  return new Set(result.rows.map((r) => r.k));
}

/** Blob rows in digest order, a page at a time. */
async function blobPage(db: Executor, after: string, limit: number): Promise<Array<{ digest: string; size: number; storage_key: string }>> {
  return db.selectFrom('blobs').select(['digest', 'size', 'storage_key']).where('digest', '>', after).orderBy('digest').limit(limit).execute();
}

/** `n` blob rows picked at random (fsck --sample). */
export async function sampleBlobs(db: Executor, n: number): Promise<Array<{ digest: string; size: number; storage_key: string }>> {
  return db.selectFrom('blobs').select(['digest', 'size', 'storage_key']).orderBy(sql`random()`).limit(n).execute();
}

/** For `wharf gc --apply` on a blob whose object is gone: drop its links and row so a client uploads it again. */
export async function forgetBlob(db: Kysely<Schema>, digest: string, storageKey: string): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const row = await trx.selectFrom('blobs').select('storage_key').where('digest', '=', digest).forUpdate().executeTakeFirst();
    if (!row || row.storage_key !== storageKey) return false;
    await trx.deleteFrom('repository_blobs').where('digest', '=', digest).execute();
    await trx.deleteFrom('blobs').where('digest', '=', digest).execute();
    return true;
  });
}

/**
 * Config and layer references with no blob row, with the manifest that makes them: candidates for
 * "a manifest names a deleted blob" (foreign layers are legitimately absent; the caller checks).
 */
export async function blobReferencesWithoutBlob(db: Executor): Promise<Array<{ repository: string; digest: string; media_type: string; payload: Buffer; child_digest: string }>> {
  const result = await sql<{ repository: string; digest: string; media_type: string; payload: Buffer; child_digest: string }>`
    select r.name as repository, m.digest, m.media_type, m.payload, mr.child_digest
      from manifest_references mr join manifests m on m.id = mr.manifest_id join repositories r on r.id = m.repository_id
     where mr.kind in ('config', 'layer') and not exists (select 1 from blobs b where b.digest = mr.child_digest)
     order by r.name, m.digest`.execute(db);
  return result.rows;
}

/** Manifests that name the digest, as repository@digest (for reports). */
export async function manifestsNaming(db: Executor, digest: string, limit: number): Promise<string[]> {
  const result = await sql<{ ref: string }>`
    select r.name || '@' || m.digest as ref from manifest_references mr
      join manifests m on m.id = mr.manifest_id join repositories r on r.id = m.repository_id
     where mr.child_digest = ${digest} order by 1 limit ${limit}`.execute(db);
  return result.rows.map((r) => r.ref);
}

/** Storage keys of upload sessions in progress (their parts and tails belong to them). */
export async function uploadStorageKeys(db: Executor): Promise<Set<string>> {
  return new Set((await db.selectFrom('uploads').select('storage_key').execute()).map((r) => r.storage_key));
}

/** The blob's storage key now, or undefined when the blob is gone. */
export async function blobStorageKey(db: Executor, digest: string): Promise<string | undefined> {
  return (await db.selectFrom('blobs').select('storage_key').where('digest', '=', digest).executeTakeFirst())?.storage_key;
}

/** Every blob row, read a page at a time in digest order. */
export async function allBlobs(db: Executor): Promise<Array<{ digest: string; size: number; storage_key: string }>> {
  const rows: Array<{ digest: string; size: number; storage_key: string }> = [];
  for (let after = ''; ; ) {
    const page = await blobPage(db, after, 5000);
    rows.push(...page);
    if (page.length < 5000) return rows;
    after = page[page.length - 1]!.digest;
  }
}
