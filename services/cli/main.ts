#!/usr/bin/env node
import { ConfigError, loadConfig, type Config } from '../../libs/config/index.js';
import { createLogger } from '../../libs/log/index.js';
import { migrate, openDatabase } from '../../libs/metadata/index.js';
import { startWharf } from './start.js';

const USAGE = `usage: wharf <command> [--config FILE]

commands:
  all       embedded mode: the API with every worker in one process (what npm start runs)
  migrate   apply database migrations to database.url and exit

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

async function runAll(config: Config): Promise<void> {
  const logger = createLogger(config['log.level']);
  const wharf = await startWharf(config, logger);
  logger.info({ url: `${wharf.url}${config['http.prefix']}/v2/`, data: config['data.dir'] }, 'wharf is serving');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await wharf.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

async function runMigrate(config: Config): Promise<void> {
  if (config['database.url'] === '') throw new ConfigError('migrate needs database.url (WHARF_DATABASE_URL); embedded mode migrates at start-up');
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
      return runAll(config);
    case 'migrate':
      return runMigrate(config);
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
