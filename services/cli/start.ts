import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../api/app.js';
import { splitAddr, type Config } from '../../libs/config/index.js';
import { Activity } from '../../libs/async/activity.js';
import { BestEffortPublisher, OutboxRelay, PullCoalescer, type EventBus } from '../../libs/events/index.js';
import { createLogger, type Logger } from '../../libs/log/index.js';
import { counter } from '../../libs/metrics/index.js';
import { migrate, outbox, pendingMigrations, type Database } from '../../libs/metadata/index.js';
import { warmHashPool } from '../../libs/hashing/index.js';
import { connectCache, ManifestReadCache, Registry, type HealthChecker } from '../../libs/registry/index.js';
import { startWorkers, type RunningWorkers } from '../worker/index.js';
import { healthChecker, observeProcess, startOpsServer } from './observe.js';
import { BACKGROUND_POOL_SIZE, openParts, type Parts } from './parts.js';
import { apiOptionsFromConfig, eventSourceFromConfig, gcPolicyFromConfig, isLoopback, manifestCacheLimits, registryOptionsFromConfig } from './wiring.js';

export interface RunningWharf {
  /** e.g. http://127.0.0.1:5000 (without the path prefix). */
  url: string;
  registry: Registry;
  bus: EventBus;
  relay: OutboxRelay;
  database: Database;
  logger: Logger;
  app: FastifyInstance;
  close(): Promise<void>;
}

export interface RunningRelay {
  relay: OutboxRelay;
  close(): Promise<void>;
}

/** Slack of the relays' pace (a short burst goes at once) and how often a busy API node says so. */
const PACE_BURST_MS = 250;
const BUSY_MARK_MS = 1_000;

/** Health probes and scrapes do not make a node busy: a Kubernetes probe would pace the relays for good. */
const NOT_REQUESTS = new Set(['/healthz', '/readyz', '/metrics']);

/** Publishes committed outbox rows and prunes old published ones. Runs on every API node and worker. */
/**
 * `activity`: the requests of the API node the relay runs in, which it gives way to (none in
 * `wharf worker`); while there are any, the node also marks the cluster busy every second, which
 * paces every relay to events.busyrate.
 */
export function startRelay(config: Config, parts: Parts, logger: Logger, activity?: Activity): RunningRelay {
  const deadLettered = counter({
    name: 'wharf_outbox_dead_lettered_total',
    help: 'Outbox events the bus refused for good (e.g. over NATS max_payload), set aside so the rest flow',
  });
  const db = parts.database.db;
  const rate = config['events.busyrate'];
  const relay = new OutboxRelay(outbox.outboxSource(db), parts.bus, {
    ...(activity ? { activity } : {}),
    ...(rate > 0 ? { pace: outbox.outboxPace(db, rate, PACE_BURST_MS) } : {}),
    onError: (err) => logger.warn({ err }, 'outbox relay pass failed; will retry'),
    onDeadLetter: (message, err) => {
      deadLettered.inc();
      logger.error({ err, eventId: message.eventId, subject: message.subject }, 'outbox event refused by the bus; set aside (outbox.dead_lettered_at), the events after it go on');
    },
  });
  // One mark at a time: a stalled PostgreSQL must not collect one waiting statement a second.
  let marking = false;
  const markBusy = () => {
    if (marking) return;
    marking = true;
    outbox
      .markRelaysBusy(db, 2 * BUSY_MARK_MS)
      .catch((err) => logger.debug({ err }, 'cluster not marked busy for the relays'))
      .finally(() => {
        marking = false;
      });
  };
  // The first request after an idle period marks at once: a drain already running would
  // otherwise go unpaced for up to a period while requests wait.
  if (activity && rate > 0) activity.onWake(markBusy);
  const busyMarks =
    activity && rate > 0
      ? setInterval(() => {
          if (activity.busySinceLastLook()) markBusy();
        }, BUSY_MARK_MS)
      : undefined;
  busyMarks?.unref();
  relay.start();
  const prune = setInterval(() => {
    outbox.prunePublished(parts.database.db, config['events.outboxretention']).catch((err) => logger.warn({ err }, 'outbox prune failed'));
  }, 60_000);
  prune.unref();
  return {
    relay,
    async close() {
      clearInterval(prune);
      clearInterval(busyMarks);
      await relay.stop();
      await relay.drain().catch((err) => logger.warn({ err }, 'outbox not drained at shutdown; another node will publish it'));
    },
  };
}

