/**
 * `npm run cluster -- --nodes N --port P [--config F]`: a local cluster without Docker.
 * Migrates, starts N API nodes on ports P..P+N-1 and one worker, all on WHARF_DATABASE_URL and
 * WHARF_NATS_URL; when no S3 endpoint is configured it runs s3rver itself (objects under
 * data.dir/s3rver). Prints one line per node; Ctrl-C stops everything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, configToEnv, loadConfig, splitAddr } from '../../libs/config/index.js';
import { migrate, openDatabase } from '../../libs/metadata/index.js';
import { startLocalS3, type LocalS3 } from './local-s3.js';
import { httpStatus } from './http-status.js';

/** The children run what this process runs: the compiled main.js beside cluster.js, or main.ts through tsx. */
function mainCommand(): string[] {
  // Same V8 flag as npm start and the image: caps the young generation's growth under load (RSS).
  if (import.meta.url.endsWith('.js')) return ['--max-semi-space-size=4', fileURLToPath(new URL('./main.js', import.meta.url))];
  return ['--import', 'tsx', fileURLToPath(new URL('./main.ts', import.meta.url))];
}

function parseArgs(argv: string[]): { nodes: number; port: number; configFile?: string } {
  let nodes = 2;
  let port = 5100;
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new ConfigError(`${arg} needs a value`);
      return v;
    };
    if (arg === '--nodes') nodes = Number(value());
    else if (arg === '--port') port = Number(value());
    else if (arg === '--config') configFile = value();
    else throw new ConfigError(`unknown argument ${arg}; usage: npm run cluster -- --nodes N --port P [--config F]`);
  }
  if (!Number.isInteger(nodes) || nodes < 1) throw new ConfigError('--nodes must be a positive integer');
  if (!Number.isInteger(port) || port < 1 || port + nodes > 65536) throw new ConfigError('--port must be a valid port');
  return { nodes, port, configFile };
}

async function waitForNode(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`node at ${url} exited with code ${child.exitCode}`);
    try {
      if ((await httpStatus(`${url}/`)) === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`node at ${url} did not answer within 60 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const config = loadConfig({ file: args.configFile });
  const missing = [config['database.url'] === '' ? 'WHARF_DATABASE_URL (database.url)' : undefined, config['nats.url'] === '' ? 'WHARF_NATS_URL (nats.url)' : undefined].filter(
    Boolean,
  );
  if (missing.length) throw new ConfigError(`a cluster needs ${missing.join(' and ')}`);

  const children: ChildProcess[] = [];
  let s3: LocalS3 | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    await s3?.close();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    const env: NodeJS.ProcessEnv = { ...process.env, ...configToEnv(config), WHARF_STORAGE_DRIVER: 's3' };
    if (config['storage.s3.endpoint'] === '') {
      s3 = await startLocalS3({ bucket: config['storage.s3.bucket'], dataDir: join(config['data.dir'], 's3rver') });
      Object.assign(env, {
        WHARF_S3_ENDPOINT: s3.endpoint,
        WHARF_S3_FORCEPATHSTYLE: 'true',
        WHARF_S3_ACCESSKEYID: s3.accessKeyId,
        WHARF_S3_SECRETACCESSKEY: s3.secretAccessKey,
      });
      console.log(`s3rver: ${s3.endpoint} bucket ${s3.bucket} (objects under ${join(config['data.dir'], 's3rver')})`);
    }
    const admin = openDatabase({ url: config['database.url'], poolSize: 1, uploadPoolSize: 1 });
    const applied = await migrate(admin.db).finally(() => admin.close());
    console.log(applied.length ? `migrations applied: ${applied.join(', ')}` : 'database schema is current');

    const host = splitAddr(config['http.addr']).host;
    const run = (role: string, extra: NodeJS.ProcessEnv) => {
      const child = spawn(process.execPath, [...mainCommand(), role], {
        env: { ...env, ...extra },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      child.on('exit', (code, signal) => {
        if (!stopping) console.error(`${role} ${extra.WHARF_HTTP_ADDR ?? ''} exited (${code ?? signal})`);
      });
      children.push(child);
      return child;
    };
    const urls: string[] = [];
    for (let i = 0; i < args.nodes; i++) {
      const addr = `${host}:${args.port + i}`;
      const child = run('serve', { WHARF_HTTP_ADDR: addr, WHARF_EVENTS_INSTANCEID: `node-${i}` });
      urls.push(`http://${addr}${config['http.prefix']}/v2`);
      await waitForNode(urls[i]!, child);
    }
    run('worker', { WHARF_EVENTS_INSTANCEID: 'worker-0' });
    for (const [i, url] of urls.entries()) console.log(`node ${i}: ${url}/`);
    console.log('worker: running (outbox relay); Ctrl-C stops the cluster');
  } catch (err) {
    console.error(`cluster: ${(err as Error).message}`);
    await stop(1);
  }
}

main().catch((err) => {
  console.error(`cluster: ${(err as Error).message}`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
