import { sql } from 'kysely';
import type { Executor } from './schema.js';

/** The key under which ownedMultipartUploads names one multipart upload. */
export function multipartId(storageKey: string, uploadId: string): string {
  return `${storageKey}\n${uploadId}`;
}

/**
 * Of the storage keys given, the multipart uploads metadata still owns: those an upload session
 * records, those a queued storage deletion will abort itself, and those of pull-through fills
 * under way. As `multipartId` strings.
 */
export async function ownedMultipartUploads(db: Executor, storageKeys: string[]): Promise<Set<string>> {
  if (storageKeys.length === 0) return new Set();
  const result = await sql<{ storage_key: string; upload_id: string | null }>`
    select storage_key, storage_state->>'uploadId' as upload_id from uploads where storage_key = any(${storageKeys})
    union all
    select storage_key, storage_state->>'uploadId' from gc_storage_deletions where storage_key = any(${storageKeys})
    union all
    select storage_key, storage_state->>'uploadId' from proxy_blob_fills where storage_key = any(${storageKeys})`.execute(db);
  return new Set(result.rows.filter((r) => r.upload_id !== null).map((r) => multipartId(r.storage_key, r.upload_id!)));
}
