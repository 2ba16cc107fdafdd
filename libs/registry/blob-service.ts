import { Readable } from 'node:stream';
import { RegistryError, checkName, parseDigest } from '../oci/index.js';
import { blobs, gc, repositories } from '../metadata/index.js';
import type { ByteRange } from '../storage/index.js';
import type { RequestContext } from './context.js';
import { gcPolicy, type RegistryDeps } from './deps.js';
import { blobUrl, publishPull, recordEvents } from './event-log.js';
import { Subjects } from '../events/index.js';

export interface BlobHandle {
  digest: string;
  size: number;
  /** Streams the blob or an inclusive range of it. */
  open(range?: ByteRange): Promise<Readable>;
  /** Where the client may fetch the bytes itself, when the store and config allow a redirect. */
  redirect?: () => Promise<string>;
}

export class BlobService {
  constructor(private readonly deps: RegistryDeps) {}

  /**
   * The blob as linked in `repository`; BLOB_UNKNOWN otherwise. Manifests are readable here too, as
   * in Distribution. `keep` (a HEAD: a client deciding not to upload) pushes a pending garbage
   * collection review of the blob out by the grace period.
   */
  async find(repository: string, digest: string, how: { keep?: boolean; context?: RequestContext } = {}): Promise<BlobHandle> {
    checkName(repository);
    parseDigest(digest);
    // A GET in a proxied repository looks up and claims the fill in one statement; a HEAD claims nothing.
    const proxied = how.keep ? undefined : await this.deps.proxy?.blobGet(repository, digest, how.context);
    if (proxied && 'handle' in proxied) return proxied.handle;
    const found = proxied ?? (await blobs.findBlobOrManifest(this.deps.db, repository, digest));
    if (found && 'blob' in found) {
      const blob = found.blob;
      this.deps.proxy?.blobHit(repository, digest);
      if (how.keep) await gc.postponeBlobReviews(this.deps.db, [digest], gcPolicy(this.deps).uploadGraceSeconds);
      const handle: BlobHandle = { digest, size: blob.size, open: (range) => this.deps.store.read(blob.storage_key, range) };
      const { store, options } = this.deps;
      if (options.blobRedirectSeconds > 0 && store.presignedGetUrl) {
        handle.redirect = () => store.presignedGetUrl!(blob.storage_key, options.blobRedirectSeconds);
      }
      return handle;
    }
    if (found) {
      const bytes = found.manifest.payload;
      return {
        digest,
        size: bytes.length,
        open: async (range) => Readable.from([range ? bytes.subarray(range.start, range.end + 1) : bytes]),
      };
    }
    const cached = await this.deps.proxy?.blob(repository, digest, how.keep === true, how.context);
    if (cached) return cached;
    throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
  }

  /** Records a pull event for a GET that is about to stream. */
  pulled(repository: string, blob: BlobHandle, context: RequestContext): void {
    publishPull(this.deps, context, 'blob', {
      mediaType: 'application/octet-stream',
      size: blob.size,
      digest: blob.digest,
      repository,
      url: blobUrl(context, repository, blob.digest),
    });
  }

  /** Unlinks the blob from the repository; its bytes stay until garbage collection finds them unreferenced. */
  async unlink(repository: string, digest: string, context: RequestContext): Promise<void> {
    checkName(repository);
    parseDigest(digest);
    const repositoryId = await repositories.findRepositoryId(this.deps.db, repository);
    const unknown = () => new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
    if (repositoryId === undefined) throw unknown();
    await this.deps.db.transaction().execute(async (trx) => {
      if (!(await blobs.unlinkBlob(trx, repositoryId, digest))) throw unknown();
      await gc.enqueueBlobReviews(trx, [digest], gcPolicy(this.deps).graceSeconds, 'unlinked');
      await recordEvents(trx, context, [{ subject: Subjects.blobDelete, action: 'delete', target: { digest, repository } }]);
    });
    this.deps.outboxWritten();
  }
}
