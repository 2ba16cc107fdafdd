import type { IncomingMessage } from 'node:http';

const ABSOLUTE = /^https?:\/\/([^/?#]*)(.*)$/i;

/**
 * RFC 9112 §3.2.2: a server must accept the absolute form of the request target
 * (`GET http://host/v2/ HTTP/1.1`), as proxies send it, and take the host from it rather than
 * from the Host header. Returns the origin form every route and check works with.
 */
export function originForm(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const m = ABSOLUTE.exec(url);
  if (!m) return url;
  const authority = m[1]!.replace(/^[^@]*@/, '');
  if (authority) req.headers.host = authority;
  const rest = m[2]!;
  return rest.startsWith('/') ? rest : `/${rest}`;
}