export interface RunningApi {
  url: string;
  app: FastifyInstance;
  registry: Registry;
  close(): Promise<void>;
}

/**
 * Stops the server: no new connections, idle ones closed, in-flight requests run on for
 * `http.shutdowntimeout` seconds, then the connections left are cut. A request a client sends
 * on a connection that was already open is still served, with Connection: close, so a push's
 * next request does not fail just because the node it talked to is rolling. A cut PATCH rolls
 * back its transaction: the session stays at its last committed offset.
 */
async function closeGracefully(app: FastifyInstance, timeoutSeconds: number, logger: Logger): Promise<void> {
  const closed = app.close();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), timeoutSeconds * 1000)));
  const outcome = await Promise.race([closed.then(() => 'closed' as const), deadline]);
  clearTimeout(timer);
  if (outcome === 'deadline') {
    logger.warn({ timeoutSeconds }, 'shutdown deadline reached: cutting the requests still in flight');
    app.server.closeAllConnections();
    await closed;
  }
}

export async function startApi(config: Config, parts: Parts, relay: OutboxRelay, logger: Logger, health: HealthChecker, activity?: Activity): Promise<RunningApi> {
  const source = eventSourceFromConfig(config, randomUUID());
  const droppedPulls = counter<'reason'>({
    name: 'wharf_pull_events_dropped_total',
    help: 'Pull events dropped (best effort): queue full, bus disconnected, or publish failed',
    labelNames: ['reason'],
  });
  const pullPublisher = new BestEffortPublisher(parts.bus, {
    onDropped: (reason, err) => {
      droppedPulls.inc({ reason });
      if (err) logger.debug({ err }, 'pull event not published');
    },
  });
  const pullEvents = new PullCoalescer(pullPublisher, { windowMs: config['events.pullwindow'] });
  const manifestCache = new ManifestReadCache(manifestCacheLimits(config));
  const disconnectCache = connectCache(manifestCache, parts.bus, (err) => logger.warn({ err }, 'manifest cache subscription failed: manifest reads go to the database'));
  const registry = new Registry({
    manifestCache,
    db: parts.database.db,
    uploadsDb: parts.database.uploadsDb,
    store: parts.store,
    bus: parts.bus,
    pullEvents,
    outboxWritten: () => relay.wake(),
    warn: (message, err) => logger.warn({ err }, message),
    options: registryOptionsFromConfig(config),
  });
  const options = apiOptionsFromConfig(config, { registry, logger, source, health });
  const app = buildApi(options);
  if (activity) {
    // At the socket level, so every request counts, whatever route or hook ends it.
    app.server.on('request', (req, res) => {
      if (NOT_REQUESTS.has(req.url ?? '')) return;
      activity.enter();
      res.once('close', () => activity.leave());
    });
  }
  const hashing = await warmHashPool();
  if (hashing.nativeError) logger.info({ reason: hashing.nativeError }, 'native SHA-256 addon not loaded: uploads are hashed with hash-wasm');
  const { host, port } = splitAddr(config['http.addr']);
  if (options.auth?.mode === 'none' && !isLoopback(host)) {
    logger.warn({ addr: config['http.addr'] }, 'auth.mode is none on an address other hosts can reach: anyone who can connect may read, push and delete');
  }
  await app.listen({ host, port });
  const address = app.server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  source.addr = `${host}:${boundPort}`;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${boundPort}`,
    app,
    registry,
    close: async () => {
      await closeGracefully(app, config['http.shutdowntimeout'], logger);
      pullEvents.flush();
      await pullPublisher.close();
      disconnectCache();
    },
  };
}

function workersFor(config: Config, parts: Parts, logger: Logger): Promise<RunningWorkers> {
  return startWorkers({ config, gcPolicy: gcPolicyFromConfig(config), database: parts.database, store: parts.store, bus: parts.bus, logger });
}

async function assembled(config: Config, logger: Logger, prepare: (parts: Parts) => Promise<void>, withWorkers: boolean): Promise<RunningWharf> {
  const parts = await openParts(config, logger);
  let background: Database | undefined;
  try {
    await prepare(parts);
    // Consumers first: in embedded mode the relay hands each event to them before marking it published.
    // Background work on connections of its own: a backlog must not take the ones requests wait for.
    background = parts.database.withPool(BACKGROUND_POOL_SIZE);
    const backgroundParts: Parts = { ...parts, database: background };
    const workers = withWorkers ? await workersFor(config, backgroundParts, logger) : undefined;
    const activity = new Activity();
    const relay = startRelay(config, backgroundParts, logger, activity);
    const health = healthChecker(config, parts);
    const api = await startApi(config, parts, relay.relay, logger, health, activity).catch(async (err) => {
      await relay.close();
      await workers?.close();
      throw err;
    });
    const unobserve = observeProcess(health, parts.database, parts.bus);
    let closing: Promise<void> | undefined;
    return {
      url: api.url,
      registry: api.registry,
      bus: parts.bus,
      relay: relay.relay,
      database: parts.database,
      logger,
      app: api.app,
      close: () =>
        (closing ??= (async () => {
          await api.close();
          unobserve();
          await relay.close();
          await workers?.close();
          await background?.close();
          await parts.close();
        })()),
    };
  } catch (err) {
    await background?.close();
    await parts.close();
    throw err;
  }
}

/** `wharf all`: API, relay and (later) workers in one process; applies migrations first. The embedded default. */
export async function startWharf(config: Config, logger = createLogger(config['log.level'])): Promise<RunningWharf> {
  return assembled(
    config,
    logger,
    async (parts) => {
      // A migration step may take longer than the statement timeout a serving connection gets.
      const unbounded = parts.database.unbounded();
      const applied = await migrate(unbounded.db).finally(() => unbounded.close());
      if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    },
    true,
  );
}

/** `wharf serve`: one stateless API node of a cluster. The schema must be current (`wharf migrate` first). */
export async function startServe(config: Config, logger = createLogger(config['log.level'])): Promise<RunningWharf> {
  return assembled(
    config,
    logger,
    async (parts) => {
      const pending = await pendingMigrations(parts.database.db);
      if (pending.length > 0) throw new Error(`database schema is behind (pending: ${pending.join(', ')}); run \`wharf migrate\` first`);
    },
    false,
  );
}

