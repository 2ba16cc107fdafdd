import { createPublicKey, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { TokenError, TokenVerifier, jwkThumbprint, parseScope, signToken } from '../../libs/auth/index.js';
import { RegistryError, isValidName } from '../../libs/oci/index.js';
import { HttpError } from './errors.js';
import { basicCredentials, type AuthOptions, type TokenIssuerOptions } from './auth.js';
import { readLimited } from './http.js';

/**
 * The built-in token service of the Docker registry token specification: `GET /auth/token`
 * (Basic credentials, `service`, any number of `scope`) and the OAuth2 password grant on POST.
 * A token grants the intersection of what was asked and what the policy allows the user
 * (anonymous without credentials); asking for more than that is not an error, it is left out.
 *
 * With `offline_token=true` and credentials, the answer also carries a `refresh_token` (the
 * registry token specification's, as `docker login` asks for): a JWS for the user alone, with an
 * audience no registry accepts, that POST `grant_type=refresh_token` exchanges for access tokens
 * of any scope. The UI keeps that instead of the password.
 */
export function installTokenIssuer(app: FastifyInstance, token: TokenIssuerOptions, options: Pick<AuthOptions, 'basicRealm' | 'policy'>, prefix: string): void {
  const { htpasswd, signingKey: key } = token;

  const refreshAudience = `${token.service}#refresh`;
  const refreshVerifier = new TokenVerifier({
    // Only our own key: a refresh token is never signed by an external issuer.
    trust: { keys: [{ key: createPublicKey(key), kids: new Set([jwkThumbprint(createPublicKey(key))]) }], roots: [] },
    issuer: token.issuer,
    audience: refreshAudience,
  });
  const refreshSeconds = token.refreshExpirySeconds ?? 28_800;

  const refuse = () =>
    new HttpError('UNAUTHORIZED', 'authentication required', { headers: { 'WWW-Authenticate': `Basic realm="${options.basicRealm.replace(/["\\]/g, '\\$&')}"` } });

  /** The user a refresh token was issued to; undefined when it does not verify or the user is gone from htpasswd. */
  const refreshUser = (refreshToken: string): string | undefined => {
    try {
      const claims = refreshVerifier.verify(refreshToken);
      if (typeof claims.sub === 'string' && claims.sub !== '' && htpasswd.has(claims.sub)) return claims.sub;
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
    }
    return undefined;
  };

  const issue = async (
    reply: FastifyReply,
    who: { user: string; password: string } | { refreshedUser: string } | undefined,
    service: string | null,
    scopes: string[],
    flavour: { oauth: boolean; offline: boolean },
  ) => {
    if (who && 'password' in who && !(await htpasswd.verify(who.user, who.password))) throw refuse();
    const credentials = who && ('password' in who ? who : { user: who.refreshedUser });
    if (service !== null && service !== token.service) {
      throw new RegistryError('DENIED', `this issuer signs tokens for service ${JSON.stringify(token.service)}`, { detail: { service } });
    }
    const user = credentials?.user;
    // Only names a repository can have: a token never carries a name the registry would refuse.
    const requested = scopes.flatMap(parseScope).filter((a) => a.type !== 'repository' || isValidName(a.name));
    if (requested.length > MAX_SCOPES) throw new RegistryError('DENIED', `at most ${MAX_SCOPES} resource scopes per token`, { reason: 'bad-parameter' });
    const access = options.policy.grant(user, requested);
    const now = Math.floor(Date.now() / 1000);
    const jwt = signToken(
      { iss: token.issuer, ...(user !== undefined ? { sub: user } : {}), aud: token.service, exp: now + token.expirySeconds, nbf: now, iat: now, jti: randomUUID(), access },
      key,
    );
    const body: Record<string, unknown> = { access_token: jwt, expires_in: token.expirySeconds, issued_at: new Date(now * 1000).toISOString() };
    if (flavour.oauth) body.scope = scopes.join(' ');
    else body.token = jwt;
    if (flavour.offline && user !== undefined) {
      body.refresh_token = signToken({ iss: token.issuer, sub: user, aud: refreshAudience, exp: now + refreshSeconds, nbf: now, iat: now, jti: randomUUID() }, key);
    }
    return reply.code(200).header('cache-control', 'no-store').type('application/json').send(body);
  };

  app.get(`${prefix}/auth/token`, async (request: FastifyRequest, reply) => {
    const query = new URLSearchParams((request.raw.url ?? '').split('?')[1] ?? '');
    const header = request.headers.authorization;
    const credentials = basicCredentials(header);
    if (header !== undefined && !credentials) throw refuse();
    return issue(reply, credentials, query.get('service'), query.getAll('scope'), { oauth: false, offline: query.get('offline_token') === 'true' });
  });

  // OAuth2 (RFC 6749 4.3 and the registry spec's oauth.md): containerd and docker try it first.
  app.post(`${prefix}/auth/token`, async (request: FastifyRequest, reply) => {
    const body = await readLimited(request.raw, 64 * 1024, () => new RegistryError('SIZE_INVALID', 'token request too large', { reason: 'too-large' }));
    const form = new URLSearchParams(body.toString('utf8'));
    const grant = form.get('grant_type');
    const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    if (grant === 'refresh_token') {
      // RFC 6749 5.2: a missing parameter is invalid_request, a bad or expired refresh token invalid_grant, both 400.
      const refreshToken = form.get('refresh_token');
      if (!refreshToken) return reply.code(400).type('application/json').send({ error: 'invalid_request', error_description: 'refresh_token is missing' });
      const refreshedUser = refreshUser(refreshToken);
      if (refreshedUser === undefined)
        return reply.code(400).type('application/json').send({ error: 'invalid_grant', error_description: 'the refresh token is invalid or expired' });
      return issue(reply, { refreshedUser }, form.get('service'), scopes, { oauth: true, offline: false });
    }
    if (grant !== 'password') {
      return reply.code(400).type('application/json').send({ error: 'unsupported_grant_type', error_description: 'grant_type must be password or refresh_token' });
    }
    const user = form.get('username');
    const password = form.get('password');
    if (user === null || password === null) throw refuse();
    return issue(reply, { user, password }, form.get('service'), scopes, { oauth: true, offline: form.get('access_type') === 'offline' });
  });
}

/** More than any client asks for (a push with mounts asks for a handful); bounds token size and policy work. */
const MAX_SCOPES = 100;
