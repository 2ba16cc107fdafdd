/**
 * `proxy.upstreams`: the registries the pull-through cache serves, each under a local prefix.
 * parseUpstreams validates (the config key's check) and gives typed values with defaults, the
 * password read from its file or environment variable.
 */
import { readFileSync } from 'node:fs';
import { parseDuration } from './duration.js';

export interface ProxyUpstream {
  /** Shown in metrics, events (actor.name) and logs. */
  name: string;
  /** The registry's base URL (its API at <url>/v2/). */
  url: string;
  /** Failover URLs, tried in order after `url`. */
  mirrors: string[];
  /** Local names <prefix>/<x> are served from this upstream. */
  prefix: string;
  /** Upstream namespace the prefix maps to: <prefix>/<x> is <path>/<x> there; '' for the root. */
  path: string;
  /** Single-segment names <prefix>/<x> are library/<x> upstream (Docker Hub's official images). */
  library: boolean;
  username: string;
  password: string;
  /** Milliseconds a cached tag is served without asking the upstream. */
  ttlMs: number;
  /** Milliseconds cached content may go unpulled before garbage collection removes it; 0: kept. */
  retentionMs: number;
  /** What a tag the upstream no longer has (404) does: still served from the cache, or forgotten. */
  onNotFound: 'serve' | 'forget';
  /** Milliseconds of upstream silence before a request counts as failed. */
  timeoutMs: number;
  /** Further attempts per URL on a network error, timeout or 5xx/429. */
  retries: number;
}

const KNOWN = ['name', 'url', 'mirrors', 'prefix', 'path', 'library', 'username', 'passwordfile', 'passwordenv', 'ttl', 'retention', 'onnotfound', 'timeout', 'retries'];
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAMESPACE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const DOCKER_HUB = new Set(['registry-1.docker.io', 'docker.io', 'index.docker.io', 'registry.hub.docker.com']);

class UpstreamError extends Error {}

