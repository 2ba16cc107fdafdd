import type { KeyObject } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AccessSet, TokenError, TokenVerifier, formatScope, mergeAccess, type Access, type Htpasswd, type Policy, type TrustStore } from '../../libs/auth/index.js';
import { RegistryError, checkName } from '../../libs/oci/index.js';
import { ADMIN, requiredAccess, type Requirement } from './access.js';
import { splitV2Url } from './dispatch.js';
import { externalOrigin } from './external-origin.js';
import { RateLimiter } from './rate-limit.js';

export interface TokenAuthOptions {
  /** Token service URL for the challenge; empty: this registry's /auth/token. */
  realm: string;
  service: string;
  issuer: string;
  trust: TrustStore;
  /** The built-in issuer's key; with it, the policy tells whether a missing scope could be granted. */
  signingKey?: KeyObject;
  expirySeconds: number;
}

export interface AuthOptions {
  mode: 'none' | 'htpasswd' | 'token';
  htpasswd?: Htpasswd;
  basicRealm: string;
  token?: TokenAuthOptions;
  policy: Policy;
  rateLimit?: { rate: number; burst: number };
}

/** Who a request acts as, once its credentials are checked. */
export interface Identity {
  /** The user name (`sub` of a token); undefined when anonymous. */
  user?: string;
  /** Valid credentials were presented (an anonymous token counts). */
  authenticated: boolean;
  may(type: string, name: string, action: string): boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    identity?: Identity;
  }
}

