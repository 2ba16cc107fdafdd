import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../api/app.js';
import { splitAddr, type Config } from '../../libs/config/index.js';
import { MemoryBus, OutboxRelay, type EventBus } from '../../libs/events/index.js';
import { createLogger, type Logger } from '../../libs/log/index.js';
import { migrate, openDatabase, outbox, startEmbeddedPostgres, type Database, type EmbeddedPostgresHandle } from '../../libs/metadata/index.js';
import { Registry } from '../../libs/registry/index.js';
import { FilesystemBlobStore } from '../../libs/storage/index.js';

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

/** The database named in config, or an embedded PostgreSQL under data.dir when none is. */
async function connect(config: Config, logger: Logger): Promise<{ database: Database; embedded?: EmbeddedPostgresHandle }> {
  let url = config['database.url'];
  let embedded: EmbeddedPostgresHandle | undefined;
  if (url === '') {
    const pgLog = logger.child({ component: 'embedded-postgres' });
    embedded = await startEmbeddedPostgres(join(config['data.dir'], 'postgres'), (line) => pgLog.debug(line));
    url = embedded.url;
  }
  const database = openDatabase({
    url,
    poolSize: config['database.poolsize'],
    uploadPoolSize: config['database.uploadpoolsize'],
    onError: (err) => logger.warn({ err }, 'idle database connection lost'),
  });
  return { database, embedded };
}

/** Embedded mode (`wharf all`): API, outbox relay and in-process bus in one process. */
export async function startWharf(config: Config, logger = createLogger(config['log.level'])): Promise<RunningWharf> {
  const { database, embedded } = await connect(config, logger);
  const applied = await migrate(database.db);
  if (applied.length > 0) logger.info({ applied }, 'migrations applied');

  const bus = new MemoryBus();
  bus.onHandlerError = (err) => logger.warn({ err }, 'event subscriber failed');
  const relay = new OutboxRelay(outbox.outboxSource(database.db), bus, { onError: (err) => logger.warn({ err }, 'outbox relay pass failed') });
  relay.start();
  const prune = setInterval(() => {
    outbox.prunePublished(database.db, config['events.outboxretention']).catch((err) => logger.warn({ err }, 'outbox prune failed'));
  }, 60_000);
  prune.unref();

  const source = { addr: config['http.addr'], instanceID: config['events.instanceid'] || randomUUID() };
  const registry = new Registry({
    db: database.db,
    uploadsDb: database.uploadsDb,
    store: new FilesystemBlobStore(join(config['data.dir'], 'blobs')),
    bus,
    outboxWritten: () => relay.wake(),
    warn: (message, err) => logger.warn({ err }, message),
    options: {
      pullEvents: config['events.pull'],
      manifestMaxBytes: config['limits.manifestbytes'],
      foreignUrlAllow: config['validation.manifests.urls.allow'].map((p) => new RegExp(p)),
      foreignUrlDeny: config['validation.manifests.urls.deny'].map((p) => new RegExp(p)),
      source,
    },
  });

  const app = buildApi({
    registry,
    logger,
    prefix: config['http.prefix'],
    pageSize: config['limits.pagesize'],
    manifestMaxBytes: config['limits.manifestbytes'],
    source,
    bodyTimeoutMs: config['http.bodytimeout'] * 1000,
  });
  const { host, port } = splitAddr(config['http.addr']);
  await app.listen({ host, port });
  const address = app.server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
  source.addr = `${host}:${boundPort}`;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      clearInterval(prune);
      await app.close();
      await relay.stop();
      await relay.drain().catch((err) => logger.warn({ err }, 'outbox not drained at shutdown'));
      await bus.close();
      await database.close();
      await embedded?.stop();
    })());

  return { url, registry, bus, relay, database, logger, app, close };
}
