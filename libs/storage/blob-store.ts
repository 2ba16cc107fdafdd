import type { Readable } from 'node:stream';

/** Driver state of one upload, kept in the upload session row so any node can continue it. */
export type UploadState = Record<string, unknown>;

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
  /** Discards an unfinished upload; best effort. */
  abortUpload(key: string, state: UploadState): Promise<void>;
  /** Streams the object, or the inclusive byte range of it. */
  read(key: string, range?: ByteRange): Promise<Readable>;
  delete(key: string): Promise<void>;
  /** Every object of the store, in no particular order (wharf gc compares it with metadata). */
  list(): AsyncIterable<StoredObject>;
  /** A URL clients can GET the object from directly for a while, where the store has one (S3). */
  presignedGetUrl?(key: string, expiresSeconds: number): Promise<string>;
}
