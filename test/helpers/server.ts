import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../libs/config/index.js';
import { createLogger, type Logger } from '../../libs/log/index.js';
import type { OutboxRelay } from '../../libs/events/index.js';
import { startWharf, type RunningWharf } from '../../services/cli/start.js';
import { makeAuthFixture, startCredentialProxy } from './auth.js';
import { startTestCluster } from './cluster.js';

export interface TestWharf extends RunningWharf {
  /** Base URL including any path prefix, e.g. http://127.0.0.1:41234 or http://127.0.0.1:41234/prefix */
  base: string;
  /** Embedded mode: the data directory (blobs under blobs/). Cluster mode: undefined, blobs are in S3. */
  dataDir: string | undefined;
  mode: 'embedded' | 'cluster';
  /** Every node's outbox relay (embedded: the one): a suite that drives its own relays stops these. */
  relays: OutboxRelay[];
  /** Cluster mode: the PostgreSQL every node uses; embedded: undefined (the CLI finds it through dataDir). */
  databaseUrl: string | undefined;
}

/** Whether the spec suites run with access control on (test/run.ts sets WHARF_TEST_AUTH): Basic (htpasswd) or Bearer (built-in issuer). */
export function testAuth(): 'basic' | 'bearer' | undefined {
  const auth = process.env.WHARF_TEST_AUTH;
  return auth === 'basic' || auth === 'bearer' ? auth : undefined;
}

/**
 * Whether requests reach the registry through a test proxy (cluster mode's round robin, or the
 * credential proxy of the auth runs): a proxy parses HTTP itself, so tests of malformed or
 * early-answered requests cannot see the registry's own answer.
 */
export function behindTestProxy(): boolean {
  return testMode() === 'cluster' || testAuth() !== undefined;
}

/** Which mode the suite runs in: test/run.ts runs the spec suites once per mode. */
export function testMode(): 'embedded' | 'cluster' {
  return process.env.WHARF_TEST_MODE === 'cluster' ? 'cluster' : 'embedded';
}

/**
 * Starts a registry for one test file on a free loopback port. Embedded mode: its own data
 * directory and embedded PostgreSQL. Cluster mode (WHARF_TEST_MODE=cluster): two API nodes on
 * PostgreSQL, S3 and NATS behind a proxy that alternates requests between them; the returned
 * handles (database, bus, relay, registry) are the first node's.
 */
export async function startTestWharf(overrides: Partial<Config> = {}, options: { logger?: Logger } = {}): Promise<TestWharf> {
  if (testMode() === 'cluster') {
    const cluster = await startTestCluster(overrides);
    if ('skip' in cluster) throw new Error(`cluster mode unavailable: ${cluster.skip}`);
    const first = cluster.nodes[0]!;
    return {
      ...first,
      url: cluster.url,
      base: `${cluster.url}${cluster.config['http.prefix']}`,
      dataDir: undefined,
      mode: 'cluster',
      relays: cluster.relays,
      databaseUrl: cluster.config['database.url'],
      close: () => cluster.close(),
    };
  }
  const auth = testAuth();
  if (auth) return startWithAuth(auth, overrides, options);
  return startEmbedded(overrides, options);
}

async function startEmbedded(overrides: Partial<Config>, options: { logger?: Logger }): Promise<TestWharf> {
  const dataDir = await mkdtemp(join(tmpdir(), 'wharf-test-'));
  await chmod(dataDir, 0o755); // as root, the embedded PostgreSQL runs as "postgres" and must enter it
  const config = loadConfig({
    env: {},
    overrides: { 'http.addr': '127.0.0.1:0', 'data.dir': dataDir, 'log.level': 'silent', ...overrides },
  });
  const wharf = await startWharf(config, options.logger ?? createLogger(process.env.WHARF_TEST_LOG_LEVEL ?? config['log.level']));
  return {
    ...wharf,
    base: `${wharf.url}${config['http.prefix']}`,
    dataDir,
    mode: 'embedded',
    relays: [wharf.relay],
    databaseUrl: undefined,
    close: async () => {
      await wharf.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * An embedded registry with access control on, behind a proxy that adds a user's credentials to
 * every request: the suites see an open registry, the registry checks every request.
 */
async function startWithAuth(auth: 'basic' | 'bearer', overrides: Partial<Config>, options: { logger?: Logger }): Promise<TestWharf> {
  const credentials = { user: 'spec', password: 'spec-suite-password' };
  const fixture = await makeAuthFixture({ [credentials.user]: credentials.password });
  const authConfig: Partial<Config> =
    auth === 'basic'
      ? { 'auth.mode': 'htpasswd', 'auth.htpasswd.path': fixture.htpasswdPath }
      : { 'auth.mode': 'token', 'auth.htpasswd.path': fixture.htpasswdPath, 'auth.token.signingkey': fixture.signingKeyPath };
  const wharf = await startEmbedded({ ...authConfig, ...overrides }, options);
  const prefix = wharf.base.slice(wharf.url.length);
  const proxy = await startCredentialProxy(wharf.url, prefix, auth === 'basic' ? 'basic' : 'bearer', credentials);
  return {
    ...wharf,
    url: proxy.url,
    base: `${proxy.url}${prefix}`,
    close: async () => {
      await proxy.close();
      await wharf.close();
      await fixture.close();
    },
  };
}
