import { ConfigError, type Config } from '../../libs/config/index.js';
import { migrate, openDatabase, pendingMigrations, type EmbeddedPostgresHandle } from '../../libs/metadata/index.js';
import { rebuildReadModels } from '../../libs/registry/index.js';
import { startLockedEmbeddedPostgres } from './parts.js';

/**
 * `wharf reindex`: rebuilds the catalog, namespace tree and manifest listing from the source
 * tables in one transaction. On a cluster it runs against database.url while the registry
 * serves; in embedded mode the registry must be stopped (its PostgreSQL holds the data directory).
 */
export async function runReindex(config: Config): Promise<void> {
  let url = config['database.url'];
  let embedded: EmbeddedPostgresHandle | undefined;
  if (url === '') {
    // The data directory's lock refuses while a Wharf runs on it (its PostgreSQL holds the directory).
    embedded = await startLockedEmbeddedPostgres(config);
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
