import type { Kysely } from 'kysely';
import { Subjects, type RegistryEvent } from '../events/index.js';
import { readModels, type ListingChange, type Schema } from '../metadata/index.js';

/*
 * What the catalog-indexer and manifest-lister workers do with an event. An event only says
 * "repository R (and manifest D, tag T) changed": the rows it affects are recomputed from the
 * source tables, never patched with a delta, so handling an event twice, late, or after a later
 * one leaves the same rows as handling each once in order.
 */

/** Events that describe no change (pulls) or carry no repository: nothing to index. */
export function indexedRepository(subject: string, event: RegistryEvent): string | undefined {
  if (subject === Subjects.manifestPull || subject === Subjects.blobPull) return undefined;
  const name = event?.target?.repository;
  return typeof name === 'string' && name !== '' ? name : undefined;
}

/** The manifest listing rows an event may have changed. */
export function listingChange(subject: string, event: RegistryEvent): ListingChange {
  const { digest, tag } = event.target;
  const digests = typeof digest === 'string' ? [digest] : [];
  const tags = typeof tag === 'string' ? [tag] : [];
  switch (subject) {
    case Subjects.manifestPush:
    case Subjects.manifestDelete:
    case Subjects.tagDelete:
      return { digests, tags };
    case Subjects.blobPush:
    case Subjects.blobDelete:
      // No listing row shows blob links; the listing version still moves (the repository changed).
      return { digests: [], tags: [] };
    default:
      // repository.delete, or a subject added later: recompute the whole repository to be safe.
      return { digests: [], tags: [], all: true };
  }
}

/** Keeps catalog_entries and namespace_children equal to what the source tables imply. */
export class CatalogIndexer {
  constructor(private readonly db: Kysely<Schema>) {}

  /** Returns false when the event changes nothing the catalog shows (a pull). */
  async apply(subject: string, event: RegistryEvent): Promise<boolean> {
    const name = indexedRepository(subject, event);
    if (name === undefined) return false;
    await readModels.refreshCatalogEntry(this.db, name);
    // Always, even when the entry was unchanged: a crash between the two commits is repaired by the redelivery.
    await readModels.refreshNamespacePath(this.db, name);
    return true;
  }
}

/** Keeps manifest_listing (and the listing version behind its ETag) equal to what the source tables imply. */
export class ManifestLister {
  constructor(private readonly db: Kysely<Schema>) {}

  async apply(subject: string, event: RegistryEvent): Promise<boolean> {
    const name = indexedRepository(subject, event);
    if (name === undefined) return false;
    await readModels.refreshManifestListing(this.db, name, listingChange(subject, event));
    return true;
  }
}

/** `wharf reindex`: every read model rebuilt from the source tables. */
export function rebuildReadModels(db: Kysely<Schema>) {
  return readModels.rebuildReadModels(db);
}
