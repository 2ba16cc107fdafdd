/**
 * Maps a path under /v2/ to an endpoint. Repository names have slashes, so the name is whatever
 * precedes the last endpoint keyword — the same greedy match Distribution's router makes.
 */
export type Endpoint =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'referrers'; name: string; digest: string }
  | { kind: 'extensions'; name?: string }
  | { kind: 'namespace'; prefix: string }
  | { kind: 'manifestListing'; name: string }
  | { kind: 'tagDetails'; name: string }
  | { kind: 'tagHistory'; name: string; tag: string };

const PATTERNS: Array<[RegExp, (m: RegExpExecArray) => Endpoint]> = [
  [/^$/, () => ({ kind: 'base' })],
  [/^_catalog$/, () => ({ kind: 'catalog' })],
  // Extensions: `_wharf` and `_oci` are segments no repository name can contain.
  [/^_oci\/ext\/discover$/, () => ({ kind: 'extensions' })],
  [/^(.+)\/_oci\/ext\/discover$/, (m) => ({ kind: 'extensions', name: m[1]! })],
  [/^_wharf\/repositories$/, () => ({ kind: 'namespace', prefix: '' })],
  [/^(.+)\/_wharf\/repositories$/, (m) => ({ kind: 'namespace', prefix: m[1]! })],
  [/^(.+)\/_wharf\/manifests$/, (m) => ({ kind: 'manifestListing', name: m[1]! })],
  [/^(.+)\/_wharf\/tags$/, (m) => ({ kind: 'tagDetails', name: m[1]! })],
  [/^(.+)\/_wharf\/tags\/([^/]+)\/history$/, (m) => ({ kind: 'tagHistory', name: m[1]!, tag: m[2]! })],
  [/^(.+)\/tags\/list$/, (m) => ({ kind: 'tags', name: m[1]! })],
  [/^(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: 'manifest', name: m[1]!, reference: m[2]! })],
  [/^(.+)\/blobs\/uploads\/?$/, (m) => ({ kind: 'uploads', name: m[1]! })],
  [/^(.+)\/blobs\/uploads\/([^/]+)$/, (m) => ({ kind: 'upload', name: m[1]!, id: m[2]! })],
  [/^(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: 'blob', name: m[1]!, digest: m[2]! })],
  [/^(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: 'referrers', name: m[1]!, digest: m[2]! })],
];

export function matchEndpoint(path: string): Endpoint | undefined {
  for (const [re, build] of PATTERNS) {
    const m = re.exec(path);
    if (m) return build(m);
  }
  return undefined;
}

/** Route templates for logs and metrics: never raw paths, whose names would explode cardinality. */
export const ROUTE_TEMPLATES: Record<Endpoint['kind'], string> = {
  base: '/v2/',
  catalog: '/v2/_catalog',
  tags: '/v2/<name>/tags/list',
  manifest: '/v2/<name>/manifests/<reference>',
  uploads: '/v2/<name>/blobs/uploads/',
  upload: '/v2/<name>/blobs/uploads/<uuid>',
  blob: '/v2/<name>/blobs/<digest>',
  referrers: '/v2/<name>/referrers/<digest>',
  extensions: '/v2/_oci/ext/discover',
  namespace: '/v2/<prefix>/_wharf/repositories',
  manifestListing: '/v2/<name>/_wharf/manifests',
  tagDetails: '/v2/<name>/_wharf/tags',
  tagHistory: '/v2/<name>/_wharf/tags/<tag>/history',
};

/**
 * Splits a request URL into the decoded path after `v2`/ (the /v2 root with any prefix) and the
 * query; undefined when the path does not decode or is not under `v2`. The whole path is decoded
 * before the prefix is removed, as the router decodes it when it picks the route: `/v%32/x` is
 * served as /v2/x, so it must be checked as /v2/x.
 */
export function splitV2Url(url: string, v2: string): { path: string; query: URLSearchParams } | undefined {
  const q = url.indexOf('?');
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  let path: string;
  try {
    path = decodeURIComponent(q === -1 ? url : url.slice(0, q));
  } catch {
    return undefined;
  }
  if (!path.startsWith(`${v2}/`)) return undefined;
  return { path: path.slice(v2.length + 1), query };
}
