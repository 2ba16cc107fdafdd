import { sql } from 'kysely';
import type { Executor, UploadRow } from './schema.js';

export interface NewUpload {
  id: string;
  repository: string;
  storage_key: string;
  storage_state: Record<string, unknown>;
  hash_state: Buffer | null;
}

export async function createUpload(db: Executor, upload: NewUpload): Promise<void> {
  await db
    .insertInto('uploads')
    .values({ ...upload, storage_state: JSON.stringify(upload.storage_state) })
    .execute();
}

export async function findUpload(db: Executor, id: string): Promise<UploadRow | undefined> {
  return db.selectFrom('uploads').selectAll().where('id', '=', id).executeTakeFirst();
}

const LOCK_NOT_AVAILABLE = '55P03';

/**
 * Locks the session row for the rest of the transaction. 'busy' means another request holds it
 * (two concurrent PATCHes of one session cannot both win).
 */
export async function lockUpload(db: Executor, id: string): Promise<UploadRow | 'busy' | undefined> {
  try {
    return await db.selectFrom('uploads').selectAll().where('id', '=', id).forUpdate().noWait().executeTakeFirst();
  } catch (err) {
    if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) return 'busy';
    throw err;
  }
}

export async function advanceUpload(db: Executor, id: string, byteOffset: number, hashState: Buffer, storageState: Record<string, unknown>): Promise<void> {
  await db
    .updateTable('uploads')
    .set({ byte_offset: byteOffset, hash_state: hashState, storage_state: JSON.stringify(storageState), updated_at: new Date() })
    .where('id', '=', id)
    .execute();
}

export async function deleteUpload(db: Executor, id: string): Promise<void> {
  await db.deleteFrom('uploads').where('id', '=', id).execute();
}

/** Deletes the session if it belongs to `repository`; returns where its bytes were, to discard them. */
export async function removeUpload(db: Executor, id: string, repository: string): Promise<{ storage_key: string; storage_state: Record<string, unknown> } | undefined> {
  return db.deleteFrom('uploads').where('id', '=', id).where('repository', '=', repository).returning(['storage_key', 'storage_state']).executeTakeFirst();
}

/**
 * Cancels up to `limit` upload sessions idle for `maxIdleSeconds` and queues their objects for
 * deletion, in one statement. A session a request is writing to right now is locked and skipped.
 */
export async function expireIdleUploads(db: Executor, maxIdleSeconds: number, limit: number): Promise<number> {
  const result = await sql<{ id: number }>`
    with gone as (
      delete from uploads where id in (
        select id from uploads where updated_at < now() - make_interval(secs => ${maxIdleSeconds})
         order by updated_at limit ${limit} for update skip locked)
      returning storage_key, storage_state, byte_offset)
    insert into gc_storage_deletions (storage_key, storage_state, size, reason)
    select storage_key, storage_state, byte_offset, 'abandoned-upload' from gone
    returning id`.execute(db);
  return result.rows.length;
}

/**
 * A no-op statement in the upload's transaction: while its body is still arriving, the
 * transaction is not idle, so idle_in_transaction_session_timeout ends only a stalled one.
 */
export async function touchTransaction(db: Executor): Promise<void> {
  await sql`select 1`.execute(db);
}
