// Webhook delivery: events per second and latency from outbox commit to webhook receipt, with
// one and with two `wharf worker` replicas (separate processes) on PostgreSQL and NATS JetStream.
// Usage: npm run bench:webhooks [-- --events N] [--rate N] [--seconds N] [--port P (receiver, default 5300)]
// Needs PostgreSQL (WHARF_BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test) and
// NATS with JetStream (WHARF_BENCH_NATS_URL, default nats://127.0.0.1:4222); receiver on port 5300.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { loadavg } from 'node:os';
import pg from 'pg';
import { connect } from 'nats';
import { configToEnv, loadConfig, type Config } from '../libs/config/index.js';
import { buildEvent, OutboxRelay, Subjects } from '../libs/events/index.js';
import { NatsBus } from '../libs/events/nats-bus.js';
import { migrate, openDatabase, outbox, type Database } from '../libs/metadata/index.js';
import { WHARF_MAIN } from './wharf-main.js';

const RECEIVER_PORT = Number(process.argv.includes('--port') ? process.argv[process.argv.indexOf('--port') + 1] : 5300);
const serverUrl = process.env.WHARF_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const natsUrl = process.env.WHARF_BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}
const BURST = arg('events', 3000);
const RATE = arg('rate', 100);
const SECONDS = arg('seconds', 10);
/** The endpoint's `concurrency` (deliveries in flight per replica; the configuration's default is 4). */
const CONCURRENCY = arg('concurrency', 4);

/** Commit time of each event (set just before its transaction commits) and its receipt time. */
const committed = new Map<string, number>();
const received = new Map<string, number>();
let duplicates = 0;

const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const now = performance.timeOrigin + performance.now();
    for (const e of (JSON.parse(Buffer.concat(chunks).toString()) as { events: Array<{ id: string }> }).events) {
      if (received.has(e.id)) duplicates++;
      else received.set(e.id, now);
    }
    res.writeHead(200).end();
  });
});

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const context = { request: { id: 'bench', addr: '', host: '', method: 'PUT', useragent: 'bench' }, actor: {}, source: { addr: '', instanceID: 'bench' } };

/** The relay of the API node that committed: woken after each commit, as the registry does. */
let relay: OutboxRelay | undefined;

/** Commits `n` manifest-push events in transactions of `batch`, like API writes would. */
async function commitEvents(db: Database, n: number, batch: number): Promise<string[]> {
  const events = Array.from({ length: n }, (_, i) =>
    buildEvent(
      'push',
      { repository: `bench/r${i % 50}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${randomBytes(32).toString('hex')}`, size: 1000 },
      context,
    ),
  );
  await db.db.transaction().execute(async (trx) => {
    await outbox.appendOutbox(
      trx,
      events.slice(0, batch).map((e) => ({ eventId: e.id, subject: Subjects.manifestPush, payload: e })),
    );
  });
  for (const e of events.slice(0, batch)) committed.set(e.id, Date.now());
  for (let i = batch; i < n; i += batch) {
    const slice = events.slice(i, i + batch);
    await outbox.appendOutbox(
      db.db,
      slice.map((e) => ({ eventId: e.id, subject: Subjects.manifestPush, payload: e })),
    );
    const t = Date.now();
    for (const e of slice) committed.set(e.id, t);
    relay?.wake();
  }
  relay?.wake();
  return events.map((e) => e.id);
}

