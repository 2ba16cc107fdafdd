import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { blobs, ManifestLookup } from '../../metadata/index.js';
import { RegistryError } from '../../oci/index.js';
import type { BlobHandle } from '../blob-service.js';
import type { RequestContext } from '../context.js';
import type { RegistryDeps } from '../deps.js';
import { BlobCache } from './blob-fill.js';
import { ManifestCache, touchThrottled, type ManifestRow } from './manifest-cache.js';
import { proxyMetrics } from './metrics.js';
import { refreshReferrers } from './referrers-cache.js';
import { UpstreamRoutes, type UpstreamSettings } from './upstreams.js';

/**
 * The pull-through cache: what ManifestService, BlobService, UploadService and DiscoveryService ask
 * about repositories under a proxied prefix. Cached content is ordinary content (rows, tags, blobs,
 * events); this decides when to ask the upstream and how to fetch from it.
 */
export class PullThroughCache {
  readonly routes: UpstreamRoutes;
  private readonly manifests: ManifestCache;
  private readonly blobs: BlobCache;
  /** Names this process in fill rows (their owner) and in events of work no request reached. */
  private readonly node = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

  constructor(
    private readonly deps: RegistryDeps,
    upstreams: UpstreamSettings[],
  ) {
    this.routes = new UpstreamRoutes(upstreams, (upstream, info) => deps.warn(`upstream ${upstream}: attempt failed at ${info.url}: ${info.error}`, undefined));
    this.manifests = new ManifestCache(deps);
    this.blobs = new BlobCache(deps, this.node, deps.options.proxyFillLeaseSeconds);
  }

  serves(repository: string): boolean {
    return this.routes.route(repository) !== undefined;
  }

  /** Pushes into a proxied prefix are refused: its content is the upstream's. */
  refusePush(repository: string): void {
    const proxied = this.routes.route(repository);
    if (!proxied) return;
    throw new RegistryError('DENIED', `${proxied.upstream.config.prefix}/ is a pull-through cache of upstream ${proxied.upstream.config.name}: pushes are refused`, {
      detail: { repository, upstream: proxied.upstream.config.name },
    });
  }

  /** The manifest of a proxied repository (undefined when `repository` is not proxied). */
  async manifest(repository: string, ref: ManifestLookup, withPayload: boolean, context: RequestContext): Promise<ManifestRow | undefined> {
    const proxied = this.routes.route(repository);
    if (!proxied) return undefined;
    return this.manifests.get(proxied, repository, ref, withPayload, context);
  }

  /** A blob of a proxied repository that BlobService just found not linked there (undefined when `repository` is not proxied). */
  async blob(repository: string, digest: string, head: boolean, context: RequestContext | undefined): Promise<BlobHandle | undefined> {
    const proxied = this.routes.route(repository);
    if (!proxied) return undefined;
    return this.blobs.find(proxied, repository, digest, head, context ?? backgroundContext(this.node), true);
  }

  /**
   * A blob GET in a proxied repository, the linked-blob and manifest look-ups included (one
   * statement for those and the fill's claim); undefined when `repository` is not proxied.
   */
  async blobGet(repository: string, digest: string, context: RequestContext | undefined): Promise<blobs.BlobOrManifest | { handle: BlobHandle } | undefined> {
    const proxied = this.routes.route(repository);
    if (!proxied) return undefined;
    const { remoteName } = proxied;
    if (remoteName === undefined) return undefined;
    return this.blobs.findOrFill({ ...proxied, remoteName }, repository, digest, context ?? backgroundContext(this.node));
  }

  /** A linked blob of a proxied repository was read: counted, and its pull time kept for retention. */
  blobHit(repository: string, digest: string): void {
    const proxied = this.routes.route(repository);
    if (!proxied) return;
    proxyMetrics.requests.inc({ upstream: proxied.upstream.config.name, kind: 'blob', result: 'hit' });
    touchThrottled(this.deps, repository, 'blob', digest, proxied.upstream.config.name);
  }

  /** Before the local referrers listing: brings the upstream's referrers of `digest` in, once per ttl. */
  async referrers(repository: string, digest: string, context: RequestContext | undefined): Promise<void> {
    const proxied = this.routes.route(repository);
    if (!proxied) return;
    await refreshReferrers(this.deps, proxied, repository, digest, context ?? backgroundContext(this.node));
  }
}

/** For work no request context reached (events still name the upstream as actor). */
function backgroundContext(node: string): RequestContext {
  return { urlBase: '', request: { id: '', addr: '', host: '', method: 'GET', useragent: '' }, actor: {}, source: { addr: '', instanceID: node } };
}
