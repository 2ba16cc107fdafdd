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

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90`, `90s`, `15m`, `24h`, `7d` -> seconds; undefined when it is none of those. */
export function parseDuration(text: string): number | undefined {
  const match = /^\s*(\d+)\s*([smhd]?)\s*$/.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * UNITS[match[2] || 's']!;
}

/** `keep` or `delete-after <duration>`; throws a message naming the accepted forms. */
export function parseUntaggedPolicy(text: string): number | null {
  const value = text.trim();
  if (value === 'keep') return null;
  const match = /^delete-after\s+(.+)$/.exec(value);
  const seconds = match ? parseDuration(match[1]!) : undefined;
  if (seconds === undefined) throw new Error(`gc.untagged must be "keep" or "delete-after <duration>" (e.g. "delete-after 7d"), not ${JSON.stringify(text)}`);
  return seconds;
}

/** Delay of a review for a manifest that just lost its last tag or index. */
export function untaggedDelay(policy: GcPolicy): number {
  return Math.max(policy.graceSeconds, policy.untaggedDeleteAfterSeconds ?? 0);
}
