import { AdminStatusService } from './admin-status.js';
import { BlobService } from './blob-service.js';
import type { RegistryDeps } from './deps.js';
import { DiscoveryService } from './discovery.js';
import { ListingService } from './listing-service.js';
import { ManifestService } from './manifest-service.js';
import { UploadService } from './upload-service.js';
import { WebhookStatusService } from './webhook-status.js';

/** The domain behind the HTTP API: routes call this, never SQL or storage. */
export class Registry {
  readonly blobs: BlobService;
  readonly uploads: UploadService;
  readonly manifests: ManifestService;
  readonly discovery: DiscoveryService;
  readonly webhooks: WebhookStatusService;
  readonly listings: ListingService;
  readonly admin: AdminStatusService;

  constructor(readonly deps: RegistryDeps) {
    this.blobs = new BlobService(deps);
    this.uploads = new UploadService(deps);
    this.manifests = new ManifestService(deps);
    this.discovery = new DiscoveryService(deps.db);
    this.webhooks = new WebhookStatusService(deps.db, deps.options.webhookEndpoints ?? []);
    this.listings = new ListingService(deps.db);
    this.admin = new AdminStatusService(deps.db, deps.bus);
  }
}
