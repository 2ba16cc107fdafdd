import { Subjects } from '../events/index.js';
import { blobs, gc, manifests, repositories, tags, type Executor, type ManifestLookup } from '../metadata/index.js';
import { RegistryError, checkName, checkTag, isTag, digestOf, isDigest, isForeignLayer, parseDigest, parseManifest, type Descriptor, type ParsedManifest } from '../oci/index.js';
import type { RequestContext } from './context.js';
import { gcPolicy, type RegistryDeps } from './deps.js';
import { reviewWhatManifestKept } from './gc-enqueue.js';
import { untaggedDelay } from './gc-policy.js';
import { manifestUrl, publishPull, recordEvents } from './event-log.js';

export interface StoredManifest {
  digest: string;
  mediaType: string;
  size: number;
  /** The exact bytes that were pushed; absent for a HEAD. */
  payload?: Buffer;
}

export interface PutResult {
  digest: string;
  /** The subject's digest, for the OCI-Subject response header. */
  subject?: string;
}

/** A reference is a tag or a digest; each is checked against its grammar. */
export function parseReference(reference: string): ManifestLookup {
  if (isDigest(reference)) return { digest: parseDigest(reference).digest };
  return { tag: checkTag(reference) };
}

type FoundManifest = Omit<StoredManifest, 'payload'> & { payload?: Buffer };

function found<R extends { digest: string; media_type: string; size: number; payload?: unknown }>(row: R): FoundManifest;
function found(row: undefined): undefined;
function found(row: { digest: string; media_type: string; size: number; payload?: unknown } | undefined): FoundManifest | undefined;
function found(row: { digest: string; media_type: string; size: number; payload?: unknown } | undefined): FoundManifest | undefined {
  if (!row) return undefined;
  return { digest: row.digest, mediaType: row.media_type, size: row.size, ...(row.payload !== undefined ? { payload: row.payload as Buffer } : {}) };
}

function unknownManifest(reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { detail: { reference } });
}

export class ManifestService {
  constructor(private readonly deps: RegistryDeps) {}

  async get(repository: string, reference: string, withPayload: boolean, context: RequestContext): Promise<StoredManifest> {
    checkName(repository);
    // A tag that breaks the grammar cannot have been pushed: not found, as Distribution and the
    // conformance suite answer (a PUT of one still gets 400 TAG_INVALID).
    if (!isDigest(reference) && !isTag(reference)) throw unknownManifest(reference);
    const ref = parseReference(reference);
    const found = await this.find(repository, ref, withPayload, context);
    if (!found) throw unknownManifest(reference);
    const result: StoredManifest = { digest: found.digest, mediaType: found.mediaType, size: found.size };
    if (withPayload && found.payload) {
      result.payload = found.payload;
      publishPull(this.deps, context, 'manifest', {
        mediaType: found.mediaType,
        size: found.size,
        digest: found.digest,
        repository,
        url: manifestUrl(context, repository, found.digest),
        ...('tag' in ref ? { tag: ref.tag } : {}),
      });
    }
    return result;
  }

  /** From the cache, else the database (filling the cache); a proxied repository's from the upstream first. */
  private async find(repository: string, ref: ManifestLookup, withPayload: boolean, context: RequestContext): Promise<FoundManifest | undefined> {
    if (this.deps.proxy?.serves(repository)) {
      const row = (await this.deps.proxy.manifest(repository, ref, withPayload, context)) ?? (await this.read(repository, ref, withPayload));
      return row && found(row);
    }
    const cache = this.deps.manifestCache;
    if (!cache?.live) return found(await this.read(repository, ref, withPayload));
    const cached = cache.lookup(repository, ref);
    if (cached) return cached;
    const ticket = cache.ticket();
    // A HEAD reads the payload too, so that the GET after it is served from memory.
    const row = await manifests.findManifestWithPayload(this.deps.db, repository, ref);
    if (!row) return undefined;
    const manifest = { digest: row.digest, mediaType: row.media_type, size: row.size, payload: row.payload };
    cache.remember(ticket, repository, ref, manifest);
    return manifest;
  }

