import { buildEvent, Subjects } from '../../events/index.js';
import { blobs, gc, proxyCache, repositories, tags } from '../../metadata/index.js';
import { RegistryError, parseManifest, type ParsedManifest } from '../../oci/index.js';
import type { RequestContext } from '../context.js';
import { gcPolicy, type RegistryDeps } from '../deps.js';
import { blobUrl, manifestUrl, recordEvents } from '../event-log.js';
import { untaggedDelay } from '../gc-policy.js';
import { insertParsedManifest } from '../manifest-service.js';
import type { Upstream } from './upstreams.js';

/** Events of cached content name the upstream as their actor: webhooks and read models see who put it there. */
export function asUpstream(context: RequestContext, upstream: Upstream): RequestContext {
  return { ...context, actor: { name: upstream.config.name } };
}

/**
 * Keeps a manifest fetched from the upstream as content of `repository`, as a push would (rows,
 * references, tag and history, garbage collection reviews, a push event in the outbox), except
 * that its blobs need not be here yet: they are fetched when first pulled.
 */
export async function storeManifest(
  deps: RegistryDeps,
  upstream: Upstream,
  repository: string,
  fetched: { digest: string; mediaType: string; payload: Buffer },
  tag: { name: string; was?: string } | undefined,
  context: RequestContext,
): Promise<void> {
  const { digest, payload } = fetched;
  if (payload.length > deps.options.manifestMaxBytes) {
    throw new RegistryError('UNAVAILABLE', `upstream ${upstream.config.name} sent a manifest larger than ${deps.options.manifestMaxBytes} bytes`, {
      detail: { upstream: upstream.config.name, digest },
    });
  }
  let manifest: ParsedManifest;
  try {
    manifest = parseManifest(payload, fetched.mediaType || undefined);
  } catch (err) {
    throw new RegistryError('UNAVAILABLE', `upstream ${upstream.config.name} sent a manifest Wharf cannot read: ${(err as Error).message}`, {
      detail: { upstream: upstream.config.name, digest },
    });
  }
  await deps.db.transaction().execute(async (trx) => {
    const repositoryId = await repositories.ensureRepository(trx, repository);
    const { id, created } = await insertParsedManifest(trx, repositoryId, digest, manifest, payload);
    const policy = gcPolicy(deps);
    if (tag) {
      const { previous } = await tags.setTag(trx, repositoryId, tag.name, id, digest);
      if (previous) await gc.enqueueManifestReviews(trx, repositoryId, [previous], untaggedDelay(policy), 'tag-moved');
      await proxyCache.markChecked(trx, repositoryId, tag.name);
    } else if (created) {
      await gc.enqueueManifestReviews(trx, repositoryId, [digest], untaggedDelay(policy), 'pushed-untagged');
    }
    await proxyCache.touchPull(trx, { repository_id: repositoryId, kind: 'manifest', digest, upstream: upstream.config.name });
    if (!created && (!tag || tag.was === digest)) return;
    const as = asUpstream(context, upstream);
    await recordEvents(trx, as, [
      {
        subject: Subjects.manifestPush,
        action: 'push',
        target: {
          mediaType: manifest.mediaType,
          size: payload.length,
          digest,
          repository,
          url: manifestUrl(as, repository, digest),
          ...(tag ? { tag: tag.name } : {}),
          references: manifest.references.map((r) => ({ mediaType: r.descriptor.mediaType, digest: r.descriptor.digest, size: r.descriptor.size })),
        },
      },
    ]);
  });
  deps.outboxWritten();
}

/** Points a cached tag at a manifest the repository already has (the upstream moved it back, or to a digest pulled before). */
export async function retag(
  deps: RegistryDeps,
  upstream: Upstream,
  repository: string,
  manifestId: number,
  digest: string,
  mediaType: string,
  size: number,
  tag: string,
  context: RequestContext,
): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    const repositoryId = await repositories.ensureRepository(trx, repository);
    const { previous } = await tags.setTag(trx, repositoryId, tag, manifestId, digest);
    if (previous) await gc.enqueueManifestReviews(trx, repositoryId, [previous], untaggedDelay(gcPolicy(deps)), 'tag-moved');
    await proxyCache.markChecked(trx, repositoryId, tag);
    const as = asUpstream(context, upstream);
    await recordEvents(trx, as, [
      { subject: Subjects.manifestPush, action: 'push', target: { mediaType, size, digest, repository, tag, url: manifestUrl(as, repository, digest) } },
    ]);
  });
  deps.outboxWritten();
}

