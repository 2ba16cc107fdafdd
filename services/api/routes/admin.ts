import type { FastifyInstance } from 'fastify';
import { RegistryError } from '../../../libs/oci/index.js';
import type { Registry } from '../../../libs/registry/index.js';
import { HttpError } from '../errors.js';
import { readLimited } from '../http.js';

/*
 * The admin endpoints under <prefix>/_wharf/admin beside the webhook view in ops-routes.ts
 * (docs/api.md#operations-endpoints). The auth
 * hook requires registry:admin:* for every path below it, so nothing here checks access again.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `{"endpoint"?: string, "eventId"?: uuid}`, nothing else; 400 UNSUPPORTED names what is wrong. */
function redriveFilter(body: Buffer): { endpoint?: string; eventId?: string } {
  const bad = (message: string) => new RegistryError('UNSUPPORTED', message, { reason: 'bad-parameter' });
  if (body.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw bad('body is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('body must be a JSON object');
  const filter: { endpoint?: string; eventId?: string } = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (key === 'endpoint' && typeof value === 'string' && value !== '') filter.endpoint = value;
    else if (key === 'eventId' && typeof value === 'string' && UUID.test(value)) filter.eventId = value.toLowerCase();
    else
      throw bad(
        key === 'endpoint' || key === 'eventId' ? `${key} must be ${key === 'endpoint' ? 'an endpoint name' : 'an event id (a UUID)'}` : `unknown field ${JSON.stringify(key)}`,
      );
  }
  return filter;
}

export function installAdminRoutes(app: FastifyInstance, registry: Registry, prefix: string): void {
  const root = `${prefix}/_wharf/admin`;
  // `wharf webhooks redrive` over HTTP. JSON only: a cross-site form cannot send it, so a browser
  // holding credentials for this registry cannot be made to redrive by another page.
  app.post(`${root}/webhooks/redrive`, async (request, reply) => {
    const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') throw new HttpError('UNSUPPORTED', 'Content-Type must be application/json', { status: 415 });
    const body = await readLimited(request.raw, 4096, () => new RegistryError('SIZE_INVALID', 'redrive request too large', { reason: 'too-large' }));
    const redriven = await registry.webhooks.redrive(redriveFilter(body));
    return reply.type('application/json').send({ redriven });
  });

  // GC queues, the outbox and read-model lag.
  app.get(`${root}/status`, async (_request, reply) => reply.type('application/json').send(await registry.admin.status()));
}
