import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Subjects } from '../events/index.js';
import { BlobTooLargeError, BodyAbortedError, BodyTooLongError, HashStateError, HashingCounter, initialHashState, openHash, type HashSession } from '../hashing/index.js';
import { blobs, gc, repositories, uploads, type Executor, type UploadRow } from '../metadata/index.js';
import { RegistryError, checkName, parseDigest, type ParsedDigest } from '../oci/index.js';
import type { UploadState } from '../storage/index.js';
import type { RequestContext } from './context.js';
import { gcPolicy, type RegistryDeps } from './deps.js';
import { blobUrl, recordEvents } from './event-log.js';
import { watchBody } from './body-watch.js';
import { keepTransactionAlive } from './transaction-keepalive.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What the client said about the body it is sending. */
export interface ChunkInfo {
  /** Content-Range, inclusive, when given. */
  range?: { start: number; end: number };
  /** Content-Length, when given. */
  length?: number;
}

export interface UploadSession {
  id: string;
  repository: string;
  offset: number;
}

function blobTooLarge(limit: number): RegistryError {
  return new RegistryError('SIZE_INVALID', `blob is larger than the ${limit} bytes this registry accepts`, { reason: 'too-large', detail: { limit } });
}

function unknownUpload(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { detail: { uuid: id } });
}

/** The session's running hash; a state no implementation here can resume ends in a clear 400, not a 500. */
async function openSessionHash(row: UploadRow): Promise<HashSession> {
  try {
    return await openHash(row.hash_state);
  } catch (err) {
    if (!(err instanceof HashStateError)) throw err;
    throw new RegistryError('BLOB_UPLOAD_INVALID', `${err.message}: start the upload again`, { detail: { uuid: row.id } });
  }
}

export class UploadService {
  constructor(private readonly deps: RegistryDeps) {}

  async start(repository: string): Promise<UploadSession> {
    checkName(repository);
    const id = randomUUID();
    const key = `${id.slice(0, 2)}/${id}`;
    const storageState = await this.deps.store.beginUpload(key);
    await uploads.createUpload(this.deps.db, {
      id,
      repository,
      storage_key: key,
      storage_state: storageState,
      hash_state: initialHashState(),
    });
    return { id, repository, offset: 0 };
  }

  async status(repository: string, id: string): Promise<UploadSession> {
    checkName(repository);
    const row = UUID.test(id) ? await uploads.findUpload(this.deps.db, id) : undefined;
    if (!row || row.repository !== repository) throw unknownUpload(id);
    return { id, repository, offset: row.byte_offset };
  }

  /** Appends one chunk (PATCH); resolves with the new offset. */
  async append(repository: string, id: string, body: Readable, chunk: ChunkInfo): Promise<UploadSession> {
    checkName(repository);
    return this.deps.uploadsDb.transaction().execute(async (trx) => {
      const row = await this.lock(trx, repository, id);
      const hash = await openSessionHash(row);
      try {
        const written = await this.write(trx, row, hash, body, chunk);
        await uploads.advanceUpload(trx, id, written.offset, await hash.save(), written.state);
        return { id, repository, offset: written.offset };
      } finally {
        hash.close();
      }
    });
  }

