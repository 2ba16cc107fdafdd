import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parseScope, signToken } from '../../libs/auth/index.js';
import { RegistryError, isValidName } from '../../libs/oci/index.js';
import { HttpError } from './errors.js';
import { basicCredentials, type AuthOptions, type TokenIssuerOptions } from './auth.js';
import { readLimited } from './http.js';

/**
 * The built-in token service of the Docker registry token specification: `GET /auth/token`
 * (Basic credentials, `service`, any number of `scope`) and the OAuth2 password grant on POST.
 * A token grants the intersection of what was asked and what the policy allows the user
 * (anonymous without credentials); asking for more than that is not an error, it is left out.
 */
export function installTokenIssuer(app: FastifyInstance, token: TokenIssuerOptions, options: Pick<AuthOptions, 'basicRealm' | 'policy'>, prefix: string): void {
  const { htpasswd, signingKey: key } = token;

  const refuse = () =>
    new HttpError('UNAUTHORIZED', 'authentication required', { headers: { 'WWW-Authenticate': `Basic realm="${options.basicRealm.replace(/["\\]/g, '\\$&')}"` } });

  const issue = async (reply: FastifyReply, credentials: { user: string; password: string } | undefined, service: string | null, scopes: string[], oauth: boolean) => {
    if (credentials && !(await htpasswd.verify(credentials.user, credentials.password))) throw refuse();
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
    if (oauth) body.scope = scopes.join(' ');
    else body.token = jwt;
    return reply.code(200).header('cache-control', 'no-store').type('application/json').send(body);
  };

  app.get(`${prefix}/auth/token`, async (request: FastifyRequest, reply) => {
    const query = new URLSearchParams((request.raw.url ?? '').split('?')[1] ?? '');
    const header = request.headers.authorization;
    const credentials = basicCredentials(header);
    if (header !== undefined && !credentials) throw refuse();
    return issue(reply, credentials, query.get('service'), query.getAll('scope'), false);
  });

  // OAuth2 (RFC 6749 4.3 and the registry spec's oauth.md): containerd and docker try it first.
  app.post(`${prefix}/auth/token`, async (request: FastifyRequest, reply) => {
    const body = await readLimited(request.raw, 64 * 1024, () => new RegistryError('SIZE_INVALID', 'token request too large', { reason: 'too-large' }));
    const form = new URLSearchParams(body.toString('utf8'));
    if (form.get('grant_type') !== 'password') {
      return reply.code(400).type('application/json').send({ error: 'unsupported_grant_type', error_description: 'only the password grant is supported' });
    }
    const user = form.get('username');
    const password = form.get('password');
    if (user === null || password === null) throw refuse();
    return issue(reply, { user, password }, form.get('service'), (form.get('scope') ?? '').split(' ').filter(Boolean), true);
  });
}

/** More than any client asks for (a push with mounts asks for a handful); bounds token size and policy work. */
const MAX_SCOPES = 100;
