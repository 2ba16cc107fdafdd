import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { descendants, startTimeOf } from './rss.js';
import { WHARF_MAIN, WHARF_NODE_FLAGS } from './wharf-main.js';

export interface RunningRegistry {
  name: string;
  base: string;
  pid: number;
  dir: string;
  /** Its stdout and stderr so far. */
  logFile: string;
  /** Last lines of the registry's stdout/stderr, for error reports. */
  logTail(): Promise<string>;
  stop(): Promise<void>;
}

/** The checkout Wharf is run from: this repository, or WHARF_BENCH_ROOT (e.g. a clean clone of another commit). */
export const WHARF_ROOT = resolve(process.env.WHARF_BENCH_ROOT ?? join(import.meta.dirname, '..'));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitReady(base: string, child: ChildProcess, timeoutMs: number, logTail: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${base}: exited (${child.exitCode ?? child.signalCode}) before it was ready\n${await logTail()}`);
    }
    try {
      const res = await fetch(`${base}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      // 401: up, with access control on.
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${base}/v2/ did not answer 200 within ${timeoutMs} ms\n${await logTail()}`);
}

/** Spawns a registry process with its output in <dir>/registry.log, waits for GET /v2/ = 200, and knows how to stop it and its whole process tree. */
export async function launch(
  name: RunningRegistry['name'],
  dir: string,
  base: string,
  command: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; readyTimeoutMs: number },
): Promise<RunningRegistry> {
  const logFile = join(dir, 'registry.log');
  let stopping: Promise<void> | undefined;
  const log = createWriteStream(logFile);
  const child = spawn(command, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('exit', (code, signal) => {
    if (!stopping) console.error(`[bench] ${name} (pid ${child.pid}) exited on its own: ${signal ?? `exit code ${code}`}; its log: ${logFile}`);
  });
  const logTail = async () => {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    return text.split('\n').slice(-30).join('\n');
  };
  const pid = child.pid!;
  // Descendants seen so far (Wharf's embedded PostgreSQL), each with its start time, so that they can
  // be stopped even once the parent is gone and they are re-parented, and so that a pid reused by an
  // unrelated process is never signalled.
  type Known = { pid: number; start: string | undefined };
  const known = new Map<number, Known>();
  const remember = () => {
    for (const p of descendants(pid)) if (!known.has(p)) known.set(p, { pid: p, start: startTimeOf(p) });
  };
  const watch = setInterval(remember, 1000);
  watch.unref();

  const stop = () =>
    (stopping ??= (async () => {
      clearInterval(watch);
      remember();
      const tree = [...known.values()];
      const ours = (t: Known) => t.start !== undefined && startTimeOf(t.pid) === t.start;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(15_000)]);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await Promise.race([exited, sleep(5_000)]);
        }
      }
      // A graceful Wharf stops its PostgreSQL itself; after a SIGKILL the postmaster would be left over.
      for (let i = 0; i < 50 && tree.some(ours); i++) await sleep(100);
      for (const t of tree) if (ours(t)) process.kill(t.pid, 'SIGKILL');
      log.end();
    })());

  const running: RunningRegistry = { name, base, pid, dir, logFile, logTail, stop };
  try {
    await waitReady(base, child, opts.readyTimeoutMs, logTail);
  } catch (err) {
    await stop();
    throw err;
  }
  return running;
}

/**
 * CNCF Distribution (Debian's docker-registry 2.8.2) with filesystem storage in a fresh temp dir,
 * or with the storage driver lines given (indented under `storage:`, e.g. an `s3:` block).
 */
export async function startDistribution(port: number, storage?: string[]): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-bench-distribution-'));
  const config = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    ...(storage ?? ['  filesystem:', `    rootdirectory: ${join(dir, 'data')}`]),
    '  cache:',
    '    blobdescriptor: inmemory',
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '',
  ].join('\n');
  const configFile = join(dir, 'config.yml');
  await writeFile(configFile, config);
  try {
    // Its S3 driver (aws-sdk-go) panics on AWS_CA_BUNDLE with a custom transport; an http:// endpoint needs none.
    const { AWS_CA_BUNDLE: _bundle, ...env } = process.env;
    return await launch('Distribution', dir, `http://127.0.0.1:${port}`, '/usr/bin/docker-registry', ['serve', configFile], { env, readyTimeoutMs: 15_000 });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Wharf in embedded mode (`wharf all`, with its own PostgreSQL) as a child process, data in a fresh temp dir. */
export async function startWharfProcess(port: number, extraEnv: Record<string, string> = {}, nodeFlags: string[] = []): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-bench-wharf-'));
  // Run as root, the embedded PostgreSQL runs as user postgres and must be able to enter the data dir.
  await chmod(dir, 0o755);
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_')));
  const env = { ...inherited, WHARF_HTTP_ADDR: `127.0.0.1:${port}`, WHARF_DATA_DIR: join(dir, 'data'), WHARF_LOG_LEVEL: 'warn', ...extraEnv };
  try {
    return await launch('Wharf', dir, `http://127.0.0.1:${port}`, process.execPath, [...WHARF_NODE_FLAGS, ...nodeFlags, WHARF_MAIN, 'all'], {
      cwd: WHARF_ROOT,
      env,
      readyTimeoutMs: 120_000, // first start runs initdb
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A Wharf API node (`wharf serve`, cluster mode) on `port`, configured by `env` (WHARF_* variables). */
export async function startWharfNode(name: string, port: number, env: Record<string, string>): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-bench-node-'));
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_')));
  try {
    return await launch(name, dir, `http://127.0.0.1:${port}`, process.execPath, [...WHARF_NODE_FLAGS, WHARF_MAIN, 'serve'], {
      cwd: WHARF_ROOT,
      env: { ...inherited, ...env, WHARF_HTTP_ADDR: `127.0.0.1:${port}`, WHARF_LOG_LEVEL: 'warn' },
      readyTimeoutMs: 60_000,
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
