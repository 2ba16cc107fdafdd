import { AdminStatusService } from './admin-status.js';
import { BlobService } from './blob-service.js';
import type { RegistryDeps } from './deps.js';
import { DiscoveryService } from './discovery.js';
import { ListingService } from './listing-service.js';
import { ManifestService } from './manifest-service.js';
import { UploadService } from './upload-service.js';
import { WebhookStatusService } from './webhook-status.js';
import { PullThroughCache } from './proxy/pull-through.js';

/** The domain behind the HTTP API: routes call this, never SQL or storage. */
export class Registry {
  readonly blobs: BlobService;
  readonly uploads: UploadService;
  readonly manifests: ManifestService;
  readonly discovery: DiscoveryService;
  readonly webhooks: WebhookStatusService;
  readonly listings: ListingService;
  readonly admin: AdminStatusService;

  readonly proxy: PullThroughCache | undefined;

  constructor(readonly deps: RegistryDeps) {
    const upstreams = deps.options.proxyUpstreams ?? [];
    if (upstreams.length > 0) {
      deps = { ...deps };
      deps.proxy = this.proxy = new PullThroughCache(deps, upstreams);
      this.deps = deps;
    }
    this.blobs = new BlobService(deps);
    this.uploads = new UploadService(deps);
    this.manifests = new ManifestService(deps);
    this.discovery = new DiscoveryService(deps.db, deps.proxy);
    this.webhooks = new WebhookStatusService(deps.db, deps.options.webhookEndpoints ?? []);
    this.listings = new ListingService(deps.db);
    this.admin = new AdminStatusService(deps.db, deps.bus);
  }
}
