#!/usr/bin/env node
import { ConfigError, loadConfig, type Config } from '../../libs/config/index.js';
import { createLogger } from '../../libs/log/index.js';
import { migrate, openDatabase } from '../../libs/metadata/index.js';
import { runReindex } from './reindex.js';
import { startServe, startWharf, startWorker } from './start.js';

const USAGE = `usage: wharf <command> [--config FILE]

commands:
  all       the API with every worker in one process, migrating first (what npm start runs;
            embedded storage unless database.url, storage.driver and nats.url say otherwise)
  serve     one stateless API node of a cluster (needs database.url; run migrate first)
  worker    the event workers of a cluster: outbox relay, catalog-indexer, manifest-lister
            (needs database.url; worker.roles picks a subset)
  migrate   apply database migrations to database.url and exit
  reindex   rebuild the listing read models (catalog, namespace tree, manifest listing) from
            the source tables and exit; embedded mode: only while Wharf is stopped

configuration: a YAML file (--config or WHARF_CONFIG) and WHARF_* variables; see docs/configuration.md`;

function parseArgs(argv: string[]): { command: string | undefined; configFile: string | undefined } {
  let command: string | undefined;
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--config') configFile = argv[++i];
    else if (arg.startsWith('--config=')) configFile = arg.slice('--config='.length);
    else if (arg === '-h' || arg === '--help') command = 'help';
    else if (command === undefined) command = arg;
    else throw new ConfigError(`unexpected argument ${arg}`);
  }
  return { command, configFile };
}

/** Runs until SIGINT/SIGTERM, then closes cleanly. */
async function runUntilSignal(config: Config, role: string, start: (logger: ReturnType<typeof createLogger>) => Promise<{ close(): Promise<void>; url?: string }>): Promise<void> {
  const logger = createLogger(config['log.level'], { role });
  const running = await start(logger);
  if (running.url) logger.info({ url: `${running.url}${config['http.prefix']}/v2/` }, `wharf ${role} is serving`);
  else logger.info(`wharf ${role} is running`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await running.close();
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
  const { command, configFile } = parseArgs(process.argv.slice(2));
  if (command === undefined || command === 'help') {
    console.log(USAGE);
    process.exitCode = command === undefined ? 2 : 0;
    return;
  }
  const config = loadConfig({ file: configFile });
  switch (command) {
    case 'all':
      return runUntilSignal(config, 'all', (logger) => startWharf(config, logger));
    case 'serve':
      needDatabase(config, 'serve');
      return runUntilSignal(config, 'serve', (logger) => startServe(config, logger));
    case 'worker':
      needDatabase(config, 'worker');
      return runUntilSignal(config, 'worker', (logger) => startWorker(config, logger));
    case 'migrate':
      return runMigrate(config);
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
