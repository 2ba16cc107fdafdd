import { randomBytes } from 'node:crypto';
import { loadConfig, type Config } from '../../libs/config/index.js';
import { createLogger } from '../../libs/log/index.js';
import { migrate, openDatabase } from '../../libs/metadata/index.js';
import { startServe, startWorker, type RunningWharf } from '../../services/cli/start.js';
import { startRoundRobin } from './round-robin.js';
import { clusterServices, type ClusterServices } from './services.js';

export interface TestCluster {
  /** The round-robin proxy in front of the nodes. */
  url: string;
  nodes: RunningWharf[];
  services: ClusterServices;
  /** Config every node of this cluster runs with (e.g. to start another process of it). */
  config: Config;
  close(): Promise<void>;
}

/** Overrides that make a node part of this test's cluster: its own database, bucket, stream and subjects. */
export function clusterConfig(services: ClusterServices, overrides: Partial<Config> = {}): Config {
  const run = randomBytes(4).toString('hex');
  return loadConfig({
    env: {},
    overrides: {
      'http.addr': '127.0.0.1:0',
      'log.level': 'silent',
      'database.url': services.databaseUrl,
      'storage.driver': 's3',
      'storage.s3.endpoint': services.s3.endpoint,
      'storage.s3.bucket': services.s3.bucket,
      'storage.s3.region': services.s3.region,
      'storage.s3.forcepathstyle': true,
      'storage.s3.accesskeyid': services.s3.accessKeyId,
      'storage.s3.secretaccesskey': services.s3.secretAccessKey,
      'nats.url': services.natsUrl,
      'nats.stream': `WHARF_TEST_${run}`,
      'nats.subjectprefix': `wharftest${run}.events`,
      ...overrides,
    },
  });
}

/** Migrates a fresh database, then starts `nodes` API nodes in this process behind a round-robin proxy. */
export async function startTestCluster(overrides: Partial<Config> = {}, nodes = 2): Promise<TestCluster | { skip: string }> {
  const services = await clusterServices();
  if ('skip' in services) return services;
  const config = clusterConfig(services, overrides);
  const logger = createLogger(process.env.WHARF_TEST_LOG_LEVEL ?? config['log.level']);
  const started: RunningWharf[] = [];
  let worker: { close(): Promise<void> } | undefined;
  try {
    const admin = openDatabase({ url: config['database.url'], poolSize: 1, uploadPoolSize: 1 });
    await migrate(admin.db).finally(() => admin.close());
    for (let i = 0; i < nodes; i++) started.push(await startServe(config, logger.child({ node: i })));
    // API nodes run no workers: one worker process-part keeps the read models (catalog, listings) current.
    worker = await startWorker(config, logger.child({ node: 'worker' }));
    const proxy = await startRoundRobin(started.map((n) => n.url));
    return {
      url: proxy.url,
      nodes: started,
      services,
      config,
      async close() {
        await proxy.close();
        for (const n of started) await n.close();
        await worker?.close();
        await services.close();
      },
    };
  } catch (err) {
    for (const n of started) await n.close().catch(() => {});
    await worker?.close().catch(() => {});
    await services.close();
    throw err;
  }
}
