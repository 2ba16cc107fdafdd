/**
 * Garbage collection benchmark (npm run bench:gc): how fast the gc worker reclaims collectable
 * blobs, and what a running collector costs pushes. See bench/README.md, "Garbage collection".
 *
 * Shape: `wharf serve` on 127.0.0.1:5500 and `wharf worker` (roles: gc) as child processes on a
 * fresh database of the PostgreSQL at WHARF_BENCH_DATABASE_URL (default the test server) and a
 * filesystem store in a temp dir; the load comes from this process over HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { migrate, openDatabase, type Database } from '../libs/metadata/index.js';
import { OCI_MANIFEST, pushBlob, putManifest, randomBlob, sha256 } from '../test/helpers/oci.js';
import { configBlob, imageManifest } from '../test/helpers/gc.js';
import { WHARF_MAIN } from './wharf-main.js';

const SERVER = process.env.WHARF_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const PORT = Number(process.env.WHARF_BENCH_PORT ?? 5500);
const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const BLOBS = option('blobs', 10_000);
const BLOB_BYTES = option('blob-bytes', 16 * 1024);
const PUSH_SECONDS = option('seconds', 20);
const PUSHERS = option('pushers', 8);
const GC_WORKERS = option('gc-workers', 2);

interface Env {
  url: string;
  database: Database;
  dataDir: string;
  dbName: string;
  env: Record<string, string>;
  serve: ChildProcess;
  close(): Promise<void>;
}

function startProcess(role: 'serve' | 'worker', env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [WHARF_MAIN, role], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  return child;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

async function setUp(gc: Record<string, string>): Promise<Env> {
  const dbName = `wharf_gcbench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: SERVER });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  await admin.end();
  const dbUrl = SERVER.replace(/\/[^/]*$/, `/${dbName}`);
  const database = openDatabase({ url: dbUrl, poolSize: 4, uploadPoolSize: 1 });
  await migrate(database.db);
  const dataDir = await mkdtemp(join(tmpdir(), 'wharf-gcbench-'));
  const env = {
    WHARF_DATABASE_URL: dbUrl,
    WHARF_DATA_DIR: dataDir,
    WHARF_STORAGE_DRIVER: 'filesystem',
    WHARF_HTTP_ADDR: `127.0.0.1:${PORT}`,
    WHARF_LOG_LEVEL: 'error',
    WHARF_EVENTS_PULL: 'false',
    ...gc,
  };
  const serve = startProcess('serve', env);
  const url = `http://127.0.0.1:${PORT}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/v2/`)).status === 200) break;
    } catch {
      // not yet
    }
    if (i > 300) throw new Error('wharf serve did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    database,
    dataDir,
    dbName,
    env,
    serve,
    async close() {
      await stopProcess(serve);
      await database.close();
      await rm(dataDir, { recursive: true, force: true });
      const drop = new pg.Client({ connectionString: SERVER });
      await drop.connect();
      await drop.query(`drop database if exists ${dbName} with (force)`);
      await drop.end();
    },
  };
}

async function inParallel(n: number, items: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items) await task(next++);
    }),
  );
}

/** Uploads `count` unreferenced blobs into 10 repositories and makes their reviews due now. */
async function seedCollectable(e: Env, count: number): Promise<{ seconds: number }> {
  const started = performance.now();
  await inParallel(16, count, async (i) => {
    await pushBlob(e.url, `seed/r${i % 10}`, randomBlob(BLOB_BYTES));
  });
  const seconds = (performance.now() - started) / 1000;
  await e.database.db
    .updateTable('gc_blob_reviews')
    .set({ review_after: new Date(0) })
    .execute();
  return { seconds };
}