  private read(repository: string, ref: ManifestLookup, withPayload: boolean) {
    return withPayload ? manifests.findManifestWithPayload(this.deps.db, repository, ref) : manifests.findManifest(this.deps.db, repository, ref);
  }

  async put(repository: string, reference: string, payload: Buffer, contentType: string | undefined, context: RequestContext): Promise<PutResult> {
    checkName(repository);
    this.deps.proxy?.refusePush(repository);
    const ref = parseReference(reference);
    if (payload.length > this.deps.options.manifestMaxBytes) throw tooLarge(this.deps.options.manifestMaxBytes);
    const manifest = parseManifest(payload, contentType);
    const digest = digestOf(payload, 'digest' in ref ? parseDigest(ref.digest).algorithm : 'sha256');
    if ('digest' in ref && ref.digest !== digest) {
      throw new RegistryError('DIGEST_INVALID', 'manifest digest does not match the reference', { detail: { reference: ref.digest, digest } });
    }
    const blobDigests = this.blobsToCheck(manifest);
    const childDigests = unique(manifest.references.filter((r) => r.kind === 'manifest').map((r) => r.descriptor.digest));
    const tag = 'tag' in ref ? ref.tag : undefined;

    await this.deps.db.transaction().execute(async (trx) => {
      const repositoryId = await repositories.ensureRepository(trx, repository);
      const linked = await blobs.lockLinkedDigests(trx, repositoryId, blobDigests);
      const missingBlob = blobDigests.find((d) => !linked.has(d));
      if (missingBlob) {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', 'manifest references a blob unknown to this repository', { detail: { digest: missingBlob } });
      }
      const present = await manifests.lockManifestDigests(trx, repositoryId, childDigests);
      const missingChild = childDigests.find((d) => !present.has(d));
      if (missingChild) {
        throw new RegistryError('MANIFEST_UNKNOWN', 'index references a manifest unknown to this repository', { detail: { digest: missingChild } });
      }
      const { id, created } = await insertParsedManifest(trx, repositoryId, digest, manifest, payload);
      const policy = gcPolicy(this.deps);
      if (tag !== undefined) {
        const { previous } = await tags.setTag(trx, repositoryId, tag, id, digest);
        if (previous) await gc.enqueueManifestReviews(trx, repositoryId, [previous], untaggedDelay(policy), 'tag-moved');
      } else if (created) {
        await gc.enqueueManifestReviews(trx, repositoryId, [digest], untaggedDelay(policy), 'pushed-untagged');
      }
      await recordEvents(trx, context, [
        {
          subject: Subjects.manifestPush,
          action: 'push',
          target: {
            mediaType: manifest.mediaType,
            size: payload.length,
            digest,
            repository,
            url: manifestUrl(context, repository, digest),
            ...(tag !== undefined ? { tag } : {}),
            references: manifest.references.map((r) => ({ mediaType: r.descriptor.mediaType, digest: r.descriptor.digest, size: r.descriptor.size })),
          },
        },
      ]);
    });
    if (tag !== undefined) this.deps.manifestCache?.invalidate(repository, { tag });
    this.deps.outboxWritten();
    return manifest.subject ? { digest, subject: manifest.subject.digest } : { digest };
  }

