/**
 * Podman for the deploy suites: the settings of deploy/podman/env.sh, the Docker API socket that
 * docker-compose talks to (`podman system service`), and a health ticker. Podman schedules
 * healthchecks with systemd timers; where systemd is not PID 1 (these machines) nothing runs
 * them, so the ticker does what the timer would: `podman healthcheck run` on every running
 * container that has one, every two seconds. Docker, and podman under systemd, need no ticker.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const ROOT = new URL('../../', import.meta.url).pathname;

function podmanSettings(): NodeJS.ProcessEnv {
  const script = `. deploy/podman/env.sh && printf '%s\\n%s\\n' "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF"`;
  const [conf, storage] = execFileSync('bash', ['-c', script], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n');
  return { CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: storage };
}

export const podmanEnv: NodeJS.ProcessEnv = { ...process.env, ...podmanSettings() };

/** Runs a command with the podman settings; rejects with its stderr. */
export async function sh(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { cwd: ROOT, env: options.env ?? podmanEnv, timeout: options.timeoutMs ?? 600_000, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string; code?: number };
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${e.code}):\n${(e.stderr ?? '').slice(-4000)}\n${(e.stdout ?? '').slice(-2000)}`);
  }
}

export const podman = (...args: string[]) => sh('podman', args);

export function commandExists(cmd: string): boolean {
  return ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/bin', '/sbin'].some((d) => existsSync(join(d, cmd)));
}

/** `podman system service` on a private socket: DOCKER_HOST for docker-compose. */
export async function startDockerApi(): Promise<{ dockerHost: string; close(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-docker-api-'));
  const socket = join(dir, 'docker.sock');
  const child: ChildProcess = spawn('podman', ['system', 'service', '--time=0', `unix://${socket}`], { env: podmanEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const dockerHost = `unix://${socket}`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`podman system service exited: ${stderr}`);
    if (existsSync(socket)) {
      try {
        await sh('curl', ['-sf', '--unix-socket', socket, 'http://d/_ping']);
        break;
      } catch {
        // not answering yet
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    dockerHost,
    close: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `podman healthcheck run` for every running container with a healthcheck, every 2 s, until stopped. */
export function startHealthTicker(): { stop(): Promise<void> } {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const ids: string[] = [];
      for (const health of ['starting', 'healthy', 'unhealthy'])
        ids.push(...(await podman('ps', '-q', '--filter', `health=${health}`).catch(() => '')).split('\n').filter(Boolean));
      await Promise.all(ids.map((id) => run('podman', ['healthcheck', 'run', id], { env: podmanEnv, timeout: 60_000 }).catch(() => {})));
      await new Promise((r) => setTimeout(r, 2000));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

export const WHARF_IMAGE = 'wharf:0.1.0';

/**
 * `podman build` of the Dockerfile: Docker's image format (podman's OCI format drops the
 * HEALTHCHECK) and no intermediate images (with vfs every step is a full copy of the root file
 * system: a build left ~16 GB of them behind, and a few runs filled the disk).
 */
export const WHARF_BUILD = ['build', '--format', 'docker', '--layers=false', '--pull=never', '-t', WHARF_IMAGE, ROOT];

/** The stand-ins and the Wharf image, built when missing (compose.test.ts builds them first in a full run). */
export async function ensureImages(): Promise<void> {
  await sh(join(ROOT, 'deploy/local-images.sh'), [], { timeoutMs: 3_000_000 });
  const exists = await podman('image', 'exists', WHARF_IMAGE).then(
    () => true,
    () => false,
  );
  if (!exists) await podman(...WHARF_BUILD);
}

/** VmRSS of a container's PID 1, in MiB. */
export async function rssMiB(container: string): Promise<number> {
  const status = await podman('exec', container, 'cat', '/proc/1/status');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
  return Math.round(kb / 1024);
}
