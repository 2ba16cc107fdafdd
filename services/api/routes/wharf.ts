import { checkName } from '../../../libs/oci/index.js';
import type { ListedRepository } from '../../../libs/registry/index.js';
import { parseManifestFilter } from '../manifest-filter.js';
import type { Endpoint } from '../dispatch.js';
import type { Call, MethodTable } from '../call.js';
import { linkNextPage, parsePage } from '../pagination.js';

/*
 * The `_wharf` listing extensions and their discovery. Per-repository listings carry an ETag;
 * HEAD answers with it alone, and If-None-Match with a current ETag gets 304 without the page
 * being read.
 */

type ExtensionsEndpoint = Extract<Endpoint, { kind: 'extensions' }>;
type NamespaceEndpoint = Extract<Endpoint, { kind: 'namespace' }>;
type ManifestListingEndpoint = Extract<Endpoint, { kind: 'manifestListing' }>;
type TagDetailsEndpoint = Extract<Endpoint, { kind: 'tagDetails' }>;
type TagHistoryEndpoint = Extract<Endpoint, { kind: 'tagHistory' }>;

const WHARF_DOCS = 'docs/api.md#extensions';

/** Whether If-None-Match names this ETag (weak comparison, as RFC 9110 asks for If-None-Match) or is `*`. */
export function ifNoneMatchHits(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
  const wanted = opaque(etag);
  return (Array.isArray(header) ? header.join(',') : header).split(',').some((t) => t.trim() === '*' || opaque(t) === wanted);
}

function json(call: Call, body: unknown) {
  return call.reply.code(200).type('application/json').send(body);
}

/**
 * Answers a per-repository listing: resolves the repository (404 NAME_UNKNOWN), sets the ETag,
 * and reads the page only for a GET whose If-None-Match does not already hold that ETag.
 */
async function versioned(
  call: Call,
  name: string,
  etagOf: (repo: ListedRepository) => string,
  page: (repo: ListedRepository) => Promise<unknown>,
  exists?: (repo: ListedRepository) => Promise<unknown>,
) {
  const repo = await call.registry.listings.repository(name);
  // A HEAD or a 304 must not answer for what a GET would refuse with 404.
  if (exists && (call.request.method === 'HEAD' || call.request.headers['if-none-match'] !== undefined)) await exists(repo);
  const etag = etagOf(repo);
  call.reply.header('etag', etag).header('cache-control', 'no-cache');
  if (ifNoneMatchHits(call.request.headers['if-none-match'], etag)) return call.reply.code(304).send();
  if (call.request.method === 'HEAD') return call.reply.code(200).type('application/json').send();
  return json(call, await page(repo));
}

const getAndHead = <E extends Endpoint>(handler: (call: Call<E>) => Promise<unknown>): MethodTable<E> => ({ GET: handler, HEAD: handler });

export const extensions: MethodTable<ExtensionsEndpoint> = {
  GET: async (call) => {
    const { name } = call.endpoint;
    if (name !== undefined) checkName(name);
    // Registry level: paths under /v2/; repository level: paths under /v2/<name>/.
    const endpoints =
      name === undefined
        ? ['_wharf/repositories', '{prefix}/_wharf/repositories', '{name}/_wharf/manifests', '{name}/_wharf/tags', '{name}/_wharf/tags/{tag}/history']
        : ['_wharf/repositories', '_wharf/manifests', '_wharf/tags', '_wharf/tags/{tag}/history'];
    return json(call, {
      extensions: [
        {
          name: '_oci',
          description: 'Extension discovery',
          url: 'https://github.com/opencontainers/distribution-spec/blob/main/extensions/_oci.md',
          endpoints: ['_oci/ext/discover'],
        },
        {
          name: '_wharf',
          description: 'Listings: repositories under a namespace, every manifest of a repository (tagged or not), tags with times and history; per-repository ETags',
          url: WHARF_DOCS,
          endpoints,
        },
      ],
    });
  },
};

export const namespace: MethodTable<NamespaceEndpoint> = {
  GET: async (call) => {
    const { prefix } = call.endpoint;
    const { n, last } = parsePage(call.query, call.pageSize);
    const page = await call.registry.listings.namespace(prefix, n, last);
    linkNextPage(call, prefix === '' ? `${call.v2}/_wharf/repositories` : `${call.v2}/${prefix}/_wharf/repositories`, n, page.next);
    return json(call, { name: prefix, repositories: page.items });
  },
};

export const manifestListing: MethodTable<ManifestListingEndpoint> = getAndHead(async (call) => {
  const { name } = call.endpoint;
  const { n, last } = parsePage(call.query, call.pageSize);
  const filter = parseManifestFilter(call.query);
  return versioned(
    call,
    name,
    (repo) => repo.manifestsEtag,
    async (repo) => {
      const page = await call.registry.listings.manifests(repo, filter, n, last);
      linkNextPage(call, `${call.v2}/${name}/_wharf/manifests`, n, page.next);
      return { name, manifests: page.items };
    },
  );
});

export const tagDetails: MethodTable<TagDetailsEndpoint> = getAndHead(async (call) => {
  const { name } = call.endpoint;
  const { n, last } = parsePage(call.query, call.pageSize);
  return versioned(
    call,
    name,
    (repo) => repo.tagsEtag,
    async (repo) => {
      const page = await call.registry.listings.tags(repo, n, last);
      linkNextPage(call, `${call.v2}/${name}/_wharf/tags`, n, page.next);
      return { name, tags: page.items };
    },
  );
});

export const tagHistory: MethodTable<TagHistoryEndpoint> = getAndHead(async (call) => {
  const { name, tag } = call.endpoint;
  const { n, last } = parsePage(call.query, call.pageSize);
  return versioned(
    call,
    name,
    (repo) => repo.tagsEtag,
    async (repo) => {
      const page = await call.registry.listings.tagHistory(repo, tag, n, last);
      linkNextPage(call, `${call.v2}/${name}/_wharf/tags/${tag}/history`, n, page.next);
      return { name, tag, history: page.items };
    },
    (repo) => call.registry.listings.tagHistory(repo, tag, 1, undefined),
  );
});
