import type { Kysely } from 'kysely';
import type { EventBus, EventContext, EventTarget } from '../events/index.js';
import type { Schema } from '../metadata/index.js';
import type { BlobStore } from '../storage/index.js';
import { DEFAULT_GC_POLICY, type GcPolicy } from './gc-policy.js';
import type { ManifestReadCache } from './manifest-read-cache.js';
import type { PullThroughCache } from './proxy/pull-through.js';
import type { UpstreamSettings } from './proxy/upstreams.js';

export interface RegistryOptions {
  pullEvents: boolean;
  manifestMaxBytes: number;
  /** A foreign layer's urls must each match one of these and none of `foreignUrlDeny`. */
  foreignUrlAllow: RegExp[];
  foreignUrlDeny: RegExp[];
  /** Seconds a blob GET may be answered with a redirect to the store's presigned URL; 0 streams every blob through the node. */
  blobRedirectSeconds: number;
  /** Garbage collection grace and untagged policy; DEFAULT_GC_POLICY when absent. */
  gc?: GcPolicy;
  /** Configured webhook endpoints (URLs redacted), listed by the admin view even before they have deliveries. */
  webhookEndpoints?: Array<{ name: string; url: string; disabled: boolean }>;
  /** Largest blob an upload may grow to, counted while the body streams; 0: no limit. */
  blobMaxBytes?: number;
  /** Pull-through cache upstreams (proxy.upstreams); none: no repository is proxied. */
  proxyUpstreams?: UpstreamSettings[];
  /** Seconds a pull-through blob fill survives without a heartbeat before another request takes it over (proxy.filllease). */
  proxyFillLeaseSeconds?: number;
  /**
   * Milliseconds between no-op statements in an upload's transaction while its body keeps
   * arriving, so the server's idle-in-transaction backstop ends only stalled ones; absent: none.
   */
  uploadKeepAliveMs?: number;
  /** Whether a mount without `from` may find the blob in any readable repository (the spec makes this optional); default true. */
  automaticMount?: boolean;
}

export interface RegistryDeps {
  db: Kysely<Schema>;
  /** Pool whose connections stay checked out while an upload body streams. */
  uploadsDb: Kysely<Schema>;
  store: BlobStore;
  /** The event bus, read for its consumers' lag (the admin status); events are not published through it here. */
  bus: EventBus;
  /** Pull events skip the outbox: offered here (a PullCoalescer in front of a BestEffortPublisher), never awaited by the request. */
  pullEvents: { offer(subject: string, target: EventTarget, context: EventContext): void };
  /** Called after a commit that wrote outbox rows, so the relay can publish them now. */
  outboxWritten: () => void;
  /** Reports failures that must not fail the request (a best-effort pull event, a redundant object left behind). */
  warn: (message: string, err: unknown) => void;
  options: RegistryOptions;
  /** Set by Registry when options.proxyUpstreams names any. */
  proxy?: PullThroughCache;
  /** Manifest GET/HEAD from memory, kept coherent by the events; absent: every read asks the database. */
  manifestCache?: ManifestReadCache;
}

export function gcPolicy(deps: RegistryDeps): GcPolicy {
  return deps.options.gc ?? DEFAULT_GC_POLICY;
}
