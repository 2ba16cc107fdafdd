import type { Api } from './api.js';
import type { Session } from './session.js';

/** What every view gets: the API, the session, the route's path and query, and where to draw. */
export interface ViewContext {
  api: Api;
  session: Session;
  path: string;
  query: URLSearchParams;
  main: HTMLElement;
  /** Replaces the hash (a new route) and renders it. */
  go(hash: string): void;
  /** Whether this view is still the one on screen (a slow answer for a page left behind is dropped). */
  current(): boolean;
}

/** The hash of a route: `#/repo/team/app?tab=tags`. */
export function route(path: string, query: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return `#/${path}${s ? `?${s}` : ''}`;
}
