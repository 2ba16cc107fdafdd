import type { KeyObject } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AccessSet, TokenError, TokenVerifier, formatScope, mergeAccess, type Access, type Htpasswd, type Policy, type TrustStore } from '../../libs/auth/index.js';
import { RegistryError, checkName } from '../../libs/oci/index.js';
import { ADMIN, requiredAccess, type Requirement } from './access.js';
import { splitUrl } from './dispatch.js';
import { HttpError } from './errors.js';
import { externalOrigin } from './external-origin.js';
import { RateLimiter } from './rate-limit.js';

/** Checking bearer tokens (auth.mode token). */
export interface TokenAuthOptions {
  /** Token service URL for the challenge; empty: this registry's /auth/token. */
  realm: string;
  service: string;
  issuer: string;
  trust: TrustStore;
}

/** The built-in token issuer: signs tokens for the users of the htpasswd file, with what the policy grants them. */
export interface TokenIssuerOptions {
  signingKey: KeyObject;
  htpasswd: Htpasswd;
  service: string;
  issuer: string;
  expirySeconds: number;
  /** Lifetime of the built-in issuer's refresh tokens (offline_token=true). */
  refreshExpirySeconds?: number;
}

interface CommonAuthOptions {
  basicRealm: string;
  policy: Policy;
  rateLimit?: { rate: number; burst: number };
  /** With the built-in issuer, the policy also tells whether a missing scope could be granted. */
  issuer?: TokenIssuerOptions;
}

export type AuthOptions = CommonAuthOptions & ({ mode: 'none' } | { mode: 'htpasswd'; htpasswd: Htpasswd } | { mode: 'token'; token: TokenAuthOptions });

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