async function count(e: Env, table: 'blobs' | 'gc_storage_deletions' | 'gc_blob_reviews'): Promise<number> {
  const row = await e.database.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function reclaim(workers: number): Promise<string> {
  const e = await setUp({ WHARF_GC_GRACE: '0', WHARF_GC_UPLOADGRACE: '86400', WHARF_GC_POLLINTERVAL: '20', WHARF_GC_WORKERS: String(workers) });
  try {
    const seeded = await seedCollectable(e, BLOBS);
    const blobs = await count(e, 'blobs');
    const started = performance.now();
    const worker = startProcess('worker', { ...e.env, WHARF_WORKER_ROLES: 'gc' });
    try {
      for (;;) {
        if ((await count(e, 'blobs')) === 0 && (await count(e, 'gc_storage_deletions')) === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await stopProcess(worker);
    }
    // The worker's start-up (module loading, connections) is inside the figure.
    const seconds = (performance.now() - started) / 1000;
    return `| ${workers} | ${blobs} | ${(BLOB_BYTES / 1024).toFixed(0)} KiB | ${seconds.toFixed(1)} s | ${(blobs / seconds).toFixed(0)} | ${((blobs * BLOB_BYTES) / seconds / 1024 / 1024).toFixed(1)} | ${(BLOBS / seeded.seconds).toFixed(0)} |`;
  } finally {
    await e.close();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/**
 * `PUSHERS` clients push images (config + 16 KiB layer + manifest) for `PUSH_SECONDS`; a deleter
 * deletes each image by digest right after it is pushed, so with GC on there is always something
 * to collect. With GC on, 10,000 collectable blobs are also due when the pushes start.
 */
async function pushLatency(withGc: boolean): Promise<string> {
  const e = await setUp({
    WHARF_GC_GRACE: '0',
    WHARF_GC_UPLOADGRACE: '3600',
    WHARF_GC_UNTAGGED: 'delete-after 0s',
    WHARF_GC_POLLINTERVAL: '20',
    WHARF_GC_WORKERS: String(GC_WORKERS),
  });
  let worker: ChildProcess | undefined;
  try {
    await seedCollectable(e, withGc ? BLOBS : 0);
    if (withGc) {
      worker = startProcess('worker', { ...e.env, WHARF_WORKER_ROLES: 'gc' });
      // Collecting has begun once the backlog shrinks.
      const backlog = await count(e, 'blobs');
      while ((await count(e, 'blobs')) >= backlog) await new Promise((r) => setTimeout(r, 20));
    }
    const image: number[] = [];
    const manifestPut: number[] = [];
    let failures = 0;
    const deadline = performance.now() + PUSH_SECONDS * 1000;
    const toDelete: Array<{ name: string; digest: string }> = [];
    let pushing = true;
    const deleter = (async () => {
      while (pushing || toDelete.length > 0) {
        const next = toDelete.shift();
        if (!next) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        await fetch(`${e.url}/v2/${next.name}/manifests/${next.digest}`, { method: 'DELETE' });
      }
    })();
    const shared = randomBlob(BLOB_BYTES);
    await Promise.all(
      Array.from({ length: PUSHERS }, async (_, p) => {
        const name = `push/p${p}`;
        for (let n = 0; performance.now() < deadline; n++) {
          const config = configBlob();
          const layer = n % 2 === 0 ? randomBlob(BLOB_BYTES) : shared;
          const t0 = performance.now();
          for (const b of [config, layer]) {
            if ((await fetch(`${e.url}/v2/${name}/blobs/${b.digest}`, { method: 'HEAD' })).status !== 200) await pushBlob(e.url, name, b);
          }
          const body = imageManifest(config, [layer]);
          const t1 = performance.now();
          const res = await putManifest(e.url, name, `t${n}`, body, OCI_MANIFEST);
          const t2 = performance.now();
          if (res.status !== 201) {
            failures++;
            await res.arrayBuffer();
            continue;
          }
          image.push(t2 - t0);
          manifestPut.push(t2 - t1);
          toDelete.push({ name, digest: sha256(body) });
        }
      }),
    );
    pushing = false;
    await deleter;
    const collectedDuring = withGc ? BLOBS - (await count(e, 'blobs')) : 0;
    image.sort((a, b) => a - b);
    manifestPut.sort((a, b) => a - b);
    return `| ${withGc ? `running (${GC_WORKERS} loops), ${BLOBS}-blob backlog` : 'off'} | ${image.length} | ${(image.length / PUSH_SECONDS).toFixed(0)} | ${percentile(image, 50).toFixed(1)} | ${percentile(image, 99).toFixed(1)} | ${percentile(manifestPut, 50).toFixed(1)} | ${percentile(manifestPut, 99).toFixed(1)} | ${failures} | ${withGc ? collectedDuring : '-'} |`;
  } finally {
    if (worker) await stopProcess(worker);
    await e.close();
  }
}

const ONLY = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const ROUNDS = option('rounds', 2);
const lines: string[] = [];
const emit = (line: string) => {
  lines.push(line);
  console.error(line);
};

if (ONLY !== 'push') {
  lines.push(`### Reclaim rate (${BLOBS} collectable blobs of ${BLOB_BYTES} bytes, filesystem store)`, '');
  lines.push('| gc.workers | blobs | blob size | time to empty | blobs/s | MiB/s | (seeding, blobs/s) |', '|---|---|---|---|---|---|---|');
  for (const workers of [1, GC_WORKERS, 4].filter((w, i, all) => all.indexOf(w) === i)) emit(await reclaim(workers));
  lines.push('');
}
if (ONLY !== 'reclaim') {
  lines.push(`### Push latency, ${PUSHERS} concurrent pushers for ${PUSH_SECONDS} s, each image deleted right after its push`, '');
  lines.push(
    '| GC | images pushed | images/s | image p50 ms | image p99 ms | manifest PUT p50 ms | manifest PUT p99 ms | failed PUTs | backlog blobs collected meanwhile |',
    '|---|---|---|---|---|---|---|---|---|',
  );
  for (let round = 0; round < ROUNDS; round++) for (const withGc of [false, true]) emit(await pushLatency(withGc));
}
console.log(lines.join('\n'));
