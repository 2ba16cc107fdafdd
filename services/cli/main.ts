#!/usr/bin/env node
import { ConfigError, loadConfig, type Config } from '../../libs/config/index.js';
import { createLogger } from '../../libs/log/index.js';
import { migrate, openDatabase } from '../../libs/metadata/index.js';
import { runFsck, runReconcile } from './admin.js';
import { runKeys } from './keys.js';
import { runReindex } from './reindex.js';
import { startServe, startWharf, startWorker } from './start.js';
import { runWebhooks } from './webhooks.js';
import { preflight } from './preflight.js';

const USAGE = `usage: wharf <command> [--config FILE]

commands:
  all       the API with every worker in one process, migrating first (what npm start runs;
            embedded storage unless database.url, storage.driver and nats.url say otherwise)
  serve     one stateless API node of a cluster (needs database.url; run migrate first)
  worker    the workers of a cluster: outbox relay and the worker roles (webhooks: docs/events.md;
            catalog-indexer and manifest-lister: docs/api.md; gc: docs/gc.md); needs
            database.url; worker.roles picks a subset; /healthz, /readyz and /metrics on
            worker.httpaddr when set
  migrate   apply database migrations to database.url and exit
  reindex   rebuild the listing read models (catalog, namespace tree, manifest listing) from
            the source tables and exit; embedded mode: only while Wharf is stopped
  reconcile --dry-run | --apply [--min-age SECONDS]
            compare storage with metadata: list objects no metadata names (orphans, older than
            --min-age, default 3600), blobs whose object is missing, and manifests naming a
            blob that is not stored (dangling references); --apply deletes the
            orphans and forgets the missing blobs so clients push them again. Exit 1 when a
            discrepancy is left. Safe while the registry runs. \`wharf gc\` is the old name
            (the online collector is the gc worker role; this is an offline-style check)
  webhooks redrive [--endpoint NAME] [--event ID]
            move dead-lettered webhook deliveries back to pending (database.url, or the
            embedded PostgreSQL of a running wharf all on the same data.dir)
  fsck [--sample N]
            re-read every blob (or N picked at random) and check its digest and size; exit 1
            on a corrupt or unreadable blob

  keys DIR [USER]
            one-time token auth set-up: write DIR/signing-key.pem (the built-in issuer's key)
            and DIR/htpasswd with USER (default admin) and a random password, printed once;
            never overwrites either file (docs/auth.md)

configuration: a YAML file (--config or WHARF_CONFIG) and WHARF_* variables; see docs/configuration.md`;

/** Commands that take arguments of their own after the command name. */
const WITH_ARGS = new Set(['reconcile', 'gc', 'fsck', 'webhooks', 'keys']);

function parseArgs(argv: string[]): { command: string | undefined; configFile: string | undefined; rest: string[] } {
  let command: string | undefined;
  let configFile: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--config') configFile = argv[++i];
    else if (arg.startsWith('--config=')) configFile = arg.slice('--config='.length);
    else if (arg === '-h' || arg === '--help') command = 'help';
    else if (command === undefined) command = arg;
    else if (WITH_ARGS.has(command)) rest.push(arg);
    else throw new ConfigError(`unexpected argument ${arg}`);
  }
  return { command, configFile, rest };
}

/** Runs until SIGINT/SIGTERM, then closes cleanly. */
async function runUntilSignal(config: Config, role: string, start: (logger: ReturnType<typeof createLogger>) => Promise<{ close(): Promise<void>; url?: string }>): Promise<void> {
  const logger = createLogger(config['log.level'], { role });
  const running = await start(logger);
  if (running.url && role !== 'worker') logger.info({ url: `${running.url}${config['http.prefix']}/v2/` }, `wharf ${role} is serving`);
  else logger.info({ health: running.url ? `${running.url}/readyz` : undefined }, `wharf ${role} is running`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, timeoutSeconds: config['http.shutdowntimeout'] }, 'shutting down: finishing requests in flight');
    // Requests get http.shutdowntimeout; relay, workers and pools a little more. Past that, leave anyway.
    const hard = setTimeout(
      () => {
        logger.error('shutdown did not finish in time; exiting');
        process.exit(1);
      },
      (config['http.shutdowntimeout'] + 15) * 1000,
    );
    hard.unref();
    try {
      await running.close();
    } catch (err) {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    }
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

function needDatabase(config: Config, command: string): void {
  if (config['database.url'] === '') throw new ConfigError(`${command} needs database.url (WHARF_DATABASE_URL); embedded mode is \`wharf all\``);
}

async function runMigrate(config: Config): Promise<void> {
  needDatabase(config, 'migrate');
  const database = openDatabase({ url: config['database.url'], poolSize: 1, uploadPoolSize: 1 });
  try {
    const applied = await migrate(database.db);
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
  } finally {
    await database.close();
  }
}

async function main(): Promise<void> {
  const { command, configFile, rest } = parseArgs(process.argv.slice(2));
  if (command === undefined || command === 'help') {
    console.log(USAGE);
    process.exitCode = command === undefined ? 2 : 0;
    return;
  }
  if (command === 'keys') return runKeys(rest);
  const config = loadConfig({ file: configFile });
  switch (command) {
    case 'all':
      await preflight(config, 'all');
      return runUntilSignal(config, 'all', (logger) => startWharf(config, logger));
    case 'serve':
      needDatabase(config, 'serve');
      await preflight(config, 'serve');
      return runUntilSignal(config, 'serve', (logger) => startServe(config, logger));
    case 'worker':
      needDatabase(config, 'worker');
      await preflight(config, 'worker');
      return runUntilSignal(config, 'worker', (logger) => startWorker(config, logger));
    case 'migrate':
      return runMigrate(config);
    case 'reconcile':
    case 'gc': // the old name, kept so scripts keep working
      process.exitCode = await runReconcile(config, rest);
      return;
    case 'fsck':
      process.exitCode = await runFsck(config, rest);
      return;
    case 'webhooks':
      return runWebhooks(config, rest);
    case 'reindex':
      return runReindex(config);
    default:
      throw new ConfigError(`unknown command ${command}\n${USAGE}`);
  }
}

main().catch((err) => {
  if (err instanceof ConfigError) {
    console.error(`wharf: ${err.message}`);
    process.exit(2);
  }
  console.error(err);
  process.exit(1);
});
