import type { Config } from '../../libs/config/index.js';
import type { EventBus } from '../../libs/events/index.js';
import type { Logger } from '../../libs/log/index.js';
import type { Database } from '../../libs/metadata/index.js';
import type { GcPolicy } from '../../libs/registry/index.js';
import type { BlobStore } from '../../libs/storage/index.js';

/** What a worker role gets: the process's drivers, its config and a logger named after the role. */
export interface WorkerContext {
  config: Config;
  /** gc.grace, gc.uploadgrace and gc.untagged, parsed once (services/cli/wiring.ts). */
  gcPolicy: GcPolicy;
  database: Database;
  store: BlobStore;
  bus: EventBus;
  logger: Logger;
}

/**
 * One kind of worker (webhooks, catalog-indexer, manifest-lister, gc). Replicas of a role share
 * its durable consumer or its queue, so any number of them may run. start() returns a stop
 * function that finishes or hands back the work in flight.
 */
export interface WorkerRole {
  name: string;
  start(context: WorkerContext): Promise<() => Promise<void>>;
}
