import type { Access } from '../../libs/auth/index.js';
import { matchEndpoint } from './dispatch.js';

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
 * deleting content needs delete. `path` is the decoded path after /v2/. An empty `access` means
 * authentication alone (the base endpoint, a path that is no endpoint).
 */
export function requiredAccess(method: string, path: string, query: URLSearchParams): Requirement {
  const none: Requirement = { access: [], alsoAsk: [] };
  // Extension listings (`_wharf`), whatever endpoint kinds dispatch gives them: a repository's need pull on it, namespace listings the catalog grant.
  const listing = /^(?:(.+)\/)?_wharf\/(.+)$/.exec(path);
  if (listing) {
    const [, name, rest] = listing;
    if (name === undefined && (rest === 'admin' || rest!.startsWith('admin/'))) return { access: [ADMIN], alsoAsk: [] };
    return { access: [name === undefined || rest!.startsWith('repositories') ? CATALOG : repo(name, 'pull')], alsoAsk: [] };
  }
  const endpoint = matchEndpoint(path);
  if (!endpoint) return none;
  const read = method === 'GET' || method === 'HEAD';
  switch (endpoint.kind) {
    case 'base':
      return none;
    case 'catalog':
      return { access: [CATALOG], alsoAsk: [] };
    case 'tags':
    case 'referrers':
      return { access: [repo(endpoint.name, 'pull')], alsoAsk: [] };
    case 'manifest':
    case 'blob':
      if (read) return { access: [repo(endpoint.name, 'pull')], alsoAsk: [] };
      if (method === 'DELETE') return { access: [repo(endpoint.name, 'delete')], alsoAsk: [] };
      return { access: [repo(endpoint.name, 'pull', 'push')], alsoAsk: [] };
    case 'uploads': {
      const from = query.get('from');
      return { access: [repo(endpoint.name, 'pull', 'push')], alsoAsk: query.has('mount') && from ? [repo(from, 'pull')] : [] };
    }
    case 'upload':
      // Cancelling an upload is part of pushing, not deleting content.
      return { access: [repo(endpoint.name, 'pull', 'push')], alsoAsk: [] };
    default: {
      // An endpoint kind added later: a repository's content needs pull to read, push to write.
      const other = endpoint as { name?: unknown };
      return { access: typeof other.name === 'string' ? [repo(other.name, ...(read ? ['pull'] : ['pull', 'push']))] : [], alsoAsk: [] };
    }
  }
}
