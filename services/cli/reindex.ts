import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type Config } from '../../libs/config/index.js';
import { migrate, openDatabase, pendingMigrations, startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../libs/metadata/index.js';
import { rebuildReadModels } from '../../libs/registry/index.js';

/** Whether a PostgreSQL server still runs on the embedded data directory (a running `wharf all`). */
function embeddedServerRunning(dataDir: string): number | undefined {
  const pidFile = join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/**
 * `wharf reindex`: rebuilds the catalog, namespace tree and manifest listing from the source
 * tables in one transaction. On a cluster it runs against database.url while the registry
 * serves; in embedded mode the registry must be stopped (its PostgreSQL holds the data directory).
 */
export async function runReindex(config: Config): Promise<void> {
  let url = config['database.url'];
  let embedded: EmbeddedPostgresHandle | undefined;
  if (url === '') {
    const dir = join(config['data.dir'], 'postgres');
    const pid = embeddedServerRunning(dir);
    if (pid !== undefined) {
      throw new ConfigError(`the embedded PostgreSQL of a running Wharf (pid ${pid}) holds ${dir}: stop Wharf first, or set database.url`);
    }
    embedded = await startEmbeddedPostgres(dir);
    url = embedded.url;
  }
  const database = openDatabase({ url, poolSize: 1, uploadPoolSize: 1 });
  try {
    if (embedded) await migrate(database.db);
    else {
      const pending = await pendingMigrations(database.db);
      if (pending.length > 0) throw new ConfigError(`database schema is behind (pending: ${pending.join(', ')}); run \`wharf migrate\` first`);
    }
    const started = Date.now();
    const counts = await rebuildReadModels(database.db);
    console.log(
      `read models rebuilt in ${((Date.now() - started) / 1000).toFixed(1)} s: ${counts.repositories} repositories with content, ` +
        `${counts.namespaces} namespace entries, ${counts.manifests} manifests`,
    );
  } finally {
    await database.close();
    await embedded?.stop();
  }
}