function registryUrl(value: unknown, what: string): string {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new UpstreamError(`${what} must be an absolute http or https URL, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UpstreamError(`${what} must be http or https, got ${JSON.stringify(value)}`);
  if (url.username || url.password) throw new UpstreamError(`${what} must not carry credentials: use username and passwordfile or passwordenv`);
  if (url.search || url.hash) throw new UpstreamError(`${what} must have no query or fragment`);
  return url.toString().replace(/\/+$/, '');
}

function duration(value: unknown, what: string, fallback: number, zero: boolean): number {
  if (value === undefined) return fallback;
  if (zero && (value === 0 || value === '0')) return 0;
  const ms = typeof value === 'string' ? parseDuration(value) : undefined;
  if (ms === undefined || ms <= 0) throw new UpstreamError(`${what} must be a duration such as "30s", "10m", "168h" or "7d"${zero ? ' (or 0)' : ''}, got ${JSON.stringify(value)}`);
  return ms;
}

function password(o: Record<string, unknown>, where: string, env: NodeJS.ProcessEnv): string {
  if (o.passwordfile !== undefined && o.passwordenv !== undefined) throw new UpstreamError(`${where}: passwordfile and passwordenv are alternatives: give one`);
  if (o.passwordfile !== undefined) {
    if (typeof o.passwordfile !== 'string' || o.passwordfile === '') throw new UpstreamError(`${where}: passwordfile must be a file path`);
    try {
      return readFileSync(o.passwordfile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new UpstreamError(`${where}: cannot read passwordfile ${o.passwordfile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (o.passwordenv !== undefined) {
    if (typeof o.passwordenv !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(o.passwordenv)) throw new UpstreamError(`${where}: passwordenv must name an environment variable`);
    const value = env[o.passwordenv];
    if (value === undefined) throw new UpstreamError(`${where}: environment variable ${o.passwordenv} (passwordenv) is not set`);
    return value;
  }
  return '';
}

function parseOne(raw: unknown, i: number, env: NodeJS.ProcessEnv): ProxyUpstream {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UpstreamError(`upstream ${i} must be a mapping`);
  const o = raw as Record<string, unknown>;
  const where = typeof o.name === 'string' ? `upstream "${o.name}"` : `upstream ${i}`;
  const unknown = Object.keys(o).filter((k) => !KNOWN.includes(k));
  if (unknown.length) throw new UpstreamError(`${where}: unknown key ${unknown.join(', ')} (known: ${KNOWN.join(', ')})`);
  if (typeof o.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(o.name)) {
    throw new UpstreamError(`${where}: name is required: letters, digits, ".", "_" and "-", at most 64`);
  }
  if (o.url === undefined) throw new UpstreamError(`${where}: url is required`);
  const url = registryUrl(o.url, `${where}: url`);
  if (o.mirrors !== undefined && (!Array.isArray(o.mirrors) || !o.mirrors.every((m) => typeof m === 'string'))) throw new UpstreamError(`${where}: mirrors must be a list of URLs`);
  const mirrors = ((o.mirrors as string[] | undefined) ?? []).map((m, j) => registryUrl(m, `${where}: mirrors[${j}]`));
  if (typeof o.prefix !== 'string' || !NAMESPACE.test(o.prefix)) {
    throw new UpstreamError(`${where}: prefix is required: a repository namespace such as "hub" or "mirrors/quay" (lower-case components), got ${JSON.stringify(o.prefix)}`);
  }
  if (o.path !== undefined && (typeof o.path !== 'string' || !NAMESPACE.test(o.path)))
    throw new UpstreamError(`${where}: path must be an upstream namespace such as "org/team", got ${JSON.stringify(o.path)}`);
  if (o.library !== undefined && typeof o.library !== 'boolean') throw new UpstreamError(`${where}: library must be true or false`);
  if (o.username !== undefined && (typeof o.username !== 'string' || o.username === '' || o.username.includes(':')))
    throw new UpstreamError(`${where}: username must be a non-empty string without ":"`);
  const secret = password(o, where, env);
  if (secret !== '' && o.username === undefined) throw new UpstreamError(`${where}: a password needs a username`);
  if (o.username !== undefined && secret === '') throw new UpstreamError(`${where}: username needs a password from passwordfile or passwordenv`);
  if (o.onnotfound !== undefined && o.onnotfound !== 'serve' && o.onnotfound !== 'forget')
    throw new UpstreamError(`${where}: onnotfound must be serve or forget, got ${JSON.stringify(o.onnotfound)}`);
  if (o.retries !== undefined && (typeof o.retries !== 'number' || !Number.isSafeInteger(o.retries) || o.retries < 0 || o.retries > 10))
    throw new UpstreamError(`${where}: retries must be an integer from 0 to 10`);
  return {
    name: o.name,
    url,
    mirrors,
    prefix: o.prefix,
    path: (o.path as string | undefined) ?? '',
    library: (o.library as boolean | undefined) ?? DOCKER_HUB.has(new URL(url).hostname),
    username: (o.username as string | undefined) ?? '',
    password: secret,
    ttlMs: duration(o.ttl, `${where}: ttl`, 600_000, true),
    retentionMs: duration(o.retention, `${where}: retention`, 168 * 3_600_000, true),
    onNotFound: (o.onnotfound as 'serve' | 'forget' | undefined) ?? 'serve',
    timeoutMs: duration(o.timeout, `${where}: timeout`, 30_000, false),
    retries: (o.retries as number | undefined) ?? 1,
  };
}

/** Typed upstreams with defaults; throws naming the upstream and key that is wrong. */
export function parseUpstreams(value: unknown, env: NodeJS.ProcessEnv = process.env): ProxyUpstream[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new UpstreamError('must be a list of upstreams');
  const upstreams = value.map((u, i) => parseOne(u, i, env));
  for (const [i, a] of upstreams.entries()) {
    for (const b of upstreams.slice(i + 1)) {
      if (a.name === b.name) throw new UpstreamError(`upstream name "${a.name}" is used twice`);
      if (a.prefix === b.prefix || a.prefix.startsWith(`${b.prefix}/`) || b.prefix.startsWith(`${a.prefix}/`)) {
        throw new UpstreamError(`upstreams "${a.name}" and "${b.name}": prefixes "${a.prefix}" and "${b.prefix}" overlap`);
      }
    }
  }
  return upstreams;
}

export function checkUpstreams(value: unknown, env: NodeJS.ProcessEnv = process.env): string | undefined {
  try {
    parseUpstreams(value, env);
    return undefined;
  } catch (err) {
    if (err instanceof UpstreamError) return err.message;
    throw err;
  }
}
