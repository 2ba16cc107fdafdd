import type { FastifyRequest } from 'fastify';

/**
 * scheme://host as the client addressed this registry: the token realm and event URLs start with
 * it. Fastify reads X-Forwarded-Proto and X-Forwarded-Host (their last entries) only when the
 * connection comes from a proxy http.trustedproxies names; otherwise the socket and Host count.
 */
export function externalOrigin(request: FastifyRequest): string {
  const scheme = request.protocol === 'https' ? 'https' : 'http';
  return `${scheme}://${request.host || 'localhost'}`;
}