async function waitAll(ids: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (ids.some((id) => !received.has(id))) {
    if (Date.now() > deadline) throw new Error(`${ids.filter((id) => !received.has(id)).length} of ${ids.length} events not received in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function stats(ids: string[]) {
  const lat = ids.map((id) => received.get(id)! - committed.get(id)!).sort((a, b) => a - b);
  const first = Math.min(...ids.map((id) => committed.get(id)!));
  const last = Math.max(...ids.map((id) => received.get(id)!));
  return { n: ids.length, eventsPerSecond: ids.length / ((last - first) / 1000), p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat[lat.length - 1]! };
}

function spawnWorker(config: Config): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, ...configToEnv(config), WHARF_LOG_LEVEL: 'warn' };
  for (const k of Object.keys(env)) if (k.startsWith('WHARF_BENCH_') || k.startsWith('WHARF_TEST_')) delete env[k];
  const child = spawn(process.execPath, [WHARF_MAIN, 'worker'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  return child;
}

async function runCase(replicas: number) {
  const run = randomBytes(4).toString('hex');
  const dbName = `wharf_bench_webhooks_${run}`;
  const adminClient = new pg.Client({ connectionString: serverUrl });
  await adminClient.connect();
  await adminClient.query(`create database ${dbName}`);
  await adminClient.end();
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  const config = loadConfig({
    env: {},
    overrides: {
      'database.url': url.toString(),
      'nats.url': natsUrl,
      'nats.stream': `WHARF_BENCH_${run.toUpperCase()}`,
      'nats.subjectprefix': `wharfbench${run}.events`,
      'notifications.endpoints': [{ name: 'bench', url: `http://127.0.0.1:${RECEIVER_PORT}/hook`, concurrency: CONCURRENCY }],
    },
  });
  const db = openDatabase({ url: config['database.url'], poolSize: 4, uploadPoolSize: 1 });
  await migrate(db.db);
  const workers = Array.from({ length: replicas }, () => spawnWorker(config));
  const bus = await NatsBus.connect({ servers: natsUrl, stream: config['nats.stream'], subjectPrefix: config['nats.subjectprefix'] });
  relay = new OutboxRelay(outbox.outboxSource(db.db), bus);
  relay.start();
  try {
    // Warm-up: the workers are up and their durable consumer exists once one event comes through.
    const warm = await commitEvents(db, 20, 20);
    await waitAll(warm, 60_000);

    const burstIds = await commitEvents(db, BURST, 100);
    const sampler = process.env.WHARF_BENCH_TRACE
      ? setInterval(() => {
          void (async () => {
            const o = await db.db
              .selectFrom('outbox')
              .select((eb) => eb.fn.countAll<number>().as('n'))
              .where('published_at', 'is', null)
              .executeTakeFirst();
            const q = await db.db
              .selectFrom('webhook_deliveries')
              .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
              .groupBy('state')
              .execute();
            console.log(`unpublished ${o?.n} queue ${JSON.stringify(q)} received ${received.size}`);
          })();
        }, 1000)
      : undefined;
    await waitAll(burstIds, 300_000);
    clearInterval(sampler);
    const burst = stats(burstIds);

    const steadyIds: string[] = [];
    const interval = 1000 / RATE;
    const start = Date.now();
    for (let i = 0; i < RATE * SECONDS; i++) {
      const due = start + i * interval;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      steadyIds.push(...(await commitEvents(db, 1, 1)));
    }
    await waitAll(steadyIds, 120_000);
    const steady = stats(steadyIds);
    return { replicas, burst, steady };
  } finally {
    await relay.stop();
    await bus.close();
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(null) : w.once('exit', r)))));
    await db.close();
    const c = new pg.Client({ connectionString: serverUrl });
    await c.connect();
    await c.query(`drop database if exists ${dbName} with (force)`);
    await c.end();
    const nc = await connect({ servers: natsUrl });
    await (await nc.jetstreamManager()).streams.delete(config['nats.stream']).catch(() => {});
    await nc.close();
  }
}

await new Promise<void>((resolve) => receiver.listen(RECEIVER_PORT, '127.0.0.1', resolve));
const results = [];
try {
  for (const replicas of [1, 2]) results.push(await runCase(replicas));
} finally {
  receiver.close();
}
const f = (n: number) => n.toFixed(0);
console.log(
  `\nWebhook delivery, commit to receipt (burst of ${BURST} events committed 100 per transaction; steady ${RATE} events/s for ${SECONDS} s; endpoint concurrency ${CONCURRENCY}; load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')})\n`,
);
console.log('| worker replicas | burst events/s | burst p50 ms | burst p99 ms | steady p50 ms | steady p99 ms | steady max ms |');
console.log('|---:|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  console.log(`| ${r.replicas} | ${f(r.burst.eventsPerSecond)} | ${f(r.burst.p50)} | ${f(r.burst.p99)} | ${f(r.steady.p50)} | ${f(r.steady.p99)} | ${f(r.steady.max)} |`);
}
console.log(`\nduplicates received: ${duplicates}`);