/** Forgets a cached tag the upstream no longer has (onnotfound: forget), as a tag delete would. */
export async function forgetTag(deps: RegistryDeps, upstream: Upstream, repository: string, repositoryId: number, tag: string, context: RequestContext): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    const removed = await tags.deleteTag(trx, repositoryId, tag);
    await proxyCache.forgetCheck(trx, repositoryId, tag);
    if (!removed) return;
    await gc.enqueueManifestReviews(trx, repositoryId, [removed.digest], untaggedDelay(gcPolicy(deps)), 'tag-deleted');
    await recordEvents(trx, asUpstream(context, upstream), [
      { subject: Subjects.tagDelete, action: 'delete', target: { repository, tag, digest: removed.digest, mediaType: removed.mediaType } },
    ]);
  });
  deps.outboxWritten();
}

/**
 * Records a blob whose bytes were just verified at `key`, linked in `repository`, and releases
 * its fill in the same statement: waiting requests see the blob and the end of the fill at once.
 * Throws, recording nothing, when the fill is no longer `fill.owner`'s.
 * Returns the id of a queued deletion when the registry already had these bytes (this copy is redundant).
 */
export async function commitBlob(
  deps: RegistryDeps,
  upstream: Upstream,
  repository: string,
  blob: { digest: string; size: number; key: string },
  fill: { owner: string },
  context: RequestContext,
): Promise<number | undefined> {
  const as = asUpstream(context, upstream);
  const event = buildEvent('push', { mediaType: 'application/octet-stream', digest: blob.digest, size: blob.size, repository, url: blobUrl(as, repository, blob.digest) }, as);
  // A fill taken over (its heartbeat went stale) has had its object queued for deletion: it records nothing.
  const outcome = await proxyCache.commitFilledBlob(deps.db, {
    digest: blob.digest,
    size: blob.size,
    storage_key: blob.key,
    owner: fill.owner,
    repository,
    upstream: upstream.config.name,
    reviewDelaySeconds: gcPolicy(deps).uploadGraceSeconds,
    event: { eventId: event.id, subject: Subjects.blobPush, payload: event },
  });
  if (!outcome.held) throw new Error(`the fill of ${blob.digest} was taken over by another request`);
  if (outcome.linked) deps.outboxWritten();
  // The repository row was created beside this statement, unseen by it: link in a transaction of its own.
  else await linkCachedBlob(deps, upstream, repository, blob.digest, context);
  return outcome.deletion;
}

/** Links a blob the registry already stores into `repository`, under the same locks as a mount. False if it was collected meanwhile. */
export async function linkCachedBlob(deps: RegistryDeps, upstream: Upstream, repository: string, digest: string, context: RequestContext): Promise<boolean> {
  const linked = await deps.db.transaction().execute(async (trx) => {
    await gc.enqueueBlobReviews(trx, [digest], gcPolicy(deps).uploadGraceSeconds, 'proxy-linked');
    const blob = await blobs.lockBlobShared(trx, digest);
    if (!blob) return false;
    const repositoryId = await repositories.ensureRepository(trx, repository);
    await blobs.linkBlob(trx, repositoryId, digest);
    await proxyCache.touchPull(trx, { repository_id: repositoryId, kind: 'blob', digest, upstream: upstream.config.name });
    const as = asUpstream(context, upstream);
    await recordEvents(trx, as, [
      { subject: Subjects.blobPush, action: 'mount', target: { mediaType: 'application/octet-stream', digest, size: blob.size, repository, url: blobUrl(as, repository, digest) } },
    ]);
    return true;
  });
  if (linked) deps.outboxWritten();
  return linked;
}
