import { Subjects, type EventBus, type RegistryEvent } from '../events/index.js';
import type { ManifestLookup } from '../metadata/index.js';

export interface ManifestCacheLimits {
  /** Tags and manifests kept at most, together; 0 turns the cache off. */
  maxEntries: number;
  /** Bytes kept at most: manifest payloads plus a fixed cost per entry. */
  maxBytes: number;
}

export interface CachedManifest {
  digest: string;
  mediaType: string;
  size: number;
  payload: Buffer;
}

type Entry = { digest: string; manifest?: undefined; bytes: number } | { manifest: CachedManifest; digest?: undefined; bytes: number };

/** Entries (tags, manifests) whose last invalidation is remembered (for fills in flight); older ones fall under the floor. */
const MAX_TRACKED_KEYS = 4096;

/** What an entry costs beside its payload: the key, the Map slot, the objects. */
const ENTRY_OVERHEAD = 256;

/**
 * Manifest reads from memory: tag → digest, and digest → manifest (bytes, media type, size), per
 * repository, least recently used first out, bounded by count and bytes.
 *
 * Coherence: every change to a tag or a manifest is committed with an outbox event (manifest push,
 * tag delete, manifest delete), and every node's cache drops the entries an event names when it
 * arrives; the node that made the change drops them itself right after its commit. A fill that
 * read the database before an invalidation could put the old answer back after it: each fill
 * takes a ticket (the invalidation count) before its read and is stored only if neither entry it
 * would store (its tag, its manifest) was invalidated in between. Changes to other tags, even of
 * the same repository (a backlog of pushes draining, a CI job tagging builds), do not keep the
 * tags being read from being cached. While the event subscription is not live (not yet set up,
 * or the bus is disconnected and may miss events) the cache is emptied and neither answers nor
 * stores: reads go to the database.
 */
export class ManifestReadCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private invalidations = 0;
  /** The invalidation count at each entry key's last invalidation, oldest first; bounded. */
  private readonly changedAt = new Map<string, number>();
  /** No fill with a ticket below this may be stored: an entry's last change may be forgotten (or all was cleared). */
  private floor = 0;
  private trusted = false;

  constructor(private readonly limits: ManifestCacheLimits) {}

  get enabled(): boolean {
    return this.limits.maxEntries > 0 && this.limits.maxBytes > 0;
  }

  /** Whether it answers and stores now. */
  get live(): boolean {
    return this.trusted && this.enabled;
  }

  /** Set by the event subscription: true once it is live, false whenever it may miss an event. */
  setLive(live: boolean): void {
    if (!live) this.clear();
    this.trusted = live;
  }

  /** Taken before the database read whose answer may be stored with remember(). */
  ticket(): number {
    return this.invalidations;
  }

  lookup(repository: string, ref: ManifestLookup): CachedManifest | undefined {
    if (!this.trusted) return undefined;
    const digest = 'tag' in ref ? this.touch(tagKey(repository, ref.tag))?.digest : ref.digest;
    if (digest === undefined) return undefined;
    return this.touch(manifestKey(repository, digest))?.manifest;
  }

  /** Stores what the database answered for `ref`, unless something was invalidated since `ticket`. */
  remember(ticket: number, repository: string, ref: ManifestLookup, manifest: CachedManifest): void {
    if (!this.live || ticket < this.floor) return;
    const mKey = manifestKey(repository, manifest.digest);
    const tKey = 'tag' in ref ? tagKey(repository, ref.tag) : undefined;
    if (this.changedSince(mKey, ticket) || (tKey !== undefined && this.changedSince(tKey, ticket))) return;
    const bytes = manifest.payload.length + ENTRY_OVERHEAD;
    // One manifest may not push out more than an eighth of the cache.
    if (bytes > this.limits.maxBytes / 8) return;
    this.put(mKey, { manifest, bytes });
    if (tKey !== undefined) this.put(tKey, { digest: manifest.digest, bytes: ENTRY_OVERHEAD });
  }

  /** Drops what may have changed: the tag, and the manifest when it was deleted. */
  invalidate(repository: string, change: { tag?: string; digest?: string }): void {
    this.invalidations++;
    if (change.tag !== undefined) this.changed(tagKey(repository, change.tag));
    if (change.digest !== undefined) this.changed(manifestKey(repository, change.digest));
  }

  /** An event from the bus: what it says changed is dropped. */
  apply(subject: string, event: RegistryEvent): void {
    const { repository, tag, digest } = event.target;
    if (typeof repository !== 'string') return;
    if (subject === Subjects.manifestPush || subject === Subjects.tagDelete) {
      // A push by digest changes no tag and adds a manifest no entry can name yet.
      if (typeof tag === 'string') this.invalidate(repository, { tag });
    } else if (subject === Subjects.manifestDelete) {
      if (typeof digest === 'string') this.invalidate(repository, { digest });
    }
  }

  clear(): void {
    this.invalidations++;
    this.floor = this.invalidations;
    this.changedAt.clear();
    this.entries.clear();
    this.bytes = 0;
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes };
  }

  private changed(key: string): void {
    // Moved to the end: the Map stays in invalidation order, the oldest first out.
    this.changedAt.delete(key);
    this.changedAt.set(key, this.invalidations);
    if (this.changedAt.size > MAX_TRACKED_KEYS) {
      const [oldest, at] = this.changedAt.entries().next().value as [string, number];
      this.changedAt.delete(oldest);
      this.floor = at;
    }
    this.drop(key);
  }

  private changedSince(key: string, ticket: number): boolean {
    return (this.changedAt.get(key) ?? 0) > ticket;
  }

  private touch(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    // Map order is insertion order: moving a hit to the end keeps the oldest first for eviction.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry;
  }

  private put(key: string, entry: Entry): void {
    this.drop(key);
    this.entries.set(key, entry);
    this.bytes += entry.bytes;
    while (this.entries.size > this.limits.maxEntries || this.bytes > this.limits.maxBytes) {
      const oldest = this.entries.keys().next().value as string;
      this.drop(oldest);
    }
  }

  private drop(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }
}

// Repository names cannot hold a space, tags and digests neither: the keys cannot collide.
const tagKey = (repository: string, tag: string) => `t ${repository} ${tag}`;
const manifestKey = (repository: string, digest: string) => `m ${repository} ${digest}`;

/** The subjects whose events change what the cache holds (pulls are left out: they are many and change nothing). */
const CHANGES = [Subjects.manifestPush, Subjects.tagDelete, Subjects.manifestDelete];

/**
 * Keeps the cache coherent from the bus: subscribes to the change events and marks it live once
 * every subscription is set up and the bus is connected; a disconnect empties it and stops it
 * until the bus is back. Returns the function that stops it.
 */
export function connectCache(cache: ManifestReadCache, bus: EventBus, onError: (err: unknown) => void): () => void {
  if (!cache.enabled) return () => {};
  let subscribed = false;
  let stopped = false;
  const update = () => cache.setLive(!stopped && subscribed && (bus.isConnected?.() ?? true));
  const unsubscribes = CHANGES.map((subject) => bus.subscribe(subject, (s, event) => cache.apply(s, event)));
  const unwatch = bus.watchConnection?.(update);
  Promise.all(unsubscribes.map((u) => (u as { ready?: Promise<void> }).ready))
    .then(() => {
      subscribed = true;
      update();
    })
    .catch(onError);
  return () => {
    stopped = true;
    update();
    unwatch?.();
    for (const u of unsubscribes) u();
  };
}
