import { parseDuration } from './duration.js';

/**
 * `notifications.endpoints`: webhook endpoints with CNCF Distribution's key names, plus
 * `maxattempts`, `maxbackoff`, `concurrency` and `secret`. parseEndpoints both validates (the
 * config key's check) and gives the worker typed values with defaults filled in.
 */
export interface WebhookEndpoint {
  name: string;
  url: string;
  /** Extra request headers; a name may carry several values, as in Distribution. */
  headers: Record<string, string[]>;
  timeoutMs: number;
  /** Consecutive failures after which the endpoint pauses for `backoff` between single probe deliveries. */
  threshold: number;
  /** First retry delay of a delivery (doubling each attempt, with jitter), and the pause of a failing endpoint. */
  backoffMs: number;
  maxBackoffMs: number;
  maxAttempts: number;
  /** Requests in flight to this endpoint per worker replica. */
  concurrency: number;
  disabled: boolean;
  ignoredMediaTypes: string[];
  ignoredActions: string[];
  /** HMAC-SHA256 key for the X-Wharf-Signature-256 header; empty: no signature. */
  secret: string;
}

const KNOWN = new Set([
  'name',
  'url',
  'headers',
  'timeout',
  'threshold',
  'backoff',
  'maxbackoff',
  'disabled',
  'ignoredmediatypes',
  'ignore',
  'maxattempts',
  'concurrency',
  'secret',
]);

class EndpointError extends Error {}

function strings(value: unknown, what: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new EndpointError(`${what} must be a list of strings`);
  return value;
}

function duration(value: unknown, what: string, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = typeof value === 'string' ? parseDuration(value) : undefined;
  if (ms === undefined || ms <= 0) throw new EndpointError(`${what} must be a duration such as "500ms", "5s" or "1m", got ${JSON.stringify(value)}`);
  return ms;
}

function integer(value: unknown, what: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new EndpointError(`${what} must be an integer of at least 1, got ${JSON.stringify(value)}`);
  return value;
}

function parseOne(raw: unknown, i: number): WebhookEndpoint {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new EndpointError(`endpoint ${i} must be a mapping`);
  const o = raw as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !KNOWN.has(k));
  const where = typeof o.name === 'string' ? `endpoint "${o.name}"` : `endpoint ${i}`;
  if (unknown.length) throw new EndpointError(`${where}: unknown key ${unknown.join(', ')} (known: ${[...KNOWN].join(', ')})`);
  if (typeof o.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(o.name)) {
    throw new EndpointError(`${where}: name is required: letters, digits, ".", "_" and "-", at most 100`);
  }
  let url: URL;
  try {
    url = new URL(String(o.url));
  } catch {
    throw new EndpointError(`${where}: url must be an absolute http or https URL, got ${JSON.stringify(redactUrlText(String(o.url)))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new EndpointError(`${where}: url must be http or https, got ${JSON.stringify(redactUrlText(String(o.url)))}`);
  const headers: Record<string, string[]> = {};
  if (o.headers !== undefined) {
    if (typeof o.headers !== 'object' || o.headers === null || Array.isArray(o.headers)) throw new EndpointError(`${where}: headers must map names to a value or a list of values`);
    for (const [name, value] of Object.entries(o.headers)) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new EndpointError(`${where}: headers: ${JSON.stringify(name)} is not a header name`);
      headers[name] = typeof value === 'string' ? [value] : strings(value, `${where}: headers.${name}`);
    }
  }
  if (o.disabled !== undefined && typeof o.disabled !== 'boolean') throw new EndpointError(`${where}: disabled must be true or false`);
  if (o.secret !== undefined && typeof o.secret !== 'string') throw new EndpointError(`${where}: secret must be a string`);
  let ignore: Record<string, unknown> = {};
  if (o.ignore !== undefined) {
    if (typeof o.ignore !== 'object' || o.ignore === null || Array.isArray(o.ignore)) throw new EndpointError(`${where}: ignore must be a mapping with mediatypes and actions`);
    ignore = o.ignore as Record<string, unknown>;
    const extra = Object.keys(ignore).filter((k) => k !== 'mediatypes' && k !== 'actions');
    if (extra.length) throw new EndpointError(`${where}: unknown key ignore.${extra.join(', ignore.')} (known: ignore.mediatypes, ignore.actions)`);
  }
  const actions = strings(ignore.actions, `${where}: ignore.actions`);
  const badAction = actions.find((a) => !['push', 'pull', 'delete', 'mount'].includes(a));
  if (badAction) throw new EndpointError(`${where}: ignore.actions: unknown action ${JSON.stringify(badAction)} (push, pull, delete, mount)`);
  const backoffMs = duration(o.backoff, `${where}: backoff`, 1_000);
  const maxBackoffMs = duration(o.maxbackoff, `${where}: maxbackoff`, 300_000);
  if (maxBackoffMs < backoffMs) throw new EndpointError(`${where}: maxbackoff must not be below backoff`);
  return {
    name: o.name,
    url: url.toString(),
    headers,
    timeoutMs: duration(o.timeout, `${where}: timeout`, 5_000),
    threshold: integer(o.threshold, `${where}: threshold`, 5),
    backoffMs,
    maxBackoffMs,
    maxAttempts: integer(o.maxattempts, `${where}: maxattempts`, 20),
    concurrency: integer(o.concurrency, `${where}: concurrency`, 4),
    disabled: o.disabled === true,
    ignoredMediaTypes: [...strings(o.ignoredmediatypes, `${where}: ignoredmediatypes`), ...strings(ignore.mediatypes, `${where}: ignore.mediatypes`)],
    ignoredActions: actions,
    secret: typeof o.secret === 'string' ? o.secret : '',
  };
}

/** Typed endpoints with defaults; throws an Error naming the endpoint and key that is wrong. */
export function parseEndpoints(value: unknown): WebhookEndpoint[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new EndpointError('must be a list of endpoints');
  const endpoints = value.map(parseOne);
  const names = new Set<string>();
  for (const e of endpoints) {
    if (names.has(e.name)) throw new EndpointError(`endpoint name "${e.name}" is used twice`);
    names.add(e.name);
  }
  return endpoints;
}

export function checkEndpoints(value: unknown): string | undefined {
  try {
    parseEndpoints(value);
    return undefined;
  } catch (err) {
    if (err instanceof EndpointError) return err.message;
    throw err;
  }
}

/** Whether an endpoint wants an event, by Distribution's ignore rules. */
export function endpointWants(endpoint: WebhookEndpoint, event: { action: string; target?: { mediaType?: string } }): boolean {
  if (endpoint.disabled) return false;
  if (endpoint.ignoredActions.includes(event.action)) return false;
  const mediaType = event.target?.mediaType;
  return !(mediaType !== undefined && endpoint.ignoredMediaTypes.includes(mediaType));
}

/** Like redactUrl, for text that may not even parse as a URL (an error message about it). */
export function redactUrlText(text: string): string {
  return text.replace(/\/\/[^/?#@\s]*@/g, '//[redacted]@').replace(/\?[^\s"]*/g, '?[redacted]');
}

/** The URL without credentials or query string, for logs and the admin view. */
export function redactUrl(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  u.search = '';
  return u.toString();
}
