import type { Access } from '../../libs/auth/index.js';
import { splitWharfPath, type V2Request } from './dispatch.js';

/** What a request needs: `access` must be granted; `alsoAsk` is named in the challenge too but not required (a mount's source). */
export interface Requirement {
  access: Access[];
  alsoAsk: Access[];
}

const repo = (name: string, ...actions: string[]): Access => ({ type: 'repository', name, actions });
const CATALOG: Access = { type: 'registry', name: 'catalog', actions: ['*'] };
export const ADMIN: Access = { type: 'registry', name: 'admin', actions: ['*'] };

/**
 * The access a request under /v2/ needs, from the endpoint it dispatches to. Reads need pull;
 * writes need pull and push (what clients ask for when they push, as in CNCF Distribution);
 * deleting content needs delete. An empty `access` means authentication alone (the base
 * endpoint, a path that is no endpoint).
 */
export function requiredAccess(method: string, { path, query, endpoint }: V2Request): Requirement {
  const none: Requirement = { access: [], alsoAsk: [] };
  const only = (access: Access): Requirement => ({ access: [access], alsoAsk: [] });
  if (!endpoint) {
    // Under `_wharf` even where no endpoint answers, so a 404 tells nothing: admin paths need the
    // admin grant, other root paths the catalog grant, a repository's paths pull on it.
    const wharf = splitWharfPath(path);
    if (!wharf) return none;
    if (wharf.name === undefined) return only(wharf.rest === 'admin' || wharf.rest.startsWith('admin/') ? ADMIN : CATALOG);
    return only(repo(wharf.name, 'pull'));
  }
  const read = method === 'GET' || method === 'HEAD';
  switch (endpoint.kind) {
    case 'base':
      return none;
    case 'catalog':
    case 'namespace':
      return only(CATALOG);
    case 'tags':
    case 'referrers':
    case 'manifestListing':
    case 'tagDetails':
    case 'tagHistory':
      return only(repo(endpoint.name, 'pull'));
    case 'extensions':
      if (endpoint.name === undefined) return none;
      return only(repo(endpoint.name, ...(read ? ['pull'] : ['pull', 'push'])));
    case 'manifest':
    case 'blob':
      if (read) return only(repo(endpoint.name, 'pull'));
      if (method === 'DELETE') return only(repo(endpoint.name, 'delete'));
      return only(repo(endpoint.name, 'pull', 'push'));
    case 'uploads': {
      const from = query.get('from');
      return { access: [repo(endpoint.name, 'pull', 'push')], alsoAsk: query.has('mount') && from ? [repo(from, 'pull')] : [] };
    }
    case 'upload':
      // Cancelling an upload is part of pushing, not deleting content.
      return only(repo(endpoint.name, 'pull', 'push'));
    default:
      return unreachable(endpoint);
  }
}

/** A compile-time check that every endpoint kind has its case above. */
function unreachable(endpoint: never): never {
  throw new Error(`no access rule for endpoint ${JSON.stringify(endpoint)}`);
}
