import { listings, manifests, tags } from '../metadata/index.js';
import { MediaTypes, RegistryError, checkName, isStorableText, parseDigest, type Descriptor } from '../oci/index.js';

export interface Page<T> {
  items: T[];
  /** The last item, when more follow: the `last` of the next page. */
  next?: string;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType: string;
  manifests: Descriptor[];
}

function page(items: string[], n: number): Page<string> {
  if (items.length > n) return { items: items.slice(0, n), next: items[n - 1] };
  return { items };
}

/** Content discovery: tags, referrers, and the catalog. */
export class DiscoveryService {
  constructor(private readonly db: import('kysely').Kysely<import('../metadata/index.js').Schema>) {}

  /** A page of tags as the text of a JSON array, and the `last` of the next page when more follow. */
  async tagsJson(repository: string, n: number, last: string | undefined): Promise<{ json: string; next?: string }> {
    checkName(repository);
    const page = await tags.listTagsJson(this.db, repository, n, last);
    if (page === undefined) {
      throw new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { detail: { name: repository } });
    }
    return page;
  }

  async referrers(repository: string, digest: string, artifactType: string | undefined): Promise<ImageIndex> {
    checkName(repository);
    parseDigest(digest);
    // No stored artifactType holds a character PostgreSQL refuses: such a filter matches nothing.
    const rows = artifactType !== undefined && !isStorableText(artifactType) ? [] : await manifests.listReferrers(this.db, repository, digest, artifactType);
    return {
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: rows.map((r) => {
        const d: Descriptor = { mediaType: r.media_type, digest: r.digest, size: r.size };
        if (r.artifact_type) d.artifactType = r.artifact_type;
        if (r.annotations) d.annotations = r.annotations;
        return d;
      }),
    };
  }

  /** Repositories that hold at least one manifest: the catalog read model, O(page) (see ListingService). */
  async catalog(n: number, last: string | undefined): Promise<Page<string>> {
    if (n === 0) return { items: [] };
    return page(await listings.catalogPage(this.db, n + 1, last), n);
  }
}
