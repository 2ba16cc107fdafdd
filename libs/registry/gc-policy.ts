/** Garbage collection settings the registry needs when it enqueues reviews and when it decides. */
export interface GcPolicy {
  /** Seconds between a deletion (tag, manifest, blob link) and the review of what it may have orphaned. */
  graceSeconds: number;
  /**
   * Seconds a blob is kept after an upload, mount or HEAD says a push is about to reference it:
   * the window a client has between sending its layers and sending its manifest.
   */
  uploadGraceSeconds: number;
  /** Untagged manifests: null keeps them; a number collects them once untagged that many seconds. */
  untaggedDeleteAfterSeconds: number | null;
}

export const DEFAULT_GC_POLICY: GcPolicy = { graceSeconds: 86_400, uploadGraceSeconds: 86_400, untaggedDeleteAfterSeconds: null };

/** Delay of a review for a manifest that just lost its last tag or index. */
export function untaggedDelay(policy: GcPolicy): number {
  return Math.max(policy.graceSeconds, policy.untaggedDeleteAfterSeconds ?? 0);
}
