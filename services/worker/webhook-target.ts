import type { WebhookEndpoint } from '../../libs/config/index.js';
import { redactUrl } from '../../libs/config/index.js';

/** Where a webhook is POSTed and how, once the URL's user:pass@ has become a header. */
export interface WebhookTarget {
  /** The URL without userinfo (fetch refuses one with it); the query stays, receivers need it. */
  url: string;
  /** `Basic ...` from the URL's userinfo, as Distribution sends it; undefined when the URL has none. */
  authorization: string | undefined;
  /** Replaces every secret the endpoint carries (password, query values, HMAC secret) in a text meant for logs or the database. */
  scrub(text: string): string;
}

export function webhookTarget(endpoint: WebhookEndpoint): WebhookTarget {
  const parsed = new URL(endpoint.url);
  const user = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  const authorization = parsed.username || parsed.password ? `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` : undefined;
  const withoutUserinfo = new URL(endpoint.url);
  withoutUserinfo.username = '';
  withoutUserinfo.password = '';
  // Longest first, so a secret that contains another is replaced whole.
  const secrets = [
    endpoint.url,
    withoutUserinfo.toString(),
    parsed.password,
    password,
    authorization?.slice('Basic '.length),
    parsed.search.slice(1),
    ...[...parsed.searchParams.values()],
    ...[...parsed.searchParams.values()].map((v) => encodeURIComponent(v)),
    endpoint.secret,
  ]
    .filter((s): s is string => typeof s === 'string' && s.length >= 3)
    .sort((a, b) => b.length - a.length);
  const redacted = redactUrl(endpoint.url);
  return {
    url: withoutUserinfo.toString(),
    authorization,
    scrub(text) {
      let out = text;
      for (const s of secrets) out = out.split(s).join(s === endpoint.url || s === withoutUserinfo.toString() ? redacted : '[redacted]');
      return out;
    },
  };
}