  /** By digest: deletes the manifest and every tag on it. By tag: deletes only the tag. */
  async delete(repository: string, reference: string, context: RequestContext): Promise<void> {
    checkName(repository);
    const ref = parseReference(reference);
    const repositoryId = await repositories.findRepositoryId(this.deps.db, repository);
    if (repositoryId === undefined) throw unknownManifest(reference);
    const removedTags = await this.deps.db.transaction().execute(async (trx): Promise<string[]> => {
      if ('tag' in ref) {
        const removed = await tags.deleteTag(trx, repositoryId, ref.tag);
        if (!removed) throw unknownManifest(reference);
        await gc.enqueueManifestReviews(trx, repositoryId, [removed.digest], untaggedDelay(gcPolicy(this.deps)), 'tag-deleted');
        await recordEvents(trx, context, [
          { subject: Subjects.tagDelete, action: 'delete', target: { repository, tag: ref.tag, digest: removed.digest, mediaType: removed.mediaType } },
        ]);
        return [ref.tag];
      }
      const locked = await manifests.lockManifestForDelete(trx, repositoryId, ref.digest);
      if (!locked) throw unknownManifest(reference);
      // Before the delete: its references go with it.
      await reviewWhatManifestKept(trx, gcPolicy(this.deps), repositoryId, locked);
      const removed = { ...locked, tags: await manifests.deleteLockedManifest(trx, locked.id) };
      await recordEvents(trx, context, [
        { subject: Subjects.manifestDelete, action: 'delete', target: { repository, digest: removed.digest, mediaType: removed.media_type, size: removed.size } },
        ...removed.tags.map((tag) => ({
          subject: Subjects.tagDelete,
          action: 'delete' as const,
          target: { repository, tag, digest: removed.digest, mediaType: removed.media_type },
        })),
      ]);
      return removed.tags;
    });
    // This node's cache at once; the other nodes' when the events reach them.
    const cache = this.deps.manifestCache;
    if (cache) {
      if ('digest' in ref) cache.invalidate(repository, { digest: ref.digest });
      for (const tag of removedTags) cache.invalidate(repository, { tag });
    }
    this.deps.outboxWritten();
  }

  /** Config and layer digests that must be linked in the repository; foreign layers with allowed URLs are exempt. */
  private blobsToCheck(manifest: ParsedManifest): string[] {
    const digests: string[] = [];
    for (const { kind, descriptor } of manifest.references) {
      if (kind === 'manifest') continue;
      if (kind === 'layer' && this.isAllowedForeignLayer(descriptor)) continue;
      digests.push(descriptor.digest);
    }
    return unique(digests);
  }

  private isAllowedForeignLayer(descriptor: Descriptor): boolean {
    if (!isForeignLayer(descriptor) || !descriptor.urls || descriptor.urls.length === 0) return false;
    const { foreignUrlAllow, foreignUrlDeny } = this.deps.options;
    for (const url of descriptor.urls) {
      if (!foreignUrlAllow.some((re) => re.test(url)) || foreignUrlDeny.some((re) => re.test(url))) {
        throw new RegistryError('MANIFEST_INVALID', 'foreign layer URL is not allowed', { detail: { digest: descriptor.digest, url } });
      }
    }
    return true;
  }
}

/** Stores a parsed manifest's row and, when it is new, its references; the id and whether it was new. */
export async function insertParsedManifest(
  trx: Executor,
  repositoryId: number,
  digest: string,
  manifest: ParsedManifest,
  payload: Buffer,
): Promise<{ id: number; created: boolean }> {
  const inserted = await manifests.insertManifest(trx, {
    repository_id: repositoryId,
    digest,
    media_type: manifest.mediaType,
    artifact_type: manifest.artifactType,
    size: payload.length,
    payload,
    config_digest: manifest.configDigest,
    subject_digest: manifest.subject?.digest ?? null,
    annotations: manifest.annotations ? JSON.stringify(manifest.annotations) : null,
  });
  if (inserted.created)
    await manifests.insertReferences(
      trx,
      inserted.id,
      manifest.references.map((r) => ({ kind: r.kind, digest: r.descriptor.digest })),
    );
  return inserted;
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

export function tooLarge(limit: number): RegistryError {
  return new RegistryError('MANIFEST_INVALID', `manifest is larger than ${limit} bytes`, { reason: 'too-large', detail: { limit } });
}
