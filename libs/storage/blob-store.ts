import type { Readable } from 'node:stream';

/** Driver state of one upload, kept in the upload session row so any node can continue it. */
export type UploadState = Record<string, unknown>;

/**
 * The state to record for an upload that beginUpload may be creating right now, until what it
 * returns is recorded: abortUpload given this finds and discards whatever beginUpload (and a
 * first append) may have made under the key, e.g. an S3 multipart upload, listed by its key.
 * For keys used by one upload only (a pull-through fill's), whose owner may die in between.
 */
export const UNRECORDED_UPLOAD: UploadState = Object.freeze({ unrecorded: true });

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

/** One object as a listing of the store sees it. */
export interface StoredObject {
  /** The key, as the registry names it (without any store prefix). */
  key: string;
  /**
   * The storage key this object serves: the key itself, or for a driver's side object of an upload
   * in progress (an S3 tail), the upload's key.
   */
  belongsTo: string;
  size: number;
  modified: Date;
}

/** A driver-level upload in progress that holds storage of its own: an S3 multipart upload. */
export interface UnfinishedUpload {
  key: string;
  uploadId: string;
  initiated: Date;
}

/**
 * Where blob bytes live. An upload writes straight to the object that will hold the finished blob
 * (`key`), so completing it never copies bytes.
 */
export interface BlobStore {
  /** Prepares `key` to receive an upload; the returned state travels with the session. */
  beginUpload(key: string): Promise<UploadState>;
  /**
   * Writes `source` at byte `offset` of the upload. Bytes a failed earlier attempt left past
   * `offset` are overwritten. Resolves once the bytes are durable enough to acknowledge.
   */
  append(key: string, state: UploadState, offset: number, source: Readable): Promise<{ written: number; state: UploadState }>;
  /** Seals the upload at `size` bytes; afterwards `key` is readable. */
  completeUpload(key: string, state: UploadState, size: number): Promise<void>;
  /** Discards an unfinished upload; best effort. `state` may be UNRECORDED_UPLOAD. */
  abortUpload(key: string, state: UploadState): Promise<void>;
  /** Streams the object, or the inclusive byte range of it. */
  read(key: string, range?: ByteRange): Promise<Readable>;
  delete(key: string): Promise<void>;
  /**
   * Proves the store answers: one cheap call (a stat of the root directory, a HEAD of the bucket).
   * Rejects when it does not, or when `signal` aborts first (readiness checks have a deadline).
   */
  ping(signal?: AbortSignal): Promise<void>;
  /** Every object of the store, in no particular order (wharf reconcile compares it with metadata). */
  list(): AsyncIterable<StoredObject>;
  /** Stores whose uploads hold storage outside any object (S3's multipart uploads): every one in progress. */
  listUnfinishedUploads?(): AsyncIterable<UnfinishedUpload>;
  /** Drops one of those; one already gone is not an error. */
  abortUnfinishedUpload?(key: string, uploadId: string): Promise<void>;
  /** A URL clients can GET the object from directly for a while, where the store has one (S3). */
  presignedGetUrl?(key: string, expiresSeconds: number): Promise<string>;
}

const STORE_DOWN_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** Disk failures: no socket error uses these codes, so they point at the filesystem driver whatever else the error says. */
const DISK_DOWN_CODES = new Set(['EIO', 'ENOSPC', 'EROFS', 'EDQUOT']);
const S3_DOWN_NAMES = new Set(['ServiceUnavailable', 'SlowDown', 'InternalError', 'RequestTimeout', 'TimeoutError', 'AbortError', 'RequestTimeTooSkewed']);

/**
 * Whether `err` from a BlobStore means the store cannot serve right now (unreachable endpoint,
 * S3 5xx or throttling, a full or failing disk) rather than a missing object or a bad request.
 * AWS SDK errors carry `$metadata`, which tells them from PostgreSQL's socket errors.
 */
export function isStorageUnavailable(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: number } };
  if (!e || typeof e !== 'object') return false;
  if (e.$metadata) {
    const status = e.$metadata.httpStatusCode;
    if (typeof status === 'number') return status >= 500 || status === 429 || (status === 403 && e.name === 'RequestTimeTooSkewed');
    return typeof e.code === 'string' ? STORE_DOWN_CODES.has(e.code) : S3_DOWN_NAMES.has(String(e.name));
  }
  return typeof e.code === 'string' && DISK_DOWN_CODES.has(e.code);
}
