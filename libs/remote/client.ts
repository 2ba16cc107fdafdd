import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { MANIFEST_TYPES, digestOf, isDigest, parseDigest } from '../oci/index.js';
import { parseChallenges, type Challenge } from './challenge.js';
import { RemoteError, isNetworkError, isRetryableStatus } from './errors.js';
import { drain, readBody, send } from './http.js';
import { TokenCache } from './token-cache.js';

export interface RemoteCredentials {
  username: string;
  password: string;
}

export interface RemoteOptions {
  /** Names the upstream in errors (never a URL with credentials: URLs here carry none). */
  name: string;
  /**
   * Base URLs, the primary first and then mirrors, tried in that order when one is unreachable,
   * times out or answers 5xx/429. A path in a URL is the registry's own prefix (its API is at <url>/v2/).
   */
  urls: string[];
  credentials?: RemoteCredentials;
  /** Milliseconds of silence (connect, response head, between body chunks) before a request fails. Default 30 000. */
  timeoutMs?: number;
  /** Further attempts on the same URL after a network error, timeout or 5xx/429, before the next URL. Default 1. */
  retries?: number;
  userAgent?: string;
  /** Largest manifest, referrers list or token response read (bytes). Default 4 MiB. */
  maxDocumentBytes?: number;
  /** Told of each attempt that failed and was tried again or elsewhere. Gets no headers, so no credentials. */
  onAttemptFailed?: (info: { url: string; error: string }) => void;
}

export interface RemoteManifest {
  /** The digest of the bytes (GET), or Docker-Content-Digest (HEAD). */
  digest: string;
  mediaType: string;
  size: number;
  /** The exact bytes; absent for a HEAD. */
  payload?: Buffer;
}

export interface RemoteBlob {
  /** Content-Length, when the upstream sent one. */
  size: number | undefined;
  body: IncomingMessage;
}

const MANIFEST_ACCEPT = [...MANIFEST_TYPES].join(', ');
const MAX_REDIRECTS = 5;

/** An OCI distribution client for another registry: Docker token flow and Basic auth, retries, timeouts and mirror failover. */
export class RemoteRegistry {
  private readonly bases: URL[];
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly maxDocumentBytes: number;
  /** The challenge each base answered with last: later requests authenticate up front. */
  private readonly challenges = new Map<string, Challenge>();
  private readonly tokens = new TokenCache();

  constructor(private readonly options: RemoteOptions) {
    if (options.urls.length === 0) throw new Error(`upstream ${options.name}: no URL`);
    this.bases = options.urls.map((u) => {
      const url = new URL(u);
      if (url.username || url.password) throw new Error(`upstream ${options.name}: credentials do not go in the URL`);
      url.search = '';
      url.hash = '';
      return url;
    });
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retries = options.retries ?? 1;
    this.maxDocumentBytes = options.maxDocumentBytes ?? 4 * 1024 * 1024;
  }

  get name(): string {
    return this.options.name;
  }

