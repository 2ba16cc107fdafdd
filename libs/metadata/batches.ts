/** PostgreSQL's extended protocol numbers bind parameters with 16 bits: one statement carries at most 65,535. */
const MAX_BIND_PARAMETERS = 65_535;
/** Room left for the statement's other parameters (a repository id, a timestamp). */
const RESERVED = 35;

/**
 * `items` in consecutive slices small enough that a statement binding `perItem` parameters for
 * each stays within the protocol's limit; order is kept, so sorted input still locks in order.
 */
export function batches<T>(items: readonly T[], perItem: number): T[][] {
  const size = Math.max(1, Math.floor((MAX_BIND_PARAMETERS - RESERVED) / perItem));
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
