import type { EventContext } from '../events/index.js';

/** What the registry needs to know about the request it serves: who asked, and the URL base for event links. */
export interface RequestContext extends EventContext {
  /** e.g. http://registry.example:5000/prefix — where /v2/... of this registry lives. */
  urlBase: string;
  /** Whether the caller may read (pull from) a repository: decides cross-repository mounts. Absent: anyone may. */
  mayRead?: (repository: string) => boolean;
}
