import { Batcher } from '../../libs/async/batcher.js';
import { endpointWants, parseEndpoints, redactUrl, type WebhookEndpoint } from '../../libs/config/index.js';
import type { RegistryEvent } from '../../libs/events/index.js';
import { webhooks } from '../../libs/metadata/index.js';
import { counter, gauge } from '../../libs/metrics/index.js';
import { EndpointLoop, type EndpointLoopOptions } from './webhook-endpoint.js';
import type { WorkerContext, WorkerRole } from './role.js';

const queuedTotal = counter({ name: 'wharf_webhook_queued_total', help: 'Events queued for delivery, by endpoint', labelNames: ['endpoint'] });
const pendingGauge = gauge({ name: 'wharf_webhook_pending', help: 'Webhook deliveries not yet delivered (all replicas)', labelNames: ['endpoint'] });
const failingGauge = gauge({ name: 'wharf_webhook_failing', help: 'Pending webhook deliveries whose last attempt failed', labelNames: ['endpoint'] });
const deadGauge = gauge({ name: 'wharf_webhook_dead_letters', help: 'Webhook deliveries in the dead-letter table', labelNames: ['endpoint'] });

/** The durable consumer of the role, shared by its replicas. */
export const WEBHOOKS_DURABLE = 'webhooks';

export interface WebhooksRoleOptions extends Partial<EndpointLoopOptions> {
  /** How often the queue gauges are refreshed and old rows pruned. */
  statsMs?: number;
  pruneMs?: number;
}

/** Which endpoints want an event, by name. */
export function endpointsFor(endpoints: WebhookEndpoint[], event: RegistryEvent): string[] {
  return endpoints.filter((e) => endpointWants(e, event)).map((e) => e.name);
}

/**
 * The webhooks role. Its durable consumer only queues each event in PostgreSQL, one row per
 * endpoint that wants it, and acks once that committed; per-endpoint loops deliver the rows.
 * So the bus never waits on a receiver, and a receiver down for hours costs queue rows, not
 * JetStream redeliveries.
 */
export function webhooksRole(options: WebhooksRoleOptions = {}): WorkerRole {
  return {
    name: 'webhooks',
    async start(context: WorkerContext) {
      const { config, database, bus, logger } = context;
      const endpoints = parseEndpoints(config['notifications.endpoints']);
      const active = endpoints.filter((e) => !e.disabled);
      const loopOptions: EndpointLoopOptions = { pollMs: options.pollMs ?? 1_000, leaseMarginMs: options.leaseMarginMs ?? 5_000 };
      const loops = new Map(active.map((e) => [e.name, new EndpointLoop(e, database.db, logger, loopOptions)]));
      for (const loop of loops.values()) loop.start();
      for (const e of endpoints) logger.info({ endpoint: e.name, url: redactUrl(e.url), timeoutMs: e.timeoutMs, disabled: e.disabled }, 'webhook endpoint configured');

      // Events handled at the same time are queued together, one statement for all their rows.
      const fanOut = new Batcher((items: Array<{ endpoints: string[]; event: webhooks.QueuedEvent }>) => webhooks.enqueueMany(database.db, items), {
        maxBatch: 500,
        maxInFlight: 2,
      });
      const queue = async (subject: string, event: RegistryEvent) => {
        const names = endpointsFor(active, event);
        if (names.length === 0) return;
        const queued = await fanOut.add({ endpoints: names, event: { eventId: event.id, subject, payload: event } });
        for (const name of queued) {
          queuedTotal.inc({ endpoint: name });
          loops.get(name)?.wake();
        }
      };

      // The consumer runs even with no endpoint configured: it then only moves its position
      // along the stream, so an endpoint configured later starts from that day's events
      // instead of being sent everything the stream still retains.
      const stopConsumer = await bus.consumeDurable({
        durable: WEBHOOKS_DURABLE,
        filterSubject: 'wharf.events.>',
        handler: (subject, event) => queue(subject, event),
        // In embedded mode the bus hands over whole relay batches: queued in one go.
        handleBatch: async (events) => {
          await Promise.all(events.map((e) => queue(e.subject, e.event)));
        },
        // Queueing fails only while PostgreSQL does: keep retrying (about three days at the last delay).
        maxDeliver: 10_000,
        backoffMs: [500, 2_000, 5_000, 30_000],
        // The handler is one INSERT: a replica that died holding messages hands them back quickly.
        ackWaitMs: 5_000,
        // Many events in hand at once go into one INSERT together (the Batcher above).
        // Webhooks promise no order (Distribution's neither), so nothing is lost by it.
        batch: 256,
        concurrency: 256,
        onDeadLetter: (subject, event, err) => {
          logger.error({ err, subject, eventId: event?.id }, 'event could not be queued for webhooks');
        },
      });

      const refresh = async () => {
        const counts = await webhooks.endpointCounts(database.db);
        for (const c of counts) {
          pendingGauge.set({ endpoint: c.endpoint }, c.pending);
          failingGauge.set({ endpoint: c.endpoint }, c.failing);
          deadGauge.set({ endpoint: c.endpoint }, c.deadLettered);
        }
      };
      const stats = setInterval(() => void refresh().catch((err) => logger.debug({ err }, 'webhook gauges not refreshed')), options.statsMs ?? 15_000);
      stats.unref();
      const prune = setInterval(() => {
        webhooks.prune(database.db, config['notifications.retention']).catch((err) => logger.warn({ err }, 'webhook prune failed'));
      }, options.pruneMs ?? 600_000);
      prune.unref();

      return async () => {
        clearInterval(stats);
        clearInterval(prune);
        await stopConsumer();
        await Promise.all([...loops.values()].map((l) => l.stop()));
      };
    },
  };
}
