import type { FastifyInstance } from 'fastify';
import { metricsText } from '../../libs/metrics/index.js';
import type { HealthChecker, Registry } from '../../libs/registry/index.js';

/** The routes for operators beside /v2: health and readiness probes, the webhook admin view, Prometheus metrics. */
export function installOpsRoutes(app: FastifyInstance, options: { prefix: string; health: HealthChecker; registry: Registry }): void {
  const { prefix, health, registry } = options;
  app.get(`${prefix}/healthz`, async () => ({ status: 'ok' }));
  app.get(`${prefix}/readyz`, async (_request, reply) => {
    const report = await health.check();
    const down = report.checks.filter((c) => !c.ok);
    return reply.code(report.ready ? 200 : 503).send({
      status: report.ready ? 'ready' : 'unavailable',
      // Named plainly, so an operator reads the cause off the probe's body.
      down: down.map((c) => c.name),
      checks: Object.fromEntries(report.checks.map((c) => [c.name, { ok: c.ok, required: c.required, ms: c.ms, ...(c.error ? { error: c.error } : {}) }])),
      ...(down.some((c) => c.name === 'nats') ? { note: 'NATS does not make a node unready: events wait in the outbox and are published when it is back' } : {}),
    });
  });
  // Queue counts and last error per webhook endpoint (docs/events.md).
  app.get(`${prefix}/_wharf/admin/webhooks`, async (_request, reply) => reply.type('application/json').send(await registry.webhooks.status()));
  app.get(`${prefix}/metrics`, async (_request, reply) => {
    const { contentType, body } = await metricsText();
    return reply.type(contentType).send(body);
  });
}
