import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { freePort } from './processes.js';

/** Debian's docker-registry: CNCF Distribution 2.8.2. */
export const DISTRIBUTION = process.env.WHARF_TEST_DISTRIBUTION ?? '/usr/bin/docker-registry';

export interface Distribution {
  url: string;
  port: number;
  /** Stops the process (its storage stays until close()). */
  stop(): Promise<void>;
  /** Starts it again on the same port and storage. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface DistributionOptions {
  /** Users for htpasswd (Basic) auth; none: an open registry. */
  users?: Record<string, string>;
  /** Distribution's own pull-through mode: proxy.remoteurl. */
  remoteUrl?: string;
  port?: number;
}

/** Runs Distribution with a config file on a loopback port and its storage in a temporary directory. */
export async function startDistribution(options: DistributionOptions = {}): Promise<Distribution> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-distribution-'));
  const port = options.port ?? (await freePort());
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (options.users) {
    await writeFile(
      join(dir, 'htpasswd'),
      Object.entries(options.users)
        .map(([u, p]) => `${u}:${bcrypt.hashSync(p, 5)}`)
        .join('\n') + '\n',
    );
    lines.push('auth:', '  htpasswd:', '    realm: distribution', `    path: ${join(dir, 'htpasswd')}`);
  }
  if (options.remoteUrl) lines.push('proxy:', `  remoteurl: ${options.remoteUrl}`);
  await writeFile(join(dir, 'config.yml'), lines.join('\n') + '\n');
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let stderr = '';
  const start = async () => {
    const c = spawn(DISTRIBUTION, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    child = c;
    c.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    for (;;) {
      if (c.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
      const answered = await fetch(`${url}/v2/`).then(
        (r) => r.status === 200 || r.status === 401,
        () => false,
      );
      if (answered) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    url,
    port,
    stop,
    start,
    close: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
