const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration in milliseconds, written as Distribution writes them ("500ms", "5s", "1m30s") with
 * "d" for days too; undefined when the text is not one.
 */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(m[1]) * UNITS[m[2]!]!;
  return Math.round(total);
}

/**
 * `gc.untagged`: `keep` (null) or `delete-after <duration>` (seconds, rounded up); a bare number
 * is seconds and a space may stand between number and unit (`delete-after 7 d`).
 */
export function parseUntaggedPolicy(text: string): number | null | undefined {
  const value = text.trim();
  if (value === 'keep') return null;
  const match = /^delete-after\s+(.+)$/.exec(value);
  if (!match) return undefined;
  const spec = match[1]!.replace(/^(\d+)\s+([a-z]+)$/, '$1$2');
  const ms = /^\d+$/.test(spec) ? Number(spec) * 1000 : parseDuration(spec);
  return ms === undefined ? undefined : Math.ceil(ms / 1000);
}