/** `wharf worker`: the outbox relay and the worker roles `worker.roles` names (all by default). */
export async function startWorker(config: Config, logger = createLogger(config['log.level'])): Promise<{ url?: string; relay: OutboxRelay; close(): Promise<void> }> {
  const parts = await openParts(config, logger);
  let workers: RunningWorkers;
  try {
    workers = await workersFor(config, parts, logger);
  } catch (err) {
    await parts.close();
    throw err;
  }
  const relay = startRelay(config, parts, logger);
  const health = healthChecker(config, parts);
  const unobserve = observeProcess(health, parts.database, parts.bus);
  let ops: Awaited<ReturnType<typeof startOpsServer>> | undefined;
  try {
    if (config['worker.httpaddr'] !== '') ops = await startOpsServer(splitAddr(config['worker.httpaddr']), health, logger);
  } catch (err) {
    unobserve();
    await relay.close();
    await workers.close();
    await parts.close();
    throw err;
  }
  return {
    url: ops?.url,
    relay: relay.relay,
    async close() {
      // Relay first: with the in-process bus it hands events to the roles before marking them published.
      // Then the roles finish or hand back (nak) what they hold.
      await relay.close();
      await workers.close();
      unobserve();
      await ops?.close();
      await parts.close();
    },
  };
}
