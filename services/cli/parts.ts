import { join } from 'node:path';
import type { Config } from '../../libs/config/index.js';
import { MemoryBus, type EventBus } from '../../libs/events/index.js';
import type { Logger } from '../../libs/log/index.js';
import { openDatabase, startEmbeddedPostgres, type Database, type DatabaseTimeouts, type EmbeddedPostgresHandle } from '../../libs/metadata/index.js';
import { FilesystemBlobStore, type BlobStore } from '../../libs/storage/index.js';
import { lockDataDir } from './data-dir-lock.js';

/** The three drivers a process needs: database, blob store and bus. Embedded and cluster mode differ only here. */
export interface Parts {
  database: Database;
  store: BlobStore;
  bus: EventBus;
  close(): Promise<void>;
}

/** The configured backstops, in milliseconds. An upload's transaction may wait on its body up to http.bodytimeout between statements. */
export function databaseTimeouts(config: Config): DatabaseTimeouts {
  const idle = config['database.idletransactiontimeout'] * 1000;
  return {
    statementMs: config['database.statementtimeout'] * 1000,
    lockMs: config['database.locktimeout'] * 1000,
    idleTransactionMs: idle,
    uploadIdleTransactionMs: idle === 0 ? 0 : idle + config['http.bodytimeout'] * 1000,
  };
}

/** Connections of an API process's background pool (outbox relay, in-process workers): a backlog waits for these, never for the requests' pool. */
export const BACKGROUND_POOL_SIZE = 4;

/** database.poolsize, with 0 (the default) sized for where the database runs: beside the node (embedded) or on its own server. */
export function queryPoolSize(config: Config): number {
  const configured = config['database.poolsize'];
  if (configured > 0) return configured;
  return config['database.url'] === '' ? 10 : 20;
}

/** The embedded PostgreSQL and the data directory's lock, stopped and released together. */
export async function startLockedEmbeddedPostgres(config: Config, onLog?: (line: string) => void): Promise<EmbeddedPostgresHandle> {
  const lock = await lockDataDir(config['data.dir']);
  try {
    const embedded = await startEmbeddedPostgres(join(config['data.dir'], 'postgres'), {
      ...(onLog ? { onLog } : {}),
      connections: queryPoolSize(config) + config['database.uploadpoolsize'] + BACKGROUND_POOL_SIZE,
    });
    return {
      url: embedded.url,
      async stop() {
        try {
          await embedded.stop();
        } finally {
          await lock.release();
        }
      },
    };
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function openDatabasePart(config: Config, logger: Logger): Promise<{ database: Database; embedded?: EmbeddedPostgresHandle }> {
  let url = config['database.url'];
  let embedded: EmbeddedPostgresHandle | undefined;
  if (url === '') {
    const pgLog = logger.child({ component: 'embedded-postgres' });
    embedded = await startLockedEmbeddedPostgres(config, (line) => pgLog.debug(line));
    url = embedded.url;
  }
  const database = openDatabase({
    url,
    poolSize: queryPoolSize(config),
    uploadPoolSize: config['database.uploadpoolsize'],
    timeouts: databaseTimeouts(config),
    onError: (err) => logger.warn({ err }, 'idle database connection lost; reconnecting on demand'),
  });
  return { database, embedded };
}

// Cluster drivers load on demand: embedded mode never loads the AWS SDK or the NATS client.
export async function openBlobStore(config: Config): Promise<BlobStore> {
  if (config['storage.driver'] === 's3') {
    const { S3BlobStore } = await import('../../libs/storage/s3.js');
    const accessKeyId = config['storage.s3.accesskeyid'];
    return new S3BlobStore({
      endpoint: config['storage.s3.endpoint'] || undefined,
      region: config['storage.s3.region'],
      bucket: config['storage.s3.bucket'],
      prefix: config['storage.s3.prefix'],
      forcePathStyle: config['storage.s3.forcepathstyle'],
      credentials: accessKeyId ? { accessKeyId, secretAccessKey: config['storage.s3.secretaccesskey'] } : undefined,
      publicEndpoint: config['storage.s3.publicendpoint'] || undefined,
      checksum: config['storage.s3.checksum'] as 'auto' | 'when_required' | 'when_supported',
      timeoutMs: config['storage.s3.timeout'] * 1000,
      maxAttempts: config['storage.s3.maxattempts'],
      partSize: config['storage.s3.partsize'],
      partConcurrency: config['storage.s3.partconcurrency'],
    });
  }
  return new FilesystemBlobStore(join(config['data.dir'], 'blobs'));
}

async function openBus(config: Config, logger: Logger): Promise<EventBus> {
  if (config['nats.url'] === '') {
    const bus = new MemoryBus();
    bus.onHandlerError = (err) => logger.warn({ err }, 'event subscriber failed');
    return bus;
  }
  const { NatsBus } = await import('../../libs/events/nats-bus.js');
  return NatsBus.connect({
    servers: config['nats.url'].split(',').map((s) => s.trim()),
    stream: config['nats.stream'],
    subjectPrefix: config['nats.subjectprefix'],
    name: `wharf-${process.pid}`,
  });
}

export async function openParts(config: Config, logger: Logger): Promise<Parts> {
  const { database, embedded } = await openDatabasePart(config, logger);
  try {
    const store = await openBlobStore(config);
    const bus = await openBus(config, logger);
    return {
      database,
      store,
      bus,
      async close() {
        await bus.close();
        await database.close();
        await embedded?.stop();
      },
    };
  } catch (err) {
    await database.close();
    await embedded?.stop();
    throw err;
  }
}
