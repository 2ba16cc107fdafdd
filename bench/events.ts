// The event pipeline, measured from outside on Wharf started as the README does:
// - outbox drain: a backlog of N committed events (inserted with SQL, as a burst of writes or an
//   outage leaves it) until the relay(s) published every one, and manifest GET p99 while it
//   drains against idle;
// - commit -> NATS subscriber latency at a steady rate of manifest PUTs (cluster);
// - read-model lag: a tag PUT at a steady 100/s until it is in the manifest listing (cluster);
// - manifest GET by tag with pull events on against off (A/B interleaved).
// Usage: npm run bench:events [-- --backlog N] [--backlog-tags read|others] [--rate N] [--seconds N] [--port-base P] [--only embedded|cluster] [--split-cpus]
// --backlog-tags: the backlog's pushes name the tag the GETs read (default, the worst case for the
// manifest cache: every event drops the entry being read) or other tags of the same repository.
// Cluster needs PostgreSQL (WHARF_BENCH_DATABASE_URL) and NATS (WHARF_BENCH_NATS_URL).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import type { RegistryEvent } from '../libs/events/index.js';
import { NatsBus } from '../libs/events/nats-bus.js';
import { runningEmbeddedPostgresUrl } from '../libs/metadata/index.js';
import { compare } from './load.js';
import { startWharfNode, startWharfProcess, WHARF_ROOT, type RunningRegistry } from './registries.js';
import { makeDataset, putManifest, seed, type Dataset } from './seed.js';
import { WHARF_MAIN, WHARF_NODE_FLAGS } from './wharf-main.js';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1]!;
}
const BACKLOG = Number(arg('backlog', '100000'));
const BACKLOG_TAGS = arg('backlog-tags', 'read');
if (BACKLOG_TAGS !== 'read' && BACKLOG_TAGS !== 'others') throw new Error('--backlog-tags is read or others');
const RATE = Number(arg('rate', '500'));
const SECONDS = Number(arg('seconds', '10'));
const PORT_BASE = Number(arg('port-base', '22000'));
const ONLY = arg('only', 'both');
const SPLIT_CPUS = process.argv.includes('--split-cpus');
const serverUrl = process.env.WHARF_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const natsUrl = process.env.WHARF_BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const ACCEPT = { accept: 'application/vnd.oci.image.manifest.v1+json' };

const lines: string[] = [];
const out = (line = '') => {
  lines.push(line);
  console.log(line);
};
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
const fmt = (n: number, d = 0) => n.toFixed(d);
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/**
 * --split-cpus (cluster, the idle round and the drain only): the GET node and this process (the
 * load generator) on CPU 0; the worker, the other node, nats-server and PostgreSQL on CPU 1, as a
 * deployment that gives the pipeline machines of its own has it. Needs taskset and the right to
 * set the affinity of the services; `restore` gives every process all CPUs back (os.cpus(), not
 * availableParallelism(): that counts this process's own affinity, CPU 0 by then).
 */