const quote = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`;

function externalUrl(request: FastifyRequest, path: string): string {
  return `${externalOrigin(request)}${path}`;
}

/** Rate limiting by client address, before anything else, so password guessing and bcrypt's cost are bounded too. */
export function installRateLimit(app: FastifyInstance, rateLimit: { rate: number; burst: number } | undefined): void {
  if (!rateLimit || rateLimit.rate <= 0) return;
  const limiter = new RateLimiter(rateLimit.rate, rateLimit.burst);
  app.addHook('onRequest', async (request) => {
    if (!limiter.take(request.ip)) throw new RegistryError('TOOMANYREQUESTS', 'too many requests', { retryAfterSeconds: limiter.retryAfter(request.ip) });
  });
}

/** How credentials are presented and checked: Basic against htpasswd, or bearer tokens. */
interface Scheme {
  challenge(request: FastifyRequest, requirement: Requirement, error?: 'invalid_token' | 'insufficient_scope'): string;
  /** Checks the credentials; bad ones are a 401 whatever made them bad (unknown user or wrong password alike). */
  identify(request: FastifyRequest, fail: (message: string, error?: 'invalid_token') => Error): Promise<Identity>;
  /** Whether a client refused with valid credentials should be sent for a token with more scope (Distribution's insufficient_scope). */
  couldGetMore(identity: Identity, requirement: Requirement): boolean;
}

function basicScheme(options: AuthOptions & { mode: 'htpasswd' }): Scheme {
  const anonymous: Identity = { authenticated: false, may: (type, name, action) => options.policy.allows(undefined, type, name, action) };
  return {
    challenge: () => `Basic realm=${quote(options.basicRealm)}`,
    async identify(request, fail) {
      const header = request.headers.authorization;
      if (header === undefined) return anonymous;
      const credentials = basicCredentials(header);
      if (!credentials || !(await options.htpasswd.verify(credentials.user, credentials.password))) throw fail('authentication required');
      const user = credentials.user;
      return { user, authenticated: true, may: (type, name, action) => options.policy.allows(user, type, name, action) };
    },
    couldGetMore: () => false,
  };
}

function bearerScheme(options: AuthOptions & { mode: 'token' }, prefix: string): Scheme {
  const { token, policy, issuer } = options;
  const verifier = new TokenVerifier({ trust: token.trust, issuer: token.issuer, audience: token.service });
  const anonymous: Identity = { authenticated: false, may: () => false };
  return {
    challenge(request, requirement, error) {
      let value = `Bearer realm=${quote(token.realm || externalUrl(request, `${prefix}/auth/token`))},service=${quote(token.service)}`;
      const scope = formatScope(mergeAccess([...requirement.access, ...requirement.alsoAsk]));
      if (scope) value += `,scope=${quote(scope)}`;
      if (error) value += `,error=${quote(error)}`;
      return value;
    },
    async identify(request, fail) {
      const header = request.headers.authorization;
      const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
      if (!m) return anonymous;
      try {
        const claims = verifier.verify(m[1]!);
        const grant = new AccessSet(claims.access);
        return { user: claims.sub || undefined, authenticated: true, may: (type, name, action) => grant.allows(type, name, action) };
      } catch (err) {
        if (!(err instanceof TokenError)) throw err;
        request.log.debug({ reason: err.message }, 'token refused');
        throw fail('invalid token', 'invalid_token');
      }
    },
    // With the built-in issuer we know the policy, so a scope the user can never have is a plain 403.
    couldGetMore: (identity, requirement) => !issuer || requirement.access.every((a) => a.actions.every((action) => policy.allows(identity.user, a.type, a.name, action))),
  };
}

/**
 * Access control as an onRequest hook, so a request is refused before its body is read. Every
 * route under /v2/ (and the admin routes under /_wharf/admin) needs a grant for the access its
 * endpoint implies (request.v2, matched by the hook before this one); the rest (/healthz,
 * /metrics, /auth/token, unknown paths) is open.
 */
export function installAccessControl(app: FastifyInstance, options: AuthOptions, prefix: string): void {
  if (options.mode === 'none') return;
  const scheme = options.mode === 'htpasswd' ? basicScheme(options) : bearerScheme(options, prefix);
  const adminRoot = `${prefix}/_wharf/admin`;

  const unauthorized = (request: FastifyRequest, requirement: Requirement, message: string, error?: 'invalid_token' | 'insufficient_scope') =>
    new HttpError('UNAUTHORIZED', message, {
      detail: requirement.access.flatMap((a) => a.actions.map((action) => ({ type: a.type, name: a.name, action }))),
      headers: { 'WWW-Authenticate': scheme.challenge(request, requirement, error) },
    });

  const granted = (identity: Identity, access: Access[]) => access.every((a) => a.actions.every((action) => identity.may(a.type, a.name, action)));

  app.addHook('onRequest', async (request) => {
    // Which route the router picked, not how the raw URL is spelt: it decodes (/v%32/ is /v2/).
    const route = request.routeOptions.url ?? '';
    const url = request.raw.url ?? '';
    const path = splitUrl(url).path ?? url.split('?')[0]!;
    const underAdmin = (p: string) => p === adminRoot || p.startsWith(`${adminRoot}/`);
    let requirement: Requirement;
    // Admin paths need the grant even where no route answers them: a 404 there tells nothing either.
    if (underAdmin(route) || underAdmin(path)) requirement = { access: [ADMIN], alsoAsk: [] };
    else if (request.v2) requirement = requiredAccess(request.method, request.v2);
    else return;
    // A name outside the grammar can be granted nothing and names nothing: 400, as the handler would say.
    for (const a of requirement.access) if (a.type === 'repository') checkName(a.name);
    const identity = await scheme.identify(request, (message, error) => unauthorized(request, requirement, message, error));
    request.identity = identity;
    if (granted(identity, requirement.access) && (identity.authenticated || requirement.access.length > 0)) return;
    if (!identity.authenticated || (options.mode === 'token' && identity.user === undefined)) {
      throw unauthorized(request, requirement, 'authentication required');
    }
    if (scheme.couldGetMore(identity, requirement)) throw unauthorized(request, requirement, 'insufficient scope', 'insufficient_scope');
    request.log.debug({ user: identity.user, access: formatScope(requirement.access) }, 'access denied');
    throw new RegistryError('DENIED', 'requested access to the resource is denied', {
      detail: requirement.access.flatMap((a) => a.actions.filter((action) => !identity.may(a.type, a.name, action)).map((action) => ({ type: a.type, name: a.name, action }))),
    });
  });
}
