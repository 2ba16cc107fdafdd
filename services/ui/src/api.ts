/**
 * The UI's only way to the registry: the public HTTP API (/v2, the _wharf listings, referrers,
 * the admin endpoints), with a token for exactly the access each request needs (token mode),
 * and an ETag cache so a revisited page costs a 304.
 */
import { scopeString, type Access, type Session } from './session.js';

export interface Answer<T> {
  status: number;
  ok: boolean;
  body: T;
  headers: Headers;
  /** `last` of the next page, from the Link header. */
  next?: string;
  /** For 401/403: the access that was missing. */
  refused?: string;
}

export const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** What a request needs, read off its path as docs/auth.md lays it out. */
export function accessFor(method: string, path: string): Access[] {
  if (path.startsWith('/_wharf/admin')) return [{ type: 'registry', name: 'admin', actions: ['*'] }];
  if (path === '/v2/_catalog' || /^\/v2\/(?:.+\/)?_wharf\/repositories$/.test(path)) return [{ type: 'registry', name: 'catalog', actions: ['*'] }];
  const m = /^\/v2\/(.+)\/(?:manifests\/[^/]+|blobs\/[^/]+|tags\/list|referrers\/[^/]+|_wharf\/manifests|_wharf\/tags(?:\/[^/]+\/history)?)$/.exec(path);
  if (m) return [{ type: 'repository', name: m[1]!, actions: [method === 'DELETE' ? 'delete' : 'pull'] }];
  return [];
}

function nextOf(link: string | null): string | undefined {
  const m = link && /<([^>]+)>;\s*rel="next"/.exec(link);
  if (!m) return undefined;
  return new URL(m[1]!, location.href).searchParams.get('last') ?? undefined;
}

interface Cached {
  etag: string;
  text: string;
  headers: Headers;
}

export class Api {
  private readonly etags = new Map<string, Cached>();
  /** Counters the tests and the benchmark read: requests sent, and how many came back 304. */
  readonly stats = { requests: 0, notModified: 0 };

  constructor(
    readonly prefix: string,
    readonly session: Session,
  ) {}

  async request<T>(method: string, path: string, opts: { query?: URLSearchParams; accept?: string; body?: string; contentType?: string } = {}): Promise<Answer<T>> {
    const url = `${this.prefix}${path}${opts.query && [...opts.query].length ? `?${opts.query}` : ''}`;
    const headers: Record<string, string> = {};
    if (opts.accept) headers.accept = opts.accept;
    if (opts.contentType) headers['content-type'] = opts.contentType;
    const needed = accessFor(method, path);
    if (this.session.config.auth === 'token' && needed.length > 0) {
      const token = await this.session.tokenFor(needed);
      // Not granted: say so without asking the registry, which would only refuse.
      if (!token?.granted) return { status: 403, ok: false, body: undefined as T, headers: new Headers(), refused: needed.map(scopeString).join(' ') };
      headers.authorization = `Bearer ${token.token}`;
    }
    const cached = method === 'GET' ? this.etags.get(url) : undefined;
    if (cached) headers['if-none-match'] = cached.etag;
    this.stats.requests++;
    const res = await fetch(url, { method, headers, body: opts.body, credentials: 'omit', cache: 'no-store' });
    let text: string;
    let resHeaders = res.headers;
    if (res.status === 304 && cached) {
      this.stats.notModified++;
      text = cached.text;
      resHeaders = cached.headers;
    } else {
      text = method === 'HEAD' ? '' : await res.text();
      const etag = res.headers.get('etag');
      if (method === 'GET' && res.ok && etag) {
        if (this.etags.size > 500) this.etags.delete(this.etags.keys().next().value!);
        this.etags.set(url, { etag, text, headers: res.headers });
      }
    }
    const status = res.status === 304 ? 200 : res.status;
    let body: unknown = text;
    if (text && /json/.test(resHeaders.get('content-type') ?? '')) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const answer: Answer<T> = { status, ok: status >= 200 && status < 300, body: body as T, headers: resHeaders };
    const next = nextOf(resHeaders.get('link'));
    if (next !== undefined) answer.next = next;
    if (status === 401 || status === 403) answer.refused = needed.map(scopeString).join(' ') || 'credentials';
    return answer;
  }

  get<T>(path: string, query?: Record<string, string | string[] | undefined>, accept?: string): Promise<Answer<T>> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined || v === '') continue;
      for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
    }
    return this.request<T>('GET', path, { query: q, ...(accept ? { accept } : {}) });
  }
}

/** The message of an OCI error body, else the status. */
export function errorText(answer: Answer<unknown>): string {
  const errors = (answer.body as { errors?: Array<{ code?: string; message?: string }> } | undefined)?.errors;
  const first = Array.isArray(errors) ? errors[0] : undefined;
  return first ? `${first.code ?? ''} ${first.message ?? ''}`.trim() : `HTTP ${answer.status}`;
}
