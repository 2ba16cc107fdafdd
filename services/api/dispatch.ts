/**
 * Maps a path under /v2/ to an endpoint. Repository names have slashes, so the name is whatever
 * precedes the last endpoint keyword — the same greedy match Distribution's router makes —
 * except under `_wharf`, which no name contains (splitWharfPath).
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

/**
 * `_wharf` is a segment no repository name can contain, so the first one splits an extension
 * path: the repository or namespace before it (none at the root), the extension's own path after.
 */
const WHARF_PATH = /^(?:(.+?)\/)?_wharf\/(.+)$/;

export function splitWharfPath(path: string): { name: string | undefined; rest: string } | undefined {
  const m = WHARF_PATH.exec(path);
  return m ? { name: m[1], rest: m[2]! } : undefined;
}

const WHARF_PATTERNS: Array<[RegExp, (m: RegExpExecArray, name: string | undefined) => Endpoint | undefined]> = [
  [/^repositories$/, (_m, name) => ({ kind: 'namespace', prefix: name ?? '' })],
  [/^manifests$/, (_m, name) => (name === undefined ? undefined : { kind: 'manifestListing', name })],
  [/^tags$/, (_m, name) => (name === undefined ? undefined : { kind: 'tagDetails', name })],
  [/^tags\/([^/]+)\/history$/, (m, name) => (name === undefined ? undefined : { kind: 'tagHistory', name, tag: m[1]! })],
];

const PATTERNS: Array<[RegExp, (m: RegExpExecArray) => Endpoint]> = [
  [/^$/, () => ({ kind: 'base' })],
  [/^_catalog$/, () => ({ kind: 'catalog' })],
  // Discovery: `_oci`, like `_wharf`, is a segment no repository name can contain.
  [/^_oci\/ext\/discover$/, () => ({ kind: 'extensions' })],
  [/^(.+)\/_oci\/ext\/discover$/, (m) => ({ kind: 'extensions', name: m[1]! })],
  [/^(.+)\/tags\/list$/, (m) => ({ kind: 'tags', name: m[1]! })],
  [/^(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: 'manifest', name: m[1]!, reference: m[2]! })],
  [/^(.+)\/blobs\/uploads\/?$/, (m) => ({ kind: 'uploads', name: m[1]! })],
  [/^(.+)\/blobs\/uploads\/([^/]+)$/, (m) => ({ kind: 'upload', name: m[1]!, id: m[2]! })],
  [/^(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: 'blob', name: m[1]!, digest: m[2]! })],
  [/^(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: 'referrers', name: m[1]!, digest: m[2]! })],
];

export function matchEndpoint(path: string): Endpoint | undefined {
  const wharf = splitWharfPath(path);
  if (wharf) {
    for (const [re, build] of WHARF_PATTERNS) {
      const m = re.exec(wharf.rest);
      const endpoint = m ? build(m, wharf.name) : undefined;
      if (endpoint) return endpoint;
    }
  }
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

/** The path of a request URL, percent-decoded, and its query; path undefined when it does not decode. */
export function splitUrl(url: string): { path: string | undefined; query: URLSearchParams } {
  const q = url.indexOf('?');
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  try {
    return { path: decodeURIComponent(q === -1 ? url : url.slice(0, q)), query };
  } catch {
    return { path: undefined, query };
  }
}

/** A request under /v2/ as the router and the access check both see it: matched once, when it arrives. */
export interface V2Request {
  /** The decoded path after /v2/. */
  path: string;
  query: URLSearchParams;
  /** What the path dispatches to; undefined: no endpoint (404, after the access check). */
  endpoint: Endpoint | undefined;
}

/**
 * Matches a request URL under `v2` (the /v2 root with any prefix); undefined when the path does
 * not decode or is not under `v2`. The whole path is decoded before the prefix is removed, as the
 * router decodes it when it picks the route: `/v%32/x` is served as /v2/x, so it must be checked
 * as /v2/x.
 */
export function matchV2Url(url: string, v2: string): V2Request | undefined {
  const { path, query } = splitUrl(url);
  if (path === undefined || !path.startsWith(`${v2}/`)) return undefined;
  const rest = path.slice(v2.length + 1);
  return { path: rest, query, endpoint: matchEndpoint(rest) };
}