function splitCpus(getSide: number[], pipelineSide: number[]): { restore(): void } {
  const services = ['nats-server', 'postgres'].flatMap((name) => {
    try {
      return execFileSync('pgrep', ['-x', name], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
  const pin = (pids: number[], cpus: string) => {
    for (const pid of pids) execFileSync('taskset', ['-a', '-pc', cpus, String(pid)], { stdio: 'ignore' });
  };
  pin(getSide, '0');
  pin([...pipelineSide, ...services], '1');
  return {
    restore() {
      for (const pid of [...getSide, ...pipelineSide, ...services]) {
        try {
          pin([pid], `0-${cpus().length - 1}`);
        } catch {
          // ended meanwhile
        }
      }
    },
  };
}

async function getLoad(url: string, seconds: number): Promise<{ rps: number; p99: number; p50: number }> {
  const r = await autocannon({ url, method: 'GET', headers: ACCEPT, connections: 16, duration: seconds });
  return { rps: r.requests.average, p99: r.latency.p99, p50: r.latency.p50 };
}

/** Inserts `n` committed manifest-push events in one statement: what a burst or an outage leaves. */
/** `tag` undefined: each event names a tag of its own (build-1, build-2, ...). */
async function insertBacklog(url: string, n: number, repository: string, tag: string | undefined): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(
      `insert into outbox (event_id, subject, payload)
       select id, 'wharf.events.manifest.push', jsonb_build_object(
         'id', id, 'timestamp', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'action', 'push',
         'target', jsonb_build_object('mediaType', 'application/vnd.oci.image.manifest.v1+json', 'size', 500, 'length', 500,
           'digest', 'sha256:' || encode(sha256(id::text::bytea), 'hex'), 'repository', $2::text, 'tag', coalesce($3::text, 'build-' || n),
           'url', 'http://127.0.0.1/v2/' || $2::text || '/manifests/x'),
         'request', jsonb_build_object('id', 'bench', 'addr', '', 'host', '', 'method', 'PUT', 'useragent', 'bench'),
         'actor', '{}'::jsonb, 'source', jsonb_build_object('addr', '', 'instanceID', 'bench'))
       from (select gen_random_uuid() as id, n from generate_series(1, $1::int) n) g`,
      [n, repository, tag],
    );
  } finally {
    await c.end();
  }
}

async function backlogOf(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return Number((await c.query(`select count(*) as n from outbox where published_at is null and dead_lettered_at is null`)).rows[0].n);
  } finally {
    await c.end();
  }
}

/** Inserts the backlog, then loads manifest GET in 3 s rounds until it is drained; the drain time and each round's p99. */
async function drainUnderLoad(dbUrl: string, getUrl: string): Promise<{ seconds: number; p99s: number[]; rps: number[] }> {
  await insertBacklog(dbUrl, BACKLOG, 'bench/app', BACKLOG_TAGS === 'read' ? 'latest' : undefined);
  const t0 = Date.now();
  let drainedAt: number | undefined;
  const watcher = (async () => {
    while (drainedAt === undefined) {
      if ((await backlogOf(dbUrl)) === 0) drainedAt = Date.now();
      else await new Promise((r) => setTimeout(r, 250));
      if (Date.now() - t0 > 600_000) throw new Error('backlog not drained in 10 minutes');
    }
  })();
  const p99s: number[] = [];
  const rps: number[] = [];
  while (drainedAt === undefined) {
    const r = await getLoad(getUrl, 3);
    p99s.push(r.p99);
    rps.push(r.rps);
  }
  await watcher;
  return { seconds: (drainedAt - t0) / 1000, p99s, rps };
}

function reportDrain(label: string, idle: { rps: number; p99: number }, drain: { seconds: number; p99s: number[]; rps: number[] }): void {
  const worst = Math.max(...drain.p99s);
  out(
    `| ${label} | ${BACKLOG} | ${fmt(drain.seconds, 1)} | ${fmt(BACKLOG / drain.seconds)} | ${fmt(idle.p99)} | ${drain.p99s.map((p) => fmt(p)).join(', ')} | ${fmt(worst / idle.p99, 2)}× | ${fmt(idle.rps)} / ${drain.rps.map((r) => fmt(r)).join(', ')} |`,
  );
}

async function embedded(data: Dataset): Promise<void> {
  const on = await startWharfProcess(PORT_BASE + 1);
  const off = await startWharfProcess(PORT_BASE + 2, { WHARF_EVENTS_PULL: 'false' });
  try {
    await seed(on.base, data);
    await seed(off.base, data);
    const path = '/v2/bench/app/manifests/latest';
    out(`\n## Embedded (\`wharf all\`, as npm start), load average at start ${load()}\n`);
    const [a, b] = await compare(`${on.base}${path}`, `${off.base}${path}`, { method: 'GET', headers: ACCEPT, connections: 32, seconds: 8, warmupSeconds: 1 });
    out(
      `Manifest GET by tag, pull events on / off: ${fmt(a.reqPerSec)} / ${fmt(b.reqPerSec)} req/s = **${fmt(a.reqPerSec / b.reqPerSec, 2)}×** (p99 ${fmt(a.p99, 1)} / ${fmt(b.p99, 1)} ms; load ${load()})`,
    );
    const pullMetrics = await (await fetch(`${on.base}/metrics`)).text();
    out(`Pull events dropped during it: ${/^wharf_pull_events_dropped_total\{reason="full"\} (\d+)/m.exec(pullMetrics)?.[1] ?? 0} (queue full)\n`);

    const dbUrl = await runningEmbeddedPostgresUrl(join(on.dir, 'data', 'postgres'));
    if (!dbUrl) throw new Error('embedded PostgreSQL of the bench Wharf not found');
    const idle = await getLoad(`${on.base}${path}`, 5);
    const drain = await drainUnderLoad(dbUrl, `${on.base}${path}`);
    out('| mode | backlog | drain s | events/s | idle GET p99 ms | GET p99 ms while draining (3 s rounds) | worst / idle | GET req/s idle / draining |');
    out('|---|---:|---:|---:|---:|---|---:|---|');
    reportDrain('embedded', idle, drain);
    out(`\n(load average after: ${load()})`);
  } finally {
    await on.stop();
    await off.stop();
    await rm(on.dir, { recursive: true, force: true });
    await rm(off.dir, { recursive: true, force: true });
  }
}

const READ_MODEL_RATE = 100;

/**
 * Tags PUT at a steady 100/s through both nodes, and how long after each PUT's 201 its tag is in
 * the manifest listing (the read model the manifest-lister worker keeps from the events), read
 * from the database every 50 ms.
 */
async function readModelLag(dbUrl: string, bases: string[], data: Dataset, distinct: boolean): Promise<{ offered: number; achieved: number; lags: number[] }> {
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  const answered = new Map<string, number>();
  const seen = new Map<string, number>();
  const offered = READ_MODEL_RATE * SECONDS;
  // Distinct prefixes: the tags of the run before stay in the listing and must not count as seen.
  const prefix = distinct ? 'md' : 'mt';
  let putting = true;
  let putEnd = Number.POSITIVE_INFINITY;
  const poller = (async () => {
    const deadline = () => !putting && Date.now() > putEnd + 60_000;
    while (!deadline() && (putting || seen.size < answered.size)) {
      const { rows } = await c.query<{ tag: string }>(
        `select unnest(ml.tags) as tag from manifest_listing ml join repositories r on r.id = ml.repository_id where r.name = 'bench/app'`,
      );
      const now = Date.now();
      for (const { tag } of rows) if (tag.startsWith(prefix) && !seen.has(tag)) seen.set(tag, now);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const t0 = Date.now();
  const puts = new Set<Promise<void>>();
  for (let i = 0; i < offered; i++) {
    const wait = t0 + (i * 1000) / READ_MODEL_RATE - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const tag = `${prefix}${i}`;
    // distinct: a new image per push (the app manifest with an annotation of its own); else the
    // same manifest under one more tag, which grows one listing row's tag array with every push.
    const manifest = distinct ? JSON.stringify({ ...JSON.parse(data.app.manifest), annotations: { 'bench.push': String(i) } }) : data.app.manifest;
    const p: Promise<void> = putManifest(bases[i % 2]!, 'bench/app', tag, manifest)
      .then(() => void answered.set(tag, Date.now()))
      .catch(() => {})
      .finally(() => puts.delete(p));
    puts.add(p);
    if (puts.size >= 32) await Promise.race(puts);
  }
  await Promise.all(puts);
  putEnd = Date.now();
  putting = false;
  await poller;
  await c.end();
  // Seen before the 201 reached the client counts as no lag.
  const lags = [...answered].filter(([tag]) => seen.has(tag)).map(([tag, at]) => Math.max(0, seen.get(tag)! - at));
  return { offered, achieved: offered / ((putEnd - t0) / 1000), lags };
}

async function cluster(data: Dataset): Promise<void> {
  const suffix = randomBytes(4).toString('hex');
  const dbName = `wharf_bench_events_${suffix}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  await admin.end();
  const dbUrl = new URL(serverUrl);
  dbUrl.pathname = `/${dbName}`;
  const scratch = await mkdtemp(join(tmpdir(), 'wharf-bench-events-'));
  const env: Record<string, string> = {
    WHARF_DATABASE_URL: dbUrl.toString(),
    WHARF_NATS_URL: natsUrl,
    WHARF_NATS_STREAM: `WHARF_BENCH_${suffix.toUpperCase()}`,
    WHARF_NATS_SUBJECTPREFIX: `wharfbench${suffix}.events`,
    WHARF_STORAGE_DRIVER: 'filesystem',
    WHARF_DATA_DIR: scratch,
  };
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_')));
  execFileSync(process.execPath, [WHARF_MAIN, 'migrate'], { cwd: WHARF_ROOT, env: { ...inherited, ...env, WHARF_LOG_LEVEL: 'warn' }, stdio: 'inherit' });
  const started: RunningRegistry[] = [];
  const worker = spawn(process.execPath, [...WHARF_NODE_FLAGS, WHARF_MAIN, 'worker'], {
    cwd: WHARF_ROOT,
    env: { ...inherited, ...env, WHARF_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let bus: NatsBus | undefined;
  try {
    const on = await startWharfNode('Wharf node (pull events on)', PORT_BASE + 3, env);
    started.push(on);
    const off = await startWharfNode('Wharf node (pull events off)', PORT_BASE + 4, { ...env, WHARF_EVENTS_PULL: 'false' });
    started.push(off);
    await seed(on.base, data);

    out(`\n## Cluster (\`wharf serve\` + \`wharf worker\`, PostgreSQL, NATS JetStream), load average at start ${load()}\n`);
    const path = '/v2/bench/app/manifests/latest';
    const [a, b] = await compare(`${on.base}${path}`, `${off.base}${path}`, { method: 'GET', headers: ACCEPT, connections: 32, seconds: 8, warmupSeconds: 1 });
    out(
      `Manifest GET by tag, pull events on / off: ${fmt(a.reqPerSec)} / ${fmt(b.reqPerSec)} req/s = **${fmt(a.reqPerSec / b.reqPerSec, 2)}×** (p99 ${fmt(a.p99, 1)} / ${fmt(b.p99, 1)} ms; load ${load()})\n`,
    );

    const bases = [on.base, off.base];
    // Read models first, while the workers are idle (the burst below backs the lister up).
    for (const distinct of [true, false]) {
      const lag = await readModelLag(dbUrl.toString(), bases, data, distinct);
      const lags = [...lag.lags].sort((x, y) => x - y);
      const what = distinct ? 'image PUTs (a new manifest each)' : 'tag PUTs of one manifest';
      out(
        `Read models: ${lag.offered} ${what} offered at ${READ_MODEL_RATE}/s (achieved ${fmt(lag.achieved)}/s), PUT answered → tag in the manifest listing: p50 ${percentile(lags, 50)} ms, p99 **${percentile(lags, 99)} ms**, max ${lags.at(-1)} ms; seen ${lags.length}/${lag.offered} (load ${load()})\n`,
      );
    }

    // commit -> subscriber: manifest PUTs (each one event) at a steady rate through both nodes.
    bus = await NatsBus.connect({ servers: natsUrl, stream: env.WHARF_NATS_STREAM, subjectPrefix: env.WHARF_NATS_SUBJECTPREFIX });
    const latencies = new Map<string, number>();
    const unsubscribe = bus.subscribe('wharf.events.manifest.push', (_s, e: RegistryEvent) => {
      if (e.target.tag?.startsWith('s')) latencies.set(e.target.tag, Date.now() - Date.parse(e.timestamp));
    });
    await unsubscribe.ready;
    const total = RATE * SECONDS;
    const t0 = Date.now();
    const puts = new Set<Promise<void>>();
    let failed = 0;
    for (let i = 0; i < total; i++) {
      const wait = t0 + (i * 1000) / RATE - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // At most 32 in flight: past that the offered rate is not reached, which the report shows.
      const p: Promise<void> = putManifest(bases[i % 2]!, 'bench/app', `s${i}`, data.app.manifest)
        .catch(() => void failed++)
        .finally(() => puts.delete(p));
      puts.add(p);
      if (puts.size >= 32) await Promise.race(puts);
    }
    await Promise.all(puts);
    const putSeconds = (Date.now() - t0) / 1000;
    const deadline = Date.now() + 120_000;
    while (latencies.size < total - failed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const sorted = [...latencies.values()].sort((x, y) => x - y);
    out(
      `Commit → NATS subscriber, ${total} manifest PUTs offered at ${RATE}/s (achieved ${fmt(total / putSeconds)}/s): p50 ${percentile(sorted, 50)} ms, p99 **${percentile(sorted, 99)} ms**, max ${sorted.at(-1)} ms; received ${latencies.size}/${total - failed}, PUTs failed ${failed} (load ${load()})\n`,
    );
    unsubscribe();

    const split = SPLIT_CPUS ? splitCpus([process.pid, on.pid], [worker.pid!, off.pid]) : undefined;
    let idle: { rps: number; p99: number };
    let drain: Awaited<ReturnType<typeof drainUnderLoad>>;
    try {
      idle = await getLoad(`${on.base}${path}`, 5);
      drain = await drainUnderLoad(dbUrl.toString(), `${on.base}${path}`);
    } finally {
      split?.restore();
    }
    out('| mode | backlog | drain s | events/s | idle GET p99 ms | GET p99 ms while draining (3 s rounds) | worst / idle | GET req/s idle / draining |');
    out('|---|---:|---:|---:|---:|---|---:|---|');
    reportDrain(`cluster (relays of 2 nodes + worker)${SPLIT_CPUS ? ', GETs on CPU 0, the rest on CPU 1' : ''}`, idle, drain);
    out(`\n(load average after: ${load()})`);
  } finally {
    await bus?.close();
    for (const r of started) await r.stop();
    worker.kill('SIGTERM');
    await new Promise((r) => (worker.exitCode !== null ? r(null) : worker.once('exit', r)));
    const c = new pg.Client({ connectionString: serverUrl });
    await c.connect();
    await c.query(`drop database if exists ${dbName} with (force)`);
    await c.end();
    const nb = await NatsBus.connect({ servers: natsUrl, stream: env.WHARF_NATS_STREAM, subjectPrefix: env.WHARF_NATS_SUBJECTPREFIX });
    await nb.jsm.streams.delete(env.WHARF_NATS_STREAM!).catch(() => {});
    await nb.close();
    for (const r of started) await rm(r.dir, { recursive: true, force: true });
    await rm(scratch, { recursive: true, force: true });
  }
}

const data = makeDataset();
out(
  `# Event pipeline (${new Date().toISOString()}, backlog ${BACKLOG} naming ${BACKLOG_TAGS === 'read' ? 'the tag read' : 'other tags of the repository read'}, steady ${RATE}/s for ${SECONDS} s)`,
);
if (ONLY !== 'cluster') await embedded(data);
if (ONLY !== 'embedded') await cluster(data);
