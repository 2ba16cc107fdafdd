import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { ConfigError, splitAddr, type Config } from '../../libs/config/index.js';
import { selectRoles } from '../worker/index.js';
import { authFromConfig, gcPolicyFromConfig } from './wiring.js';

/** The environment variable of a key, for messages that say how to fix it. */
const ADDR_ENV: Record<string, string> = { 'http.addr': 'WHARF_HTTP_ADDR', 'worker.httpaddr': 'WHARF_WORKER_HTTPADDR' };

function checkAddr(key: 'http.addr' | 'worker.httpaddr', value: string): { host: string; port: number } {
  const colon = value.lastIndexOf(':');
  const { host, port } = splitAddr(value);
  if (colon === -1 || !/^\d+$/.test(value.slice(colon + 1)) || port > 65535) {
    throw new ConfigError(`${key} ${JSON.stringify(value)}: expected host:port with a port from 0 to 65535 (${ADDR_ENV[key]})`);
  }
  return { host, port };
}

/** Binds the address and lets it go: a port in use or an address this machine lacks is said now, not after PostgreSQL started. */
function probeListen(key: string, value: string, host: string, port: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'EADDRINUSE'
          ? 'the port is in use by another process; stop it or choose another port'
          : err.code === 'EADDRNOTAVAIL'
            ? 'no interface of this machine has that address; use one of its addresses, 127.0.0.1 or 0.0.0.0'
            : err.code === 'EACCES'
              ? 'binding this port needs privileges; choose a port above 1023'
              : err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN'
                ? 'the host name does not resolve'
                : err.message;
      reject(new ConfigError(`${key} ${value}: ${why} (${ADDR_ENV[key]})`));
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolvePromise()));
  });
}

function checkTls(config: Config): void {
  const cert = config['http.tls.certificate'];
  const key = config['http.tls.key'];
  if (!cert && !key) return;
  if (!cert || !key) throw new ConfigError('http.tls.certificate and http.tls.key go together: set both, or neither for plain HTTP');
  const read = (path: string, name: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`${name}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const certPem = read(cert, 'http.tls.certificate');
  const keyPem = read(key, 'http.tls.key');
  try {
    createSecureContext({ cert: certPem, key: keyPem });
  } catch (err) {
    throw new ConfigError(`http.tls.certificate / http.tls.key: not a PEM certificate and its private key (${(err as Error).message})`);
  }
}

/** As root the embedded PostgreSQL runs as "postgres", which must be able to enter every directory above data.dir. */
function checkDataDirReachable(config: Config): void {
  if (config['database.url'] !== '' || process.getuid?.() !== 0) return;
  let dir = resolve(config['data.dir']);
  // The directories that exist; data.dir itself and missing parents are created with mode 755.
  while (true) {
    try {
      statSync(dir);
      break;
    } catch {
      const parent = dirname(dir);
      if (parent === dir) return;
      dir = parent;
    }
  }
  for (let d = dir; ; d = dirname(d)) {
    const mode = statSync(d).mode;
    if ((mode & 0o001) === 0) {
      throw new ConfigError(
        `data.dir ${resolve(config['data.dir'])}: ${d} is mode ${(mode & 0o777).toString(8)}, and as root the embedded PostgreSQL runs as "postgres", which cannot enter it; chmod o+x ${d}, or choose a data.dir (WHARF_DATA_DIR) outside it`,
      );
    }
    if (dirname(d) === d) break;
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new ConfigError(`data.dir ${resolve(config['data.dir'])}: ${dir} is not writable`);
  }
}

/**
 * Everything a start can check without starting anything: addresses, worker roles, TLS and auth
 * files, the data directory, policies. Runs before the embedded PostgreSQL is created or
 * migrations run, so a mistake is one `wharf: ...` line and nothing else happened.
 */
export async function preflight(config: Config, command: 'all' | 'serve' | 'worker'): Promise<void> {
  const listens: Array<'http.addr' | 'worker.httpaddr'> = command === 'worker' ? [] : ['http.addr'];
  if (command === 'worker' && config['worker.httpaddr'] !== '') listens.push('worker.httpaddr');
  const addrs = listens.map((key) => ({ key, value: config[key], ...checkAddr(key, config[key]) }));
  if (command !== 'serve') {
    try {
      selectRoles(config['worker.roles']);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }
  gcPolicyFromConfig(config);
  if (command !== 'worker') {
    checkTls(config);
    authFromConfig(config);
  }
  checkDataDirReachable(config);
  for (const a of addrs) await probeListen(a.key, a.value, a.host, a.port);
}