  /** Finishes the upload (PUT ?digest=), with an optional last chunk; the blob is then linked in the repository. */
  async complete(repository: string, id: string, digestParam: string | undefined, body: Readable | undefined, chunk: ChunkInfo, context: RequestContext): Promise<string> {
    checkName(repository);
    const expected = parseDigest(digestParam);
    const outcome = await this.deps.uploadsDb.transaction().execute(async (trx) => {
      const row = await this.lock(trx, repository, id);
      let { byte_offset: size, storage_state: state } = row;
      let hashed: string | undefined;
      if (expected.algorithm === 'sha256' || body) {
        const hash = await openSessionHash(row);
        try {
          if (body) ({ offset: size, state } = await this.write(trx, row, hash, body, chunk));
          hashed = await hash.digest();
        } finally {
          hash.close();
        }
      }
      // The running hash is SHA-256; another algorithm is checked by re-reading the sealed object.
      const sealed = expected.algorithm !== 'sha256';
      if (sealed) await this.deps.store.completeUpload(row.storage_key, state, size);
      const actual = sealed ? await this.digestStored(trx, row.storage_key, expected) : hashed!;
      if (actual !== expected.digest) {
        // A wrong digest ends the session: nothing of it stays behind.
        await uploads.deleteUpload(trx, id);
        const deletion = await gc.queueStorageDeletion(trx, { storage_key: row.storage_key, storage_state: state, size, reason: 'digest-invalid' });
        return { ok: false as const, key: row.storage_key, state, actual, deletion };
      }
      // Sealing the object (fsync, or S3's CompleteMultipartUpload) runs beside the statements below;
      // the transaction commits only once it has succeeded.
      const sealing = sealed ? undefined : this.deps.store.completeUpload(row.storage_key, state, size);
      sealing?.catch(() => {}); // handled here, awaited below: a rejection before then is not "unhandled"
      let deletion: Awaited<ReturnType<typeof gc.queueStorageDeletion>> | undefined;
      try {
        // Review row first, then the blob row: the order garbage collection's locking relies on (docs/gc.md).
        await gc.enqueueBlobReviews(trx, [expected.digest], gcPolicy(this.deps).uploadGraceSeconds, 'uploaded');
        const { created } = await blobs.insertOrLockBlob(trx, { digest: expected.digest, size, storage_key: row.storage_key });
        const repositoryId = await repositories.ensureRepository(trx, repository);
        await blobs.linkBlob(trx, repositoryId, expected.digest);
        await uploads.deleteUpload(trx, id);
        deletion = created ? undefined : await gc.queueStorageDeletion(trx, { storage_key: row.storage_key, size, reason: 'redundant-upload' });
        await recordEvents(trx, context, [
          {
            subject: Subjects.blobPush,
            action: 'push',
            target: { mediaType: 'application/octet-stream', digest: expected.digest, size, repository, url: blobUrl(context, repository, expected.digest) },
          },
        ]);
      } catch (err) {
        await sealing?.catch(() => {});
        throw err;
      }
      await sealing;
      return { ok: true as const, key: row.storage_key, deletion };
    });
    if (!outcome.ok) {
      await this.discard(outcome.key, outcome.state, outcome.deletion);
      throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', {
        detail: { expected: expected.digest, actual: outcome.actual },
      });
    }
    this.deps.outboxWritten();
    // The registry already had these bytes under another key: this copy is redundant.
    if (outcome.deletion !== undefined) await this.discard(outcome.key, {}, outcome.deletion);
    return expected.digest;
  }

  /** A whole blob in one request (POST ?digest=): leaves no session behind, whether it succeeds or not. */
  async monolithic(repository: string, digest: string, body: Readable, chunk: ChunkInfo, context: RequestContext): Promise<string> {
    parseDigest(digest);
    const session = await this.start(repository);
    try {
      return await this.complete(repository, session.id, digest, body, chunk, context);
    } catch (err) {
      await this.cancel(repository, session.id).catch(() => {});
      throw err;
    }
  }

  async cancel(repository: string, id: string): Promise<void> {
    checkName(repository);
    if (!UUID.test(id)) throw unknownUpload(id);
    const removed = await this.deps.db.transaction().execute(async (trx) => {
      const row = await uploads.removeUpload(trx, id, repository);
      if (!row) return undefined;
      const deletion = await gc.queueStorageDeletion(trx, { storage_key: row.storage_key, storage_state: row.storage_state, reason: 'upload-cancelled' });
      return { ...row, deletion };
    });
    if (!removed) throw unknownUpload(id);
    await this.discard(removed.storage_key, removed.storage_state, removed.deletion);
  }

  /**
   * Cross-repository mount: links an existing blob instead of uploading it. With no `from`, any
   * repository the caller can read will do. Returns false when the blob cannot be mounted.
   */
  async mount(repository: string, digest: string, from: string | undefined, context: RequestContext): Promise<boolean> {
    checkName(repository);
    parseDigest(digest);
    let source: string | undefined;
    if (from !== undefined) {
      try {
        checkName(from);
      } catch {
        return false;
      }
      if (!(await this.readable(from, context))) return false;
      if (await blobs.findLinkedBlob(this.deps.db, from, digest)) source = from;
    } else if (this.deps.options.automaticMount !== false) {
      for (const candidate of await blobs.repositoriesLinking(this.deps.db, digest, 20)) {
        if (await this.readable(candidate, context)) {
          source = candidate;
          break;
        }
      }
    }
    if (source === undefined) return false;
    const mounted = await this.deps.db.transaction().execute(async (trx) => {
      // The new link gets a full grace period; the share lock keeps a collection from deleting the blob under it.
      await gc.enqueueBlobReviews(trx, [digest], gcPolicy(this.deps).uploadGraceSeconds, 'mounted');
      const blob = await blobs.lockBlobShared(trx, digest);
      if (!blob) return false;
      const repositoryId = await repositories.ensureRepository(trx, repository);
      await blobs.linkBlob(trx, repositoryId, digest);
      await recordEvents(trx, context, [
        {
          subject: Subjects.blobPush,
          action: 'mount',
          target: {
            mediaType: 'application/octet-stream',
            digest,
            size: blob.size,
            repository,
            fromRepository: source,
            url: blobUrl(context, repository, digest),
          },
        },
      ]);
      return true;
    });
    if (!mounted) return false;
    this.deps.outboxWritten();
    return true;
  }

  private async readable(repository: string, context: RequestContext): Promise<boolean> {
    return !context.mayRead || context.mayRead(repository);
  }

  /** Locks the session row for this transaction, or explains why it cannot be used. */
  private async lock(trx: Executor, repository: string, id: string): Promise<UploadRow> {
    if (!UUID.test(id)) throw unknownUpload(id);
    const row = await uploads.lockUpload(trx, id);
    if (row === 'busy') {
      const current = await uploads.findUpload(this.deps.db, id);
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'another request is writing to this upload', {
        reason: 'out-of-range',
        detail: { uuid: id },
        ...(current ? { uploadOffset: current.byte_offset } : {}),
      });
    }
    if (!row || row.repository !== repository) throw unknownUpload(id);
    return row;
  }

  /** Streams a chunk into storage at the session's offset, hashing it on the way. */
  private async write(trx: Executor, row: UploadRow, hash: HashSession, body: Readable, chunk: ChunkInfo): Promise<{ offset: number; state: UploadState }> {
    const offset = row.byte_offset;
    if (chunk.range) {
      if (chunk.range.start !== offset || chunk.range.end < chunk.range.start) {
        throw new RegistryError('RANGE_INVALID', `chunk must start at byte ${offset}`, {
          detail: { offset, range: `${chunk.range.start}-${chunk.range.end}` },
          uploadOffset: offset,
        });
      }
      const rangeLength = chunk.range.end - chunk.range.start + 1;
      if (chunk.length !== undefined && chunk.length !== rangeLength) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', 'Content-Length does not match Content-Range', {
          detail: { contentLength: chunk.length, rangeLength },
        });
      }
    }
    const declared = chunk.range ? chunk.range.end - chunk.range.start + 1 : chunk.length;
    const max = this.deps.options.blobMaxBytes || undefined;
    const room = max === undefined ? undefined : max - offset;
    // Refused before a byte is read when the client says how much is coming; else counted as it streams.
    if (room !== undefined && declared !== undefined && declared > room) throw blobTooLarge(max!);
    const counter = new HashingCounter(hash, declared, room);
    // pipe() does not forward the source's failure: a client that hangs up mid-body (or already
    // hung up while the session was being locked) must fail the write.
    const unwatch = watchBody(body, (err) => counter.destroy(new BodyAbortedError(err)));
    const stopKeepAlive = keepTransactionAlive(trx, this.deps.options.uploadKeepAliveMs, () => counter.bytes);
    let result: { written: number; state: UploadState };
    try {
      result = await this.deps.store.append(row.storage_key, row.storage_state, offset, body.pipe(counter));
    } catch (err) {
      if (err instanceof BlobTooLargeError) throw blobTooLarge(max!);
      if (err instanceof BodyTooLongError || err instanceof BodyAbortedError) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', err.message, { detail: { declared: declared ?? null, received: counter.bytes } });
      }
      throw err;
    } finally {
      unwatch();
      stopKeepAlive();
    }
    if (declared !== undefined && counter.bytes !== declared) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', `request body has ${counter.bytes} bytes, ${declared} were declared`, {
        detail: { declared, received: counter.bytes },
      });
    }
    return { offset: offset + result.written, state: result.state };
  }

  private async digestStored(trx: Executor, key: string, expected: ParsedDigest): Promise<string> {
    const hash = createHash(expected.algorithm);
    let read = 0;
    const stopKeepAlive = keepTransactionAlive(trx, this.deps.options.uploadKeepAliveMs, () => read);
    try {
      for await (const chunk of await this.deps.store.read(key)) {
        read += (chunk as Buffer).length;
        hash.update(chunk as Buffer);
      }
    } finally {
      stopKeepAlive();
    }
    return `${expected.algorithm}:${hash.digest('hex')}`;
  }

  /** Deletes the object now; when that fails, the queued deletion stays for the gc worker to retry. */
  private async discard(key: string, state: UploadState, deletion: number): Promise<void> {
    try {
      await this.deps.store.abortUpload(key, state);
      await gc.finishStorageDeletion(this.deps.db, deletion);
    } catch (err) {
      this.deps.warn(`storage object ${key} not removed now; the gc worker will retry`, err);
    }
  }
}
