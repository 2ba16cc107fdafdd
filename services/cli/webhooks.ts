import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, type Config } from '../../libs/config/index.js';
import { openDatabase, webhooks } from '../../libs/metadata/index.js';

export const WEBHOOKS_USAGE = 'wharf webhooks redrive [--endpoint NAME] [--event ID]';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `wharf webhooks redrive`: dead letters (all, one endpoint's, or one event's) back to the queue. */
export async function runWebhooks(config: Config, args: string[]): Promise<void> {
  const [verb, ...rest] = args;
  if (verb !== 'redrive') throw new ConfigError(`usage: ${WEBHOOKS_USAGE}`);
  const filter: { endpoint?: string; eventId?: string } = {};
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = inline ?? rest[++i];
    if (value === undefined || value === '') throw new ConfigError(`${flag} needs a value\nusage: ${WEBHOOKS_USAGE}`);
    if (flag === '--endpoint') filter.endpoint = value;
    else if (flag === '--event') {
      if (!UUID.test(value)) throw new ConfigError(`--event must be an event id (a UUID), got ${JSON.stringify(value)}`);
      filter.eventId = value.toLowerCase();
    } else throw new ConfigError(`unknown option ${flag}\nusage: ${WEBHOOKS_USAGE}`);
  }
  const url = config['database.url'] || (await runningEmbeddedUrl(config['data.dir']));
  const database = openDatabase({ url, poolSize: 1, uploadPoolSize: 1 });
  try {
    const moved = await webhooks.redrive(database.db, filter);
    console.log(`redriven: ${moved} dead-lettered deliver${moved === 1 ? 'y' : 'ies'} back to pending`);
  } finally {
    await database.close();
  }
}

/** Embedded mode: the URL of the PostgreSQL that a running `wharf all` started under data.dir. */
async function runningEmbeddedUrl(dataDir: string): Promise<string> {
  const pgDir = join(dataDir, 'postgres');
  try {
    // postmaster.pid: line 4 is the port the running server listens on.
    const port = Number((await readFile(join(pgDir, 'postmaster.pid'), 'utf8')).split('\n')[3]);
    const { user, password } = JSON.parse(await readFile(`${pgDir}.credentials.json`, 'utf8')) as { user: string; password: string };
    if (!Number.isInteger(port) || port <= 0) throw new Error('no port');
    return `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/wharf`;
  } catch {
    throw new ConfigError(`webhooks redrive needs database.url (WHARF_DATABASE_URL), or a running embedded Wharf under data.dir (${dataDir})`);
  }
}
