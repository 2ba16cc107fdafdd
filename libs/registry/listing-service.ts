import type { Kysely } from 'kysely';
import { listings, type ManifestFilter, type Schema } from '../metadata/index.js';
import { RegistryError, badParameter, checkName, checkTag, findUnstorableText } from '../oci/index.js';
import type { Page } from './discovery.js';

/*
 * The `_wharf` listing extensions (the catalog itself is DiscoveryService.catalog). Two sources, stated in docs/api.md:
 * - read models (catalog, namespace tree, manifest listing): written by workers from events,
 *   so they lag a write by the event pipeline;
 * - source tables (tag details, tag history): read-your-writes, like tags/list and manifest GETs.
 * Each page asks for one row more than it returns, to know whether a next page exists.
 */

export interface ManifestDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  tags: string[];
  pushedAt: string;
}

export interface TagDetail {
  name: string;
  digest: string;
  createdAt: string;
  updatedAt: string;
}

export interface HistoryEntry {
  digest: string;
  createdAt: string;
}

/** A repository resolved for a listing, with the ETags of its listings. */
export interface ListedRepository {
  name: string;
  id: number;
  /** Of the manifest listing (read model): changes when the manifest-lister applies a change of the repository. */
  manifestsEtag: string;
  /** Of the tag listings (source tables): changes at the commit of any push or delete in the repository. */
  tagsEtag: string;
}

function pageOf<T>(rows: T[], n: number, key: (row: T) => string): Page<T> {
  if (rows.length > n) return { items: rows.slice(0, n), next: key(rows[n - 1]!) };
  return { items: rows };
}

export class ListingService {
  constructor(private readonly db: Kysely<Schema>) {}

  /** The path segments directly under `prefix` ('' for the root) that lead to at least one repository with content. */
  async namespace(prefix: string, n: number, last: string | undefined): Promise<Page<string>> {
    if (prefix !== '') checkName(prefix);
    if (n === 0) return { items: [] };
    return pageOf(await listings.namespacePage(this.db, prefix, n + 1, last), n, (s) => s);
  }

  /** Resolves the repository and its listing ETags; NAME_UNKNOWN when it does not exist. */
  async repository(name: string): Promise<ListedRepository> {
    checkName(name);
    const version = await listings.repositoryVersion(this.db, name);
    if (!version) throw new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { detail: { name } });
    return {
      name,
      id: version.id,
      manifestsEtag: `"m${version.id}.${version.listingVersion}"`,
      tagsEtag: `"r${version.id}.${version.changeSeq}"`,
    };
  }

  /** Every manifest of the repository, tagged or not, from the manifest listing read model. */
  async manifests(repo: ListedRepository, filter: ManifestFilter, n: number, last: string | undefined): Promise<Page<ManifestDescriptor>> {
    // A filter no stored manifest can match (a character PostgreSQL refuses) is an empty page, not a failed query.
    if (n === 0 || findUnstorableText(filter) !== undefined) return { items: [] };
    const rows = await listings.manifestPage(this.db, repo.id, filter, n + 1, last);
    // Keys in descriptor order: artifactType and annotations (when set) before tags and pushedAt.
    const descriptors = rows.map(
      (r): ManifestDescriptor => ({
        mediaType: r.media_type,
        digest: r.digest,
        size: r.size,
        ...(r.artifact_type ? { artifactType: r.artifact_type } : {}),
        ...(r.annotations ? { annotations: r.annotations } : {}),
        tags: r.tags,
        pushedAt: r.pushed_at.toISOString(),
      }),
    );
    return pageOf(descriptors, n, (d) => d.digest);
  }

  /** Tags with their digest and times, from the source tables. */
  async tags(repo: ListedRepository, n: number, last: string | undefined): Promise<Page<TagDetail>> {
    if (n === 0) return { items: [] };
    const rows = await listings.tagDetailsPage(this.db, repo.id, n + 1, last);
    return pageOf(
      rows.map((r) => ({ name: r.name, digest: r.digest, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString() })),
      n,
      (t) => t.name,
    );
  }

  /**
   * Every digest the tag has pointed to, newest first, from the source tables. `last` is the
   * opaque cursor a previous page's Link carried. MANIFEST_UNKNOWN when the tag never existed.
   */
  async tagHistory(repo: ListedRepository, tag: string, n: number, last: string | undefined): Promise<Page<HistoryEntry>> {
    checkTag(tag);
    let before: number | undefined;
    if (last !== undefined) {
      if (!/^\d{1,15}$/.test(last)) throw badParameter('last must be the cursor a previous page linked to', { last });
      before = Number(last);
    }
    const rows = await listings.tagHistoryPage(this.db, repo.id, tag, n + 1, before);
    if (rows.length === 0 && before === undefined) {
      throw new RegistryError('MANIFEST_UNKNOWN', 'tag has no history in this repository', { detail: { tag } });
    }
    const page = rows.slice(0, n).map((r) => ({ digest: r.digest, createdAt: r.created_at.toISOString() }));
    return rows.length > n ? { items: page, next: String(rows[n - 1]!.id) } : { items: page };
  }
}