  /** The manifest, or undefined when the upstream says it does not exist (404). */
  async manifest(repository: string, reference: string, method: 'GET' | 'HEAD'): Promise<RemoteManifest | undefined> {
    const res = await this.request(repository, method, `manifests/${reference}`, { accept: MANIFEST_ACCEPT });
    if (res.statusCode === 404) {
      drain(res);
      return undefined;
    }
    this.expectOk(res, `manifest ${repository}:${reference}`);
    const mediaType = String(res.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    const headerDigest = typeof res.headers['docker-content-digest'] === 'string' ? res.headers['docker-content-digest'] : undefined;
    if (method === 'HEAD') {
      drain(res);
      const digest = isDigest(reference) ? reference : headerDigest;
      // Without the header a HEAD cannot tell the digest: the bytes decide.
      if (!digest || !isDigest(digest)) return this.manifest(repository, reference, 'GET');
      return { digest, mediaType, size: Number(res.headers['content-length'] ?? 0) };
    }
    const payload = await readBody(res, this.maxDocumentBytes).catch((err) => {
      throw this.unavailableOrProtocol(err, `manifest ${repository}:${reference}`);
    });
    const algorithm = isDigest(reference) ? parseDigest(reference).algorithm : 'sha256';
    const digest = digestOf(payload, algorithm === 'sha512' ? 'sha512' : 'sha256');
    if (isDigest(reference) && digest !== reference) {
      throw new RemoteError('protocol', `upstream ${this.name}: manifest ${repository}@${reference} has digest ${digest}`);
    }
    return { digest, mediaType, size: payload.length, payload };
  }

  /** Starts streaming a blob; undefined when the upstream has no such blob (404). The caller reads or destroys `body`. */
  async blob(repository: string, digest: string): Promise<RemoteBlob | undefined> {
    const res = await this.request(repository, 'GET', `blobs/${digest}`, {});
    if (res.statusCode === 404) {
      drain(res);
      return undefined;
    }
    this.expectOk(res, `blob ${repository}@${digest}`);
    const length = res.headers['content-length'];
    return { size: length !== undefined ? Number(length) : undefined, body: res };
  }

  /** The blob's size by HEAD, or undefined when the upstream has no such blob (404). */
  async blobSize(repository: string, digest: string): Promise<number | undefined> {
    const res = await this.request(repository, 'HEAD', `blobs/${digest}`, {});
    drain(res);
    if (res.statusCode === 404) return undefined;
    this.expectOk(res, `blob ${repository}@${digest}`);
    const length = Number(res.headers['content-length']);
    if (!Number.isSafeInteger(length) || length < 0) throw new RemoteError('protocol', `upstream ${this.name}: blob HEAD without a Content-Length`);
    return length;
  }

  /** The upstream's referrers index for `digest`, or undefined when it has no referrers API (404). */
  async referrers(repository: string, digest: string): Promise<Buffer | undefined> {
    const res = await this.request(repository, 'GET', `referrers/${digest}`, { accept: 'application/vnd.oci.image.index.v1+json' });
    if (res.statusCode === 404) {
      drain(res);
      return undefined;
    }
    this.expectOk(res, `referrers ${repository}@${digest}`);
    return readBody(res, this.maxDocumentBytes);
  }

  private expectOk(res: IncomingMessage, what: string): void {
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return;
    drain(res);
    if (status === 401 || status === 403) throw new RemoteError('unauthorized', `upstream ${this.name}: ${what}: ${status}`, status);
    throw new RemoteError('protocol', `upstream ${this.name}: ${what}: unexpected status ${status}`, status);
  }

  private unavailableOrProtocol(err: unknown, what: string): RemoteError {
    if (err instanceof RemoteError) return err;
    if (isNetworkError(err)) return new RemoteError('unavailable', `upstream ${this.name}: ${what}: ${(err as Error).message}`);
    return new RemoteError('protocol', `upstream ${this.name}: ${what}: ${(err as Error).message}`);
  }

  /**
   * One API request under /v2/<repository>/: tries each base URL in turn, each up to 1 + retries
   * times, and resolves with the first response that is an answer (2xx, 3xx followed, 4xx), or
   * rejects with `unavailable` when every URL failed.
   */
  async request(repository: string, method: 'GET' | 'HEAD', path: string, headers: OutgoingHttpHeaders): Promise<IncomingMessage> {
    let last = 'no URL tried';
    let lastStatus: number | undefined;
    for (const base of this.bases) {
      for (let attempt = 0; attempt <= this.retries; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, 100 * 2 ** (attempt - 1)));
        try {
          const res = await this.authorized(base, repository, method, `${base.pathname.replace(/\/+$/, '')}/v2/${repository}/${path}`, headers);
          const status = res.statusCode ?? 0;
          if (!isRetryableStatus(status)) return res;
          drain(res);
          last = `status ${status}`;
          lastStatus = status;
        } catch (err) {
          if (err instanceof RemoteError && err.failure !== 'unavailable') throw err;
          if (!(err instanceof RemoteError) && !isNetworkError(err)) throw err;
          last = (err as Error).message;
          lastStatus = undefined;
        }
        this.options.onAttemptFailed?.({ url: base.origin + base.pathname, error: last });
      }
    }
    throw new RemoteError('unavailable', `upstream ${this.name} unavailable: ${last}`, lastStatus);
  }

  /** Sends with the auth this base asked for before; on a 401, answers its challenge once and sends again. */
  private async authorized(base: URL, repository: string, method: string, path: string, extra: OutgoingHttpHeaders): Promise<IncomingMessage> {
    const key = base.href;
    const target = new URL(path, base);
    let challenge = this.challenges.get(key);
    let res = await this.follow(target, method, { ...extra, ...(await this.authHeader(challenge, repository, false)) });
    if (res.statusCode !== 401) return res;
    const offered = parseChallenges(res.headers['www-authenticate']);
    drain(res);
    challenge = offered.find((c) => c.scheme === 'bearer') ?? offered.find((c) => c.scheme === 'basic');
    if (!challenge) throw new RemoteError('unauthorized', `upstream ${this.name}: 401 without a Bearer or Basic challenge`, 401);
    this.challenges.set(key, challenge);
    res = await this.follow(target, method, { ...extra, ...(await this.authHeader(challenge, repository, true)) });
    if (res.statusCode === 401 || res.statusCode === 403) {
      drain(res);
      throw new RemoteError('unauthorized', `upstream ${this.name}: credentials refused for ${repository} (${res.statusCode})`, res.statusCode);
    }
    return res;
  }

  /** Follows redirects (blob storage often answers 307); credentials never go to another origin. */
  private async follow(url: URL, method: string, headers: OutgoingHttpHeaders): Promise<IncomingMessage> {
    let current = url;
    for (let hop = 0; ; hop++) {
      const sent = current.origin === url.origin ? headers : withoutAuthorization(headers);
      const res = await send(current, method, { 'user-agent': this.options.userAgent ?? 'wharf', ...sent }, this.timeoutMs);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (status < 300 || status >= 400 || status === 304 || !location) return res;
      drain(res);
      if (hop >= MAX_REDIRECTS) throw new RemoteError('protocol', `upstream ${this.name}: more than ${MAX_REDIRECTS} redirects`);
      current = new URL(location, current);
    }
  }

  private async authHeader(challenge: Challenge | undefined, repository: string, fresh: boolean): Promise<OutgoingHttpHeaders> {
    if (!challenge) return {};
    const credentials = this.options.credentials;
    if (challenge.scheme === 'basic') {
      if (!credentials) throw new RemoteError('unauthorized', `upstream ${this.name} asks for Basic credentials and none are configured`, 401);
      return { authorization: basicAuth(credentials) };
    }
    const scope = `repository:${repository}:pull`;
    const cacheKey = `${challenge.params.realm}|${challenge.params.service ?? ''}|${scope}`;
    if (fresh) this.tokens.delete(cacheKey);
    const token = this.tokens.get(cacheKey) ?? (await this.fetchToken(challenge, scope, cacheKey));
    return { authorization: `Bearer ${token}` };
  }

  /** The Docker token flow: GET <realm>?service=..&scope=.., with Basic credentials when there are some. */
  private async fetchToken(challenge: Challenge, scope: string, cacheKey: string): Promise<string> {
    const realm = challenge.params.realm;
    let url: URL;
    try {
      url = new URL(realm ?? '');
    } catch {
      throw new RemoteError('protocol', `upstream ${this.name}: Bearer challenge without a usable realm`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RemoteError('protocol', `upstream ${this.name}: token realm must be http or https`);
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    url.searchParams.set('scope', scope);
    const headers: OutgoingHttpHeaders = { 'user-agent': this.options.userAgent ?? 'wharf', accept: 'application/json' };
    if (this.options.credentials) headers.authorization = basicAuth(this.options.credentials);
    let res: IncomingMessage;
    try {
      res = await send(url, 'GET', headers, this.timeoutMs);
    } catch (err) {
      throw this.unavailableOrProtocol(err, 'token request');
    }
    const status = res.statusCode ?? 0;
    if (isRetryableStatus(status)) {
      drain(res);
      throw new RemoteError('unavailable', `upstream ${this.name}: token service answered ${status}`, status);
    }
    if (status !== 200) {
      drain(res);
      throw new RemoteError('unauthorized', `upstream ${this.name}: token service refused (${status})`, status);
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      body = JSON.parse((await readBody(res, this.maxDocumentBytes)).toString('utf8'));
    } catch (err) {
      throw this.unavailableOrProtocol(err, 'token response');
    }
    const token = typeof body.token === 'string' && body.token ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (!token) throw new RemoteError('protocol', `upstream ${this.name}: token response has no token`);
    const expiresIn = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    const issuedAt = typeof body.issued_at === 'string' ? Date.parse(body.issued_at) : NaN;
    this.tokens.set(cacheKey, token, expiresIn, Number.isNaN(issuedAt) ? undefined : issuedAt);
    return token;
  }
}

function basicAuth(credentials: RemoteCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

function withoutAuthorization(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const { authorization: _dropped, ...rest } = headers;
  return rest;
}
