import { isStorableText, RegistryError, type ErrorCode } from '../../libs/oci/index.js';
import type { Endpoint } from './dispatch.js';

/** What `last` names on each listing, and so which code refuses one no stored key can equal. */
const LAST_NAMES: Partial<Record<Endpoint['kind'], ErrorCode>> = {
  catalog: 'NAME_INVALID',
  namespace: 'NAME_INVALID',
  tags: 'TAG_INVALID',
  tagDetails: 'TAG_INVALID',
  manifestListing: 'DIGEST_INVALID',
};

/**
 * Refuses a `last` PostgreSQL could not compare (a NUL): no name, tag or digest contains one, and
 * the query would fail as a 500. Filters (artifactType, annotation) with one simply match nothing.
 */
export function checkPageMarker(kind: Endpoint['kind'], query: URLSearchParams): void {
  const code = LAST_NAMES[kind];
  const last = query.get('last');
  if (code === undefined || last === null || isStorableText(last)) return;
  throw new RegistryError(code, 'last must not contain U+0000', { detail: { last } });
}
