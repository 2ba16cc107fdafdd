import type { Kysely } from 'kysely';
import type { EventBus } from '../events/index.js';
import type { Schema } from '../metadata/index.js';
import type { BlobStore } from '../storage/index.js';
import { DEFAULT_GC_POLICY, type GcPolicy } from './gc-policy.js';

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
  /** Pull events go straight to the bus; everything else through the outbox. */
  bus: EventBus;
  /** Called after a commit that wrote outbox rows, so the relay can publish them now. */
  outboxWritten: () => void;
  /** Reports failures that must not fail the request (a best-effort pull event, a redundant object left behind). */
  warn: (message: string, err: unknown) => void;
  options: RegistryOptions;
}

export function gcPolicy(deps: RegistryDeps): GcPolicy {
  return deps.options.gc ?? DEFAULT_GC_POLICY;
}
