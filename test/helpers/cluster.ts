import { randomBytes } from 'node:crypto';
import { loadConfig, type Config } from '../../libs/config/index.js';
import type { OutboxRelay } from '../../libs/events/index.js';
import { createLogger } from '../../libs/log/index.js';
import { startServe, startWorker, type RunningWharf } from '../../services/cli/start.js';
import { startRoundRobin } from './round-robin.js';
import { clusterServices, clusterSuite, migrateDatabase, type ClusterServices } from './services.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

export interface TestCluster {
  /** The round-robin proxy in front of the nodes. */
  url: string;
  nodes: RunningWharf[];
  /** The outbox relays: each node's and the worker's. */
  relays: OutboxRelay[];
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
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  try {
    await migrateDatabase(config['database.url']);
    for (let i = 0; i < nodes; i++) started.push(await startServe(config, logger.child({ node: i })));
    // API nodes run no workers: one worker process-part keeps the read models (catalog, listings) current.
    worker = await startWorker(config, logger.child({ node: 'worker' }));
    const proxy = await startRoundRobin(started.map((n) => n.url));
    return {
      url: proxy.url,
      nodes: started,
      relays: [...started.map((n) => n.relay), worker.relay],
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

/** What a suite of nodes behind a dependency proxy offers its tests; `skip` says why it cannot run. */
export interface ProxiedNodes {
  readonly skip: string | undefined;
  readonly services: ClusterServices;
  /** The TCP proxy between the nodes and the dependency: stall, stop, start, resume. */
  readonly proxy: TcpProxy;
  readonly nodes: RunningWharf[];
  readonly config: Config;
}

/**
 * `count` API nodes (started in a `before` hook) whose only way to S3 or to PostgreSQL runs
 * through a TCP proxy the tests can stall or cut; migrations run on the direct path. `teardown`
 * runs first in the `after` hook, before the nodes and the proxy close.
 */
export function nodesBehindProxy(options: { dependency: 's3' | 'database'; overrides?: Partial<Config>; count?: number; teardown?(): Promise<void> }): ProxiedNodes {
  let proxy: TcpProxy | undefined;
  let config: Config | undefined;
  const nodes: RunningWharf[] = [];
  const suite = clusterSuite({
    async setup(services) {
      const direct = new URL(options.dependency === 's3' ? services.s3.endpoint : services.databaseUrl);
      proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port || (options.dependency === 's3' ? 80 : 5432)) });
      const viaProxy = new URL(direct);
      viaProxy.host = `127.0.0.1:${proxy.port}`;
      const path = options.dependency === 's3' ? { 'storage.s3.endpoint': viaProxy.origin } : { 'database.url': viaProxy.toString() };
      config = clusterConfig(services, { ...path, ...options.overrides });
      await migrateDatabase(services.databaseUrl);
      const logger = createLogger(process.env.WHARF_TEST_LOG_LEVEL ?? 'silent');
      for (let i = 0; i < (options.count ?? 1); i++) nodes.push(await startServe(config, logger.child({ node: i })));
    },
    async teardown() {
      await options.teardown?.();
      proxy?.resume();
      for (const n of nodes) await n.close();
      await proxy?.close();
    },
  });
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} did not start: ${suite.skip ?? 'see the before hook'}`);
    return value;
  };
  return {
    get skip() {
      return suite.skip;
    },
    get services() {
      return started(suite.services, 'cluster services');
    },
    get proxy() {
      return started(proxy, 'the dependency proxy');
    },
    nodes,
    get config() {
      return started(config, 'the nodes');
    },
  };
}
