import { RegistryError } from '../../libs/oci/index.js';
import type { Call } from './call.js';

export interface PageRequest {
  n: number;
  last: string | undefined;
}

/** Reads `n` and `last` from a query string; `n` above `max` is clamped, not refused. */
export function parsePage(query: URLSearchParams, max: number): PageRequest {
  const rawN = query.get('n');
  let n = max;
  if (rawN !== null) {
    if (!/^\d+$/.test(rawN)) {
      throw new RegistryError('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer', { detail: { n: rawN } });
    }
    n = Math.min(Number(rawN), max);
  }
  const last = query.get('last') ?? undefined;
  return { n, last: last === '' ? undefined : last };
}

/** The `Link` header value pointing to the page after `last`, keeping the caller's other parameters. */
export function nextLink(path: string, query: URLSearchParams, n: number, last: string): string {
  const next = new URLSearchParams(query);
  next.set('n', String(n));
  next.set('last', last);
  return `<${path}?${next.toString()}>; rel="next"`;
}

/** Sets the `Link` header to the next page of the listing at `path`, when there is one. */
export function linkNextPage(call: Call, path: string, n: number, next: string | undefined): void {
  if (next !== undefined) call.reply.header('link', nextLink(path, call.query, n, next));
}
