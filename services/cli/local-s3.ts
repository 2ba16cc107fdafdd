/**
 * s3rver as a local S3 endpoint, for `npm run cluster` and the tests. It must start under
 * `--openssl-legacy-provider` (without it ListObjectsV2 pagination answers 500), so it runs in
 * a child process of its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpStatus } from './http-status.js';

export interface LocalS3 {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The s3rver process, when started here (for the benchmark's CPU and memory figures). */
  pid?: number;
  /** Stops s3rver; never throws. */
  close(): Promise<void>;
}

const START_TIMEOUT_MS = 20_000;

/** The child: starts s3rver on a free loopback port with the bucket, prints `{"port":…}`, exits when the parent goes away. */
const SERVER_SCRIPT = String.raw`
'use strict';
const S3rver = require(process.env.S3RVER_MODULE);
const server = new S3rver({
  address: '127.0.0.1',
  port: Number(process.env.S3RVER_PORT),
  silent: true,
  directory: process.env.S3RVER_DIRECTORY,
  configureBuckets: [{ name: process.env.S3RVER_BUCKET }],
});
server.run().then(
  (address) => process.stdout.write(JSON.stringify({ port: address.port }) + '\n'),
  (err) => {
    process.stderr.write(String(err && err.stack || err) + '\n');
    process.exit(1);
  },
);
// The parent holds our stdin: when it exits, however it exits, we follow.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
`;

/**
 * Runs s3rver in a child process on a free loopback port with `bucket` created. Its objects live
 * under `dataDir` (kept) or a temporary directory (removed by close()).
 */
export async function startLocalS3(options: { bucket: string; dataDir?: string; port?: number }): Promise<LocalS3> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-s3rver-'));
  const bucket = options.bucket;
  const script = join(dir, 'server.cjs');
  await writeFile(script, SERVER_SCRIPT);
  const child = spawn(process.execPath, ['--openssl-legacy-provider', script], {
    env: {
      ...process.env,
      NODE_OPTIONS: '', // no loaders inherited from the test runner (tsx): the child is plain CommonJS
      S3RVER_MODULE: createRequire(import.meta.url).resolve('s3rver'),
      S3RVER_DIRECTORY: options.dataDir ?? join(dir, 'data'),
      S3RVER_PORT: String(options.port ?? 0),
      S3RVER_BUCKET: bucket,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stopping = false;
  const cleanup = async () => {
    stopping = true;
    await stopChild(child);
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  };
  try {
    const port = await readPort(child);
    // A server that dies under its user is otherwise only an ECONNREFUSED somewhere later: say why.
    let stderrTail = '';
    child.stderr?.on('data', (data: Buffer) => {
      stderrTail = (stderrTail + data.toString()).slice(-4_000);
    });
    child.once('exit', (code, signal) => {
      if (!stopping) process.stderr.write(`s3rver (pid ${child.pid}) exited unexpectedly (${code ?? signal}): ${stderrTail}\n`);
    });
    const endpoint = `http://127.0.0.1:${port}`;
    await waitReady(endpoint);
    let closed: Promise<void> | undefined;
    return {
      endpoint,
      bucket,
      region: 'us-east-1',
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
      pid: child.pid!,
      close: () => (closed ??= cleanup()),
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Resolves with the port the child printed; rejects with its stderr if it dies or takes too long. */
function readPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    let errText = '';
    const timer = setTimeout(() => finish(new Error(`s3rver did not start within ${START_TIMEOUT_MS} ms: ${errText}`)), START_TIMEOUT_MS);
    const finish = (err: Error | undefined, port?: number) => {
      clearTimeout(timer);
      child.stdout?.off('data', onOut);
      child.off('exit', onExit);
      child.off('error', onError);
      if (err) reject(err);
      else resolve(port!);
    };
    const onOut = (data: Buffer) => {
      out += data.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line !== undefined) {
        try {
          const port = (JSON.parse(line) as { port: unknown }).port;
          if (typeof port !== 'number') throw new Error(`no port in ${line}`);
          finish(undefined, port);
        } catch (err) {
          finish(new Error(`unexpected s3rver output: ${line}: ${(err as Error).message}`));
        }
      }
    };
    const onExit = (code: number | null, signal: string | null) => finish(new Error(`s3rver exited (${code ?? signal}) before listening: ${errText}`));
    const onError = (err: Error) => finish(err);
    child.stderr?.on('data', (data: Buffer) => {
      if (errText.length < 10_000) errText += data.toString();
    });
    child.stdout?.on('data', onOut);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/** Any HTTP answer (even an error) means the server is serving. */
async function waitReady(endpoint: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      await httpStatus(`${endpoint}/`, 2_000);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`s3rver at ${endpoint} not answering: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdin?.end();
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
