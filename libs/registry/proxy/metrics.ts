import { counter } from '../../metrics/index.js';

/** Per-upstream figures of the pull-through cache (docs/proxy.md). */
export const proxyMetrics = {
  /** kind manifest|blob; result hit (served from the cache, no upstream request), miss (fetched), revalidated (a HEAD confirmed or moved a tag), stale (upstream failed, cached copy served), waited (another request's fill). */
  requests: counter({ name: 'wharf_proxy_requests_total', help: 'Pull-through cache lookups by upstream, kind and result', labelNames: ['upstream', 'kind', 'result'] }),
  upstreamErrors: counter({
    name: 'wharf_proxy_upstream_errors_total',
    help: 'Failed requests to an upstream (unavailable, unauthorized, protocol, digest)',
    labelNames: ['upstream', 'reason'],
  }),
  upstreamBytes: counter({ name: 'wharf_proxy_upstream_bytes_total', help: 'Bytes of blobs and manifests read from an upstream', labelNames: ['upstream'] }),
  expired: counter({
    name: 'wharf_proxy_retention_removed_total',
    help: 'Cached manifests and blob links removed after their retention without a pull',
    labelNames: ['upstream', 'kind'],
  }),
};
