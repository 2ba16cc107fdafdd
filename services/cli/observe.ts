import { createServer, type Server } from 'node:http';
import type { Config } from '../../libs/config/index.js';
import type { EventBus } from '../../libs/events/index.js';
import type { Logger } from '../../libs/log/index.js';
import { gauge, metricsText, onScrape } from '../../libs/metrics/index.js';
import { outbox, type Database } from '../../libs/metadata/index.js';
import { HealthChecker } from '../../libs/registry/index.js';
import type { Parts } from './parts.js';

/** The readiness checks of a process: PostgreSQL and the blob store required, NATS reported. */
export function healthChecker(config: Config, parts: Parts): HealthChecker {
  return new HealthChecker(
    {
      postgresql: (timeoutMs) => parts.database.ping(timeoutMs),
      storage: (signal) => parts.store.ping(signal),
      nats: parts.bus.isConnected ? () => parts.bus.isConnected!() : undefined,
    },
    { timeoutMs: config['health.timeout'] * 1000 },
  );
}

/**
 * Gauges read at scrape time from the process's drivers: dependency reachability, database pool
 * usage, outbox backlog and age, and the lag of the durable consumers this process runs.
 * Returns the function that stops feeding them (at shutdown).
 */
export function observeProcess(health: HealthChecker, database: Database, bus: EventBus): () => void {
  const up = gauge({ name: 'wharf_dependency_up', help: '1 when the dependency answered the last readiness check, 0 when not', labelNames: ['dependency'] });
  const poolConnections = gauge({ name: 'wharf_db_pool_connections', help: 'Open PostgreSQL connections by pool and state (idle, busy)', labelNames: ['pool', 'state'] });
  const poolMax = gauge({ name: 'wharf_db_pool_max', help: 'Size limit of each PostgreSQL pool', labelNames: ['pool'] });
  const poolWaiting = gauge({ name: 'wharf_db_pool_waiting', help: 'Callers queued for a PostgreSQL connection', labelNames: ['pool'] });
  const backlog = gauge({ name: 'wharf_outbox_backlog', help: 'Committed events not yet published to the bus' });
  const oldest = gauge({ name: 'wharf_outbox_oldest_unpublished_age_seconds', help: 'Age of the oldest unpublished event (0 when none)' });
  const outboxDead = gauge({ name: 'wharf_outbox_dead_letters', help: 'Outbox events set aside because the bus refused them for good (all nodes)' });
  const pending = gauge({ name: 'wharf_consumer_pending', help: 'Events a durable consumer (one per worker role) has not been handed yet', labelNames: ['consumer'] });
  const ackPending = gauge({ name: 'wharf_consumer_ack_pending', help: 'Events handed to a durable consumer and not yet acknowledged', labelNames: ['consumer'] });

  const stops = [
    onScrape(async () => {
      const report = await health.check();
      for (const c of report.checks) up.set({ dependency: c.name }, c.ok ? 1 : 0);
    }),
    onScrape(async () => {
      for (const p of database.poolStats()) {
        poolConnections.set({ pool: p.pool, state: 'idle' }, p.idle);
        poolConnections.set({ pool: p.pool, state: 'busy' }, p.total - p.idle);
        poolMax.set({ pool: p.pool }, p.max);
        poolWaiting.set({ pool: p.pool }, p.waiting);
      }
    }),
    onScrape(async () => {
      try {
        const stats = await outbox.outboxStats(database.db);
        backlog.set(stats.backlog);
        oldest.set(stats.oldestAgeSeconds);
        outboxDead.set(await outbox.outboxDeadLetters(database.db));
      } catch {
        // Unknown while PostgreSQL is down (wharf_dependency_up says so): no stale figure.
        backlog.reset();
        oldest.reset();
        outboxDead.reset();
      }
    }),
    onScrape(async () => {
      const lags = (await bus.consumerLag?.()) ?? [];
      pending.reset();
      ackPending.reset();
      for (const lag of lags) {
        pending.set({ consumer: lag.durable }, lag.pending);
        ackPending.set({ consumer: lag.durable }, lag.ackPending);
      }
    }),
  ];
  return () => {
    for (const stop of stops) stop();
  };
}

/**
 * `wharf worker` has no API; where `worker.httpaddr` is set it answers /healthz, /readyz and
 * /metrics there, for the probes and the scraper of its Deployment.
 */
export async function startOpsServer(addr: { host: string; port: number }, health: HealthChecker, logger: Logger): Promise<{ url: string; close(): Promise<void> }> {
  let draining = false;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const send = (status: number, type: string, body: string) => res.writeHead(status, { 'content-type': type }).end(body);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'application/json', '{"error":"method not allowed"}');
    if (path === '/healthz') return send(200, 'application/json', '{"status":"ok"}');
    if (path === '/readyz') {
      void health.check().then((report) => {
        const ready = report.ready && !draining;
        send(
          ready ? 200 : 503,
          'application/json',
          JSON.stringify({ status: ready ? 'ready' : draining ? 'draining' : 'unavailable', down: report.checks.filter((c) => !c.ok).map((c) => c.name), checks: report.checks }),
        );
      });
      return;
    }
    if (path === '/metrics') {
      void metricsText().then(
        ({ contentType, body }) => send(200, contentType, body),
        (err) => {
          logger.warn({ err }, 'metrics failed');
          send(500, 'text/plain', 'metrics failed');
        },
      );
      return;
    }
    send(404, 'application/json', '{"error":"not found: /healthz, /readyz and /metrics live here"}');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => resolve());
  });
  const bound = server.address();
  const port = typeof bound === 'object' && bound ? bound.port : addr.port;
  return {
    url: `http://${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${port}`,
    async close() {
      draining = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