/** user:password of a Basic Authorization header, or undefined when the header is not Basic. */
export function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  const m = header === undefined ? null : /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function decodedPath(url: string): string {
  const q = url.indexOf('?');
  const raw = q === -1 ? url : url.slice(0, q);
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

const quote = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`;

function externalUrl(request: FastifyRequest, path: string): string {
  return `${externalOrigin(request)}${path}`;
}

/**
 * Access control as an onRequest hook, so a request is refused before its body is read. Every
 * route under /v2/ (and the admin routes under /_wharf/admin) needs a grant for the access its
 * endpoint implies; the rest (/healthz, /metrics, /auth/token, unknown paths) is open. Rate limiting, by client
 * address, comes first, so password guessing and bcrypt's cost are bounded too.
 */
export function installAuth(app: FastifyInstance, options: AuthOptions, prefix: string): void {
  const v2 = `${prefix}/v2`;
  const adminRoot = `${prefix}/_wharf/admin`;
  const tokenRealm = options.token?.realm || undefined;
  const verifier = options.token ? new TokenVerifier({ trust: options.token.trust, issuer: options.token.issuer, audience: options.token.service }) : undefined;
  const limiter = options.rateLimit && options.rateLimit.rate > 0 ? new RateLimiter(options.rateLimit.rate, options.rateLimit.burst) : undefined;

  const challenge = (request: FastifyRequest, requirement: Requirement, error?: 'invalid_token' | 'insufficient_scope'): string => {
    if (options.mode === 'htpasswd') return `Basic realm=${quote(options.basicRealm)}`;
    const token = options.token!;
    let value = `Bearer realm=${quote(tokenRealm ?? externalUrl(request, `${prefix}/auth/token`))},service=${quote(token.service)}`;
    const scope = formatScope(mergeAccess([...requirement.access, ...requirement.alsoAsk]));
    if (scope) value += `,scope=${quote(scope)}`;
    if (error) value += `,error=${quote(error)}`;
    return value;
  };

  const unauthorized = (request: FastifyRequest, requirement: Requirement, message: string, error?: 'invalid_token' | 'insufficient_scope') =>
    new RegistryError('UNAUTHORIZED', message, {
      detail: requirement.access.flatMap((a) => a.actions.map((action) => ({ type: a.type, name: a.name, action }))),
      headers: { 'WWW-Authenticate': challenge(request, requirement, error) },
    });

  const anonymous = (): Identity => ({
    authenticated: false,
    may: (type, name, action) => options.mode === 'htpasswd' && options.policy.allows(undefined, type, name, action),
  });

  /** Checks the credentials; bad ones are a 401 whatever made them bad (unknown user or wrong password alike). */
  const identify = async (request: FastifyRequest, requirement: Requirement): Promise<Identity> => {
    const header = request.headers.authorization;
    if (options.mode === 'htpasswd') {
      if (header === undefined) return anonymous();
      const credentials = basicCredentials(header);
      if (!credentials || !(await options.htpasswd!.verify(credentials.user, credentials.password))) {
        throw unauthorized(request, requirement, 'authentication required');
      }
      const user = credentials.user;
      return { user, authenticated: true, may: (type, name, action) => options.policy.allows(user, type, name, action) };
    }
    const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
    if (!m) return anonymous();
    try {
      const claims = verifier!.verify(m[1]!);
      const grant = new AccessSet(claims.access);
      return { user: claims.sub || undefined, authenticated: true, may: (type, name, action) => grant.allows(type, name, action) };
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      request.log.debug({ reason: err.message }, 'token refused');
      throw unauthorized(request, requirement, 'invalid token', 'invalid_token');
    }
  };

  const granted = (identity: Identity, access: Access[]) => access.every((a) => a.actions.every((action) => identity.may(a.type, a.name, action)));

  app.addHook('onRequest', async (request) => {
    if (limiter && !limiter.take(request.ip)) {
      throw new RegistryError('TOOMANYREQUESTS', 'too many requests', { headers: { 'Retry-After': String(limiter.retryAfter(request.ip)) } });
    }
    if (options.mode === 'none') return;
    // Which route the router picked, not how the raw URL is spelt: it decodes (/v%32/ is /v2/).
    const route = request.routeOptions.url ?? '';
    const path = decodedPath(request.raw.url ?? '');
    const underAdmin = (p: string) => p === adminRoot || p.startsWith(`${adminRoot}/`);
    let requirement: Requirement;
    // Admin paths need the grant even where no route answers them: a 404 there tells nothing either.
    if (underAdmin(route) || underAdmin(path)) {
      requirement = { access: [ADMIN], alsoAsk: [] };
    } else if (route === `${v2}/` || route === `${v2}/*`) {
      const parts = splitV2Url(request.raw.url ?? '', v2);
      if (!parts) throw new RegistryError('NAME_INVALID', 'malformed path');
      requirement = requiredAccess(request.method, parts.path, parts.query);
    } else {
      return;
    }
    // A name outside the grammar can be granted nothing and names nothing: 400, as the handler would say.
    for (const a of requirement.access) if (a.type === 'repository') checkName(a.name);
    const identity = await identify(request, requirement);
    request.identity = identity;
    if (granted(identity, requirement.access) && (identity.authenticated || requirement.access.length > 0)) return;
    if (!identity.authenticated || (options.mode === 'token' && identity.user === undefined)) {
      throw unauthorized(request, requirement, 'authentication required');
    }
    const user = identity.user;
    // A token that lacks a scope its user could be given: ask the client to fetch one (Distribution's insufficient_scope).
    // With the built-in issuer we know the policy, so a scope the user can never have is a plain 403.
    const couldGet =
      options.mode === 'token' &&
      (!options.token!.signingKey || requirement.access.every((a) => a.actions.every((action) => options.policy.allows(user, a.type, a.name, action))));
    if (couldGet) throw unauthorized(request, requirement, 'insufficient scope', 'insufficient_scope');
    request.log.debug({ user, access: formatScope(requirement.access) }, 'access denied');
    throw new RegistryError('DENIED', 'requested access to the resource is denied', {
      detail: requirement.access.flatMap((a) => a.actions.filter((action) => !identity.may(a.type, a.name, action)).map((action) => ({ type: a.type, name: a.name, action }))),
    });
  });
}
