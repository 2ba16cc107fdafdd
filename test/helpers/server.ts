import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../libs/config/index.js';
import { createLogger } from '../../libs/log/index.js';
import { startWharf, type RunningWharf } from '../../services/cli/start.js';

export interface TestWharf extends RunningWharf {
  /** Base URL including any path prefix, e.g. http://127.0.0.1:41234 or http://127.0.0.1:41234/prefix */
  base: string;
  dataDir: string;
}

/**
 * Starts an embedded-mode Wharf (own data directory, own embedded PostgreSQL) on a free loopback
 * port. `close()` stops it and removes its data.
 */
export async function startTestWharf(overrides: Partial<Config> = {}): Promise<TestWharf> {
  const dataDir = await mkdtemp(join(tmpdir(), 'wharf-test-'));
  await chmod(dataDir, 0o755); // as root, the embedded PostgreSQL runs as "postgres" and must enter it
  const config = loadConfig({
    env: {},
    overrides: { 'http.addr': '127.0.0.1:0', 'data.dir': dataDir, 'log.level': 'silent', ...overrides },
  });
  const wharf = await startWharf(config, createLogger(process.env.WHARF_TEST_LOG_LEVEL ?? config['log.level']));
  return {
    ...wharf,
    base: `${wharf.url}${config['http.prefix']}`,
    dataDir,
    close: async () => {
      await wharf.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
