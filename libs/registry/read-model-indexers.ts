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

type Batch = Array<{ subject: string; event: RegistryEvent }>;

/** The repositories a batch of events touches, each with the events about it; pulls are left out. */
function byRepository(events: Batch): Map<string, Batch> {
  const groups = new Map<string, Batch>();
  for (const e of events) {
    const name = indexedRepository(e.subject, e.event);
    if (name === undefined) continue;
    const group = groups.get(name);
    if (group) group.push(e);
    else groups.set(name, [e]);
  }
  return groups;
}

/** Every listing row any of the events may have changed. */
function mergedChange(events: Batch): ListingChange {
  const digests = new Set<string>();
  const tags = new Set<string>();
  let all = false;
  for (const e of events) {
    const change = listingChange(e.subject, e.event);
    for (const d of change.digests) digests.add(d);
    for (const t of change.tags) tags.add(t);
    all ||= change.all === true;
  }
  return { digests: [...digests], tags: [...tags], ...(all ? { all } : {}) };
}

/**
 * Recomputing from the source tables makes a batch cheap: every event of one repository is
 * covered by one recomputation done after all of them committed (they have: they are events).
 */
async function applyPerRepository(events: Batch, apply: (name: string, group: Batch) => Promise<void>): Promise<number> {
  const groups = byRepository(events);
  for (const [name, group] of groups) await apply(name, group);
  let applied = 0;
  for (const group of groups.values()) applied += group.length;
  return applied;
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

  /** Same effect as apply on each event; resolves with how many were not ignored. */
  applyBatch(events: Batch): Promise<number> {
    return applyPerRepository(events, async (name) => {
      await readModels.refreshCatalogEntry(this.db, name);
      await readModels.refreshNamespacePath(this.db, name);
    });
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

  /** Same effect as apply on each event; resolves with how many were not ignored. */
  applyBatch(events: Batch): Promise<number> {
    return applyPerRepository(events, async (name, group) => void (await readModels.refreshManifestListing(this.db, name, mergedChange(group))));
  }
}

/** `wharf reindex`: every read model rebuilt from the source tables. */
export function rebuildReadModels(db: Kysely<Schema>) {
  return readModels.rebuildReadModels(db);
}
