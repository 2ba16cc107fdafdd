/**
 * NATS for tests: the server at WHARF_TEST_NATS_URL (default nats://127.0.0.1:4222), with a
 * stream and subject prefix unique to each run, and optionally a private nats-server child.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';

export function natsUrl(): string {
  return process.env.WHARF_TEST_NATS_URL || 'nats://127.0.0.1:4222';
}

/** A stream name and subject prefix no other run uses; delete the stream when done. */
export function uniqueStreamNames(): { stream: string; subjectPrefix: string } {
  const id = randomBytes(5).toString('hex');
  return { stream: `WHARF_TEST_${id.toUpperCase()}`, subjectPrefix: `wharftest${id}.events` };
}

/** Undefined if NATS with JetStream answers at `url`, else why not (for a test skip message). */
export async function natsUnavailable(url = natsUrl()): Promise<string | undefined> {
  try {
    const nc = await connect({ servers: url, timeout: 2_000, reconnect: false });
    try {
      await nc.jetstreamManager({ timeout: 2_000 });
    } finally {
      await nc.close();
    }
    return undefined;
  } catch (err) {
    return `NATS with JetStream not reachable at ${url} (set WHARF_TEST_NATS_URL): ${(err as Error).message}`;
  }
}

/** Deletes a test stream, ignoring any failure. */
export async function deleteStream(url: string, stream: string): Promise<void> {
  try {
    const nc = await connect({ servers: url, timeout: 2_000, reconnect: false });
    try {
      const jsm = await nc.jetstreamManager();
      await jsm.streams.delete(stream);
    } finally {
      await nc.close();
    }
  } catch {
    // already gone, or NATS is
  }
}

export const NATS_SERVER_BIN = process.env.WHARF_TEST_NATS_SERVER || '/usr/sbin/nats-server';

/** A nats-server child on its own port and store dir, which can be stopped and started again. */
export interface PrivateNatsServer {
  url: string;
  port: number;
  storeDir: string;
  start(): Promise<void>;
  /** SIGTERM, then waits for the process to exit. */
  stop(): Promise<void>;
  /** Stops it and removes the store dir; never throws. */
  dispose(): Promise<void>;
}

export function canRunPrivateNatsServer(): boolean {
  return existsSync(NATS_SERVER_BIN);
}

export async function startPrivateNatsServer(): Promise<PrivateNatsServer> {
  const port = await freePort();
  const storeDir = await mkdtemp(join(tmpdir(), 'wharf-nats-'));
  let child: ChildProcess | undefined;
  let stderr = '';
  const killOnExit = () => child?.kill('SIGKILL');
  process.on('exit', killOnExit);

  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  const server: PrivateNatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    async start() {
      if (child) return;
      stderr = '';
      const c = spawn(NATS_SERVER_BIN, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child = c;
      c.stderr!.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-4000);
      });
      const deadline = Date.now() + 15_000;
      for (;;) {
        if (c.exitCode !== null) throw new Error(`nats-server exited with ${c.exitCode}: ${stderr}`);
        if (await portOpen(port)) return;
        if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port}: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop,
    async dispose() {
      await stop().catch(() => {});
      process.off('exit', killOnExit);
      await rm(storeDir, { recursive: true, force: true }).catch(() => {});
    },
  };
  try {
    await server.start();
  } catch (err) {
    await server.dispose();
    throw err;
  }
  return server;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
