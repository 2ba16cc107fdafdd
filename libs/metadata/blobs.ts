import { sql } from 'kysely';
import type { Executor } from './schema.js';
import { batches } from './batches.js';

export interface StoredBlob {
  digest: string;
  size: number;
  storage_key: string;
}

/** The blob if it is linked in the named repository. */
export async function findLinkedBlob(db: Executor, repository: string, digest: string): Promise<StoredBlob | undefined> {
  return db
    .selectFrom('repository_blobs as rb')
    .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
    .innerJoin('blobs as b', 'b.digest', 'rb.digest')
    .select(['b.digest', 'b.size', 'b.storage_key'])
    .where('r.name', '=', repository)
    .where('rb.digest', '=', digest)
    .executeTakeFirst();
}

/** What a blob GET of `digest` in a repository finds: the linked blob, or a manifest of the repository (readable as a blob, as in Distribution). */
export type BlobOrManifest = { blob: StoredBlob } | { manifest: { digest: string; payload: Buffer } };

/**
 * findLinkedBlob, and only when nothing is linked the repository's manifest of that digest, in
 * one round trip for a hit and for a miss alike (the second branch runs only when the first
 * found nothing: the limit stops the append there).
 */
export async function findBlobOrManifest(db: Executor, repository: string, digest: string): Promise<BlobOrManifest | undefined> {
  const result = await sql<{ digest: string; size: number; storage_key: string | null; payload: Buffer | null }>`
    (select b.digest, b.size, b.storage_key, null::bytea as payload
       from repository_blobs rb join repositories r on r.id = rb.repository_id join blobs b on b.digest = rb.digest
      where r.name = ${repository} and rb.digest = ${digest})
    union all
    (select m.digest, m.size, null, m.payload
       from manifests m join repositories r on r.id = m.repository_id
      where r.name = ${repository} and m.digest = ${digest})
    limit 1`.execute(db);
  const row = result.rows[0];
  if (!row) return undefined;
  if (row.storage_key !== null) return { blob: { digest: row.digest, size: Number(row.size), storage_key: row.storage_key } };
  return { manifest: { digest: row.digest, payload: row.payload! } };
}

/** Names of repositories that link the blob (at most `limit`). */
export async function repositoriesLinking(db: Executor, digest: string, limit: number): Promise<string[]> {
  const rows = await db
    .selectFrom('repository_blobs as rb')
    .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
    .select('r.name')
    .where('rb.digest', '=', digest)
    .orderBy('r.name')
    .limit(limit)
    .execute();
  return rows.map((r) => r.name);
}

/** Records a blob; false when one with that digest already exists (the caller's copy is redundant). */
export async function insertBlob(db: Executor, blob: StoredBlob): Promise<boolean> {
  const row = await db
    .insertInto('blobs')
    .values(blob)
    .onConflict((oc) => oc.column('digest').doNothing())
    .returning('digest')
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * The blob row, share-locked for the rest of the transaction: garbage collection cannot delete it
 * until the caller commits. Undefined when it does not exist (or a collection just deleted it).
 */
export async function lockBlobShared(db: Executor, digest: string): Promise<StoredBlob | undefined> {
  return db.selectFrom('blobs').select(['digest', 'size', 'storage_key']).where('digest', '=', digest).forShare().executeTakeFirst();
}

/**
 * Records the blob, or share-locks the row that already has this digest. `created` false means the
 * caller's copy is redundant. A row deleted by garbage collection between the two steps is
 * recreated with the caller's copy.
 */
export async function insertOrLockBlob(db: Executor, blob: StoredBlob): Promise<{ created: boolean }> {
  for (;;) {
    if (await insertBlob(db, blob)) return { created: true };
    if (await lockBlobShared(db, blob.digest)) return { created: false };
  }
}

export async function linkBlob(db: Executor, repositoryId: number, digest: string): Promise<void> {
  await db
    .insertInto('repository_blobs')
    .values({ repository_id: repositoryId, digest })
    .onConflict((oc) => oc.columns(['repository_id', 'digest']).doNothing())
    .execute();
}

export async function unlinkBlob(db: Executor, repositoryId: number, digest: string): Promise<boolean> {
  const result = await db.deleteFrom('repository_blobs').where('repository_id', '=', repositoryId).where('digest', '=', digest).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/**
 * Which of `digests` are linked in the repository; the rows are share-locked so a concurrent
 * unlink cannot slip between this check and the caller's commit.
 */
export async function lockLinkedDigests(db: Executor, repositoryId: number, digests: string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (const batch of batches(digests, 1)) {
    const rows = await db.selectFrom('repository_blobs').select('digest').where('repository_id', '=', repositoryId).where('digest', 'in', batch).forShare().execute();
    for (const r of rows) found.add(r.digest);
  }
  return found;
}
