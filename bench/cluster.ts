// `npm run bench -- --cluster`: Wharf in cluster mode (two API nodes on s3rver, PostgreSQL and NATS)
// next to CNCF Distribution 2.8.2 in the same run, plus s3rver alone as the ceiling of the S3 side.
import { execFileSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { startLocalS3, type LocalS3 } from '../services/cli/local-s3.js';
import { compare, warmUp, type LoadResult } from './load.js';
import { writeLayout } from './oci-layout.js';
import { startDistribution, startWharfNode, WHARF_ROOT, type RunningRegistry } from './registries.js';
import { cpuSecondsOf, RssSampler } from './rss.js';
import { APP_REPO, drain, makeDataset, OCI_MANIFEST, pushChunked, seed, type Dataset } from './seed.js';
import { WHARF_MAIN } from './wharf-main.js';

const CONNECTIONS = 32;
const LAYERS = 3;
const LAYER_BYTES = 21 * 1024 * 1024;
const BIG_CHUNK = 64 * 1024 * 1024;
const MiB = 1024 * 1024;

export interface ClusterOptions {
  seconds: number;
  pushes: number;
  /** Size of the chunked big-blob upload through both nodes (0: skipped). */
  bigMiB: number;
  cases: string[];
  /** Distribution listens here, s3rver on the next port, the two nodes on the two after, a redirecting node on the fifth. */
  portBase: number;
  skopeo(args: string[]): Promise<number>;
  log(line: string): void;
  version: string;
}

const median = (xs: number[]) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a');
const mb = (kib: number) => `${fmt(kib / 1024)} MiB`;
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? `${fmt(a / b, 2)}x` : 'n/a');

/** Per side and direction: MiB/s of each run and CPU seconds per MiB of the processes that matter. */
interface Moves {
  mibps: number[];
  /** CPU s per MiB, per process label, per run. */
  cpu: Map<string, number[]>;
  /** Cores busy on average during the run, per process label. */
  cores: Map<string, number[]>;
}
const emptyMoves = (): Moves => ({ mibps: [], cpu: new Map(), cores: new Map() });
const push = (m: Map<string, number[]>, k: string, v: number) => m.set(k, [...(m.get(k) ?? []), v]);

/** Runs `task` and books its MiB/s and each process's CPU per MiB and busy cores into `into`. */
async function measured(into: Moves, mib: number, processes: Array<{ label: string; pid: number }>, task: () => Promise<void>): Promise<number> {
  const before = processes.map((p) => cpuSecondsOf(p.pid));
  const t = performance.now();
  await task();
  const seconds = (performance.now() - t) / 1000;
  into.mibps.push(mib / seconds);
  processes.forEach((p, i) => {
    const cpu = cpuSecondsOf(p.pid) - before[i]!;
    push(into.cpu, p.label, cpu / mib);
    push(into.cores, p.label, cpu / seconds);
  });
  return seconds;
}

/** A fresh database on the bench's PostgreSQL, dropped by drop(). */
export async function createDatabase(adminUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `wharf_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** s3rver alone: `count` objects of `bytes` written at once, then read back at once, through the same SDK settings as Wharf. */
async function s3Alone(s3: LocalS3, count: number, bytes: number, into: { put: Moves; get: Moves }): Promise<void> {
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const keys = Array.from({ length: count }, () => `alone/${randomBytes(8).toString('hex')}`);
  const bodies = keys.map(() => randomBytes(bytes));
  const mib = (count * bytes) / MiB;
  const procs = [{ label: 's3rver', pid: s3.pid! }];
  await measured(into.put, mib, procs, async () => {
    await Promise.all(keys.map((Key, i) => client.send(new PutObjectCommand({ Bucket: s3.bucket, Key, Body: bodies[i], ContentLength: bytes }))));
  });
  await measured(into.get, mib, procs, async () => {
    await Promise.all(
      keys.map(async (Key) => {
        const res = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key }));
        for await (const _ of res.Body as AsyncIterable<Buffer>) {
          // discard
        }
      }),
    );
  });
  client.destroy();
}

/** Concurrent GET loops for the blob GET cases; the same client for every side, so the ratios compare servers. */
const BLOB_WORKERS = 16;

interface GetLoopResult {
  mibps: number;
  requests: number;
  redirects: number;
}

/** One GET on a keep-alive agent: status, Location and the body's length (the bytes are discarded). */
function getOnce(agent: Agent, url: string): Promise<{ status: number; location?: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    request(url, { agent }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, bytes }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

/**
 * BLOB_WORKERS loops of GETs for `seconds`, round-robin over `urls`, each following one 307 as a
 * client does with storage.s3.redirect; every answer must be 200 with `size` bytes.
 */
async function getLoop(urls: string[], size: number, seconds: number): Promise<GetLoopResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 2 * BLOB_WORKERS });
  let bytes = 0;
  let requests = 0;
  let redirects = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: BLOB_WORKERS }, async (_, w) => {
        for (let i = w; performance.now() < end; i++) {
          let r = await getOnce(agent, urls[i % urls.length]!);
          if (r.status === 307 && r.location) {
            redirects++;
            r = await getOnce(agent, r.location);
          }
          if (r.status !== 200 || r.bytes !== size) throw new Error(`blob GET ${urls[i % urls.length]}: ${r.status}, ${r.bytes} bytes`);
          bytes += r.bytes;
          requests++;
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return { mibps: bytes / MiB / ((performance.now() - start) / 1000), requests, redirects };
}

/** Each side's getLoop in A B B A halves; the MiB/s of the two halves together, per side. */
async function compareGets(sides: Array<{ urls: string[] }>, size: number, seconds: number): Promise<GetLoopResult[]> {
  const order = [...sides.keys(), ...[...sides.keys()].reverse()];
  const halves: GetLoopResult[][] = sides.map(() => []);
  for (const i of order) halves[i]!.push(await getLoop(sides[i]!.urls, size, seconds / 2));
  return halves.map((h) => ({
    mibps: h.reduce((a, b) => a + b.mibps, 0) / h.length,
    requests: h.reduce((a, b) => a + b.requests, 0),
    redirects: h.reduce((a, b) => a + b.redirects, 0),
  }));
}

async function outboxDrained(url: string, log: (line: string) => void): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const left = Number((await client.query('select count(*) as n from outbox where published_at is null')).rows[0].n);
      if (left === 0) return;
      if (Date.now() > deadline) return log(`cluster: ${left} outbox rows still unpublished after 120 s; measuring anyway`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await client.end();
  }
}

export async function runClusterBench(opts: ClusterOptions): Promise<string> {
  const log = opts.log;
  const DISTRIBUTION_PORT = opts.portBase;
  const S3_PORT = opts.portBase + 1;
  const NODE_PORTS = [opts.portBase + 2, opts.portBase + 3];
  const adminUrl = process.env.WHARF_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const natsUrl = process.env.WHARF_BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
  const scratch = await mkdtemp(join(tmpdir(), 'wharf-bench-cluster-'));
  const started: RunningRegistry[] = [];
  let s3: LocalS3 | undefined;
  let db: Awaited<ReturnType<typeof createDatabase>> | undefined;
  let sampler: RssSampler | undefined;
  const cleanup = async () => {
    sampler?.stop();
    for (const r of [...started].reverse()) await r.stop().catch((err) => log(`stopping ${r.name}: ${err}`));
    await s3?.close();
    await db?.drop().catch((err) => log(`dropping the bench database: ${err}`));
    for (const dir of [scratch, ...started.map((r) => r.dir)]) await rm(dir, { recursive: true, force: true });
  };
  try {
    log(`cluster: database on ${new URL(adminUrl).host}, NATS ${natsUrl}, s3rver on ${S3_PORT}`);
    db = await createDatabase(adminUrl);
    const suffix = randomBytes(4).toString('hex');
    s3 = await startLocalS3({ bucket: `wharf-bench-${suffix}`, dataDir: join(scratch, 's3rver'), port: S3_PORT });
    const env: Record<string, string> = {
      WHARF_DATABASE_URL: db.url,
      WHARF_NATS_URL: natsUrl,
      WHARF_NATS_STREAM: `WHARF_BENCH_${suffix.toUpperCase()}`,
      WHARF_NATS_SUBJECTPREFIX: `wharfbench${suffix}`,
      WHARF_STORAGE_DRIVER: 's3',
      WHARF_S3_ENDPOINT: s3.endpoint,
      WHARF_S3_BUCKET: s3.bucket,
      WHARF_S3_FORCEPATHSTYLE: 'true',
      WHARF_S3_ACCESSKEYID: s3.accessKeyId,
      WHARF_S3_SECRETACCESSKEY: s3.secretAccessKey,
    };
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_')));
    execFileSync(process.execPath, [WHARF_MAIN, 'migrate'], { cwd: WHARF_ROOT, env: { ...inherited, ...env, WHARF_LOG_LEVEL: 'warn' }, stdio: 'ignore' });

    const dist = await startDistribution(DISTRIBUTION_PORT);
    started.push(dist);
    const nodes: RunningRegistry[] = [];
    for (const [i, port] of NODE_PORTS.entries()) {
      const node = await startWharfNode(`Wharf node ${'AB'[i]}`, port, { ...env, WHARF_EVENTS_INSTANCEID: `bench-node-${i}` });
      started.push(node);
      nodes.push(node);
    }
    const [nodeA, nodeB] = nodes as [RunningRegistry, RunningRegistry];
    // Only for the blob GET case: the same cluster, answering blob GETs with a 307 to a presigned URL.
    const redirecting = await startWharfNode('Wharf node C (redirect)', opts.portBase + 4, { ...env, WHARF_EVENTS_INSTANCEID: 'bench-node-redirect', WHARF_S3_REDIRECT: 'true' });
    started.push(redirecting);
    sampler = new RssSampler([
      { label: 'Distribution', pid: dist.pid },
      { label: nodeA.name, pid: nodeA.pid },
      { label: nodeB.name, pid: nodeB.pid },
      { label: 's3rver', pid: s3.pid! },
    ]);
    sampler.start();

    const data: Dataset = makeDataset();
    sampler.enter('seed');
    log('cluster: seeding Distribution and the cluster (through node A)');
    await seed(dist.base, data);
    await seed(nodeA.base, data);

    // The relays publish the seeding's outbox rows to NATS; let them finish before anything is timed.
    await outboxDrained(db.url, log);

    sampler.enter('reads');
    const reads: Array<{ name: string; dist: LoadResult; wharf: LoadResult }> = [];
    const cases: Array<[string, 'GET' | 'HEAD', string]> = [
      ['manifest HEAD by tag', 'HEAD', 'latest'],
      ['manifest GET by tag', 'GET', 'latest'],
      ['manifest GET by digest', 'GET', data.app.digest],
      ['manifest HEAD by digest', 'HEAD', data.app.digest],
    ];
    const selected = cases.filter(([n]) => opts.cases.length === 0 || opts.cases.some((c) => n.includes(c)));
    // A warm-up of every case on both sides first: fresh nodes fill their connection pools and JIT
    // their hot paths over the first seconds, which would otherwise land on the first case alone.
    for (const [, method, ref] of selected) {
      const path = `/v2/${APP_REPO}/manifests/${ref}`;
      for (const target of [`${dist.base}${path}`, [`${nodeA.base}${path}`, `${nodeB.base}${path}`]]) {
        await warmUp(target, { method, headers: { accept: OCI_MANIFEST }, connections: CONNECTIONS }, 2);
      }
    }
    for (const [name, method, ref] of selected) {
      const path = `/v2/${APP_REPO}/manifests/${ref}`;
      for (const r of [dist, nodeA, nodeB]) {
        const res = await fetch(`${r.base}${path}`, { method, headers: { accept: OCI_MANIFEST } });
        await res.arrayBuffer();
        if (res.status !== 200 || res.headers.get('docker-content-digest') !== data.app.digest) throw new Error(`${r.name} ${name}: ${res.status}`);
      }
      const [d, w] = await compare(`${dist.base}${path}`, [`${nodeA.base}${path}`, `${nodeB.base}${path}`], {
        method,
        headers: { accept: OCI_MANIFEST },
        connections: CONNECTIONS,
        seconds: opts.seconds,
        warmupSeconds: 1,
      });
      log(`cluster: ${name}: Distribution ${fmt(d.reqPerSec)} req/s, cluster ${fmt(w.reqPerSec)} req/s`);
      reads.push({ name, dist: d, wharf: w });
    }

    let blobGets: { size: number; dist: GetLoopResult; wharf: GetLoopResult; s3: GetLoopResult; redirect: GetLoopResult } | undefined;
    if (opts.cases.length === 0 || opts.cases.some((c) => 'blob GET'.includes(c))) {
      // The 1 MiB layer: through the two nodes, straight from s3rver (a presigned GET of the object
      // the nodes read, with the same client: what the S3 server alone serves), and through the
      // redirecting node (307, then that presigned GET).
      const layer = data.app.layer;
      const path = `/v2/${APP_REPO}/blobs/${layer.digest}`;
      const direct = await getOnce(new Agent(), `${nodeA.base}${path}`);
      if (direct.status !== 200 || direct.bytes !== layer.bytes.length) throw new Error(`cluster blob GET: ${direct.status}, ${direct.bytes} bytes`);
      const probe = await fetch(`${redirecting.base}${path}`, { redirect: 'manual' });
      await probe.arrayBuffer();
      const location = probe.headers.get('location');
      if (probe.status !== 307 || !location) throw new Error(`redirecting node: ${probe.status}`);
      // The presigned URL the redirect hands out (valid storage.s3.redirectexpiry, 900 s): the object the nodes read.
      const presigned = location;
      log('cluster: blob GET 1 MiB: Distribution, the two nodes, s3rver alone, the redirecting node');
      const [d, w, alone, r] = await compareGets(
        [{ urls: [`${dist.base}${path}`] }, { urls: [`${nodeA.base}${path}`, `${nodeB.base}${path}`] }, { urls: [presigned] }, { urls: [`${redirecting.base}${path}`] }],
        layer.bytes.length,
        opts.seconds,
      );
      blobGets = { size: layer.bytes.length, dist: d!, wharf: w!, s3: alone!, redirect: r! };
      log(
        `cluster: blob GET 1 MiB: Distribution ${fmt(d!.mibps, 1)}, nodes ${fmt(w!.mibps, 1)}, s3rver alone ${fmt(alone!.mibps, 1)}, redirect ${fmt(r!.mibps, 1)} MiB/s (${r!.redirects} redirects)`,
      );
    }
    await redirecting.stop();

    // Push and pull: two skopeo copies at once (each a fresh 3-layer image), to Distribution twice or to node A and node B.
    sampler.enter('push');
    const transfer = { dist: { push: emptyMoves(), pull: emptyMoves() }, wharf: { push: emptyMoves(), pull: emptyMoves() } };
    const s3only = { put: emptyMoves(), get: emptyMoves() };
    const imageMiB = (LAYERS * LAYER_BYTES) / MiB; // plus a config of a few hundred bytes
    const wharfProcs = [...nodes.map((n) => ({ label: n.name, pid: n.pid })), { label: 's3rver', pid: s3.pid! }];
    const distProcs = [{ label: 'Distribution', pid: dist.pid }];
    for (let run = 1; run <= opts.pushes; run++) {
      const sides = run % 2 === 1 ? (['dist', 'wharf'] as const) : (['wharf', 'dist'] as const);
      for (const side of sides) {
        const targets = side === 'dist' ? [dist, dist] : [nodeA, nodeB];
        const layouts = await Promise.all(targets.map((_, i) => writeLayout(join(scratch, `layout-${side}-${run}-${i}`), { layers: LAYERS, layerBytes: LAYER_BYTES, ref: 'v1' })));
        const refs = targets.map((r, i) => `docker://${new URL(r.base).host}/bench/cpush-${run}-${i}:v1`);
        const procs = side === 'dist' ? distProcs : wharfProcs;
        const pushS = await measured(transfer[side].push, 2 * imageMiB, procs, async () => {
          await Promise.all(refs.map((ref, i) => opts.skopeo(['copy', '--quiet', '--dest-tls-verify=false', `oci:${join(scratch, `layout-${side}-${run}-${i}`)}:v1`, ref])));
        });
        // Pull each image through the other node than the one it was pushed to.
        const pullS = await measured(transfer[side].pull, 2 * imageMiB, procs, async () => {
          const via = (i: number) => `docker://${new URL(targets[(i + 1) % targets.length]!.base).host}/bench/cpush-${run}-${i}:v1`;
          await Promise.all(refs.map((_, i) => opts.skopeo(['copy', '--quiet', '--src-tls-verify=false', via(i), `oci:${join(scratch, `pulled-${side}-${run}-${i}`)}:v1`])));
        });
        log(`cluster: ${side} run ${run}: push ${fmt((2 * imageMiB) / pushS, 1)} MiB/s, pull ${fmt((2 * imageMiB) / pullS, 1)} MiB/s`);
        for (const [i] of layouts.entries()) {
          await rm(join(scratch, `layout-${side}-${run}-${i}`), { recursive: true, force: true });
          await rm(join(scratch, `pulled-${side}-${run}-${i}`), { recursive: true, force: true });
        }
      }
      await s3Alone(s3, 2 * LAYERS, LAYER_BYTES, s3only);
      log(`cluster: s3rver alone run ${run}: in ${fmt(s3only.put.mibps.at(-1)!, 1)} MiB/s, out ${fmt(s3only.get.mibps.at(-1)!, 1)} MiB/s`);
    }

    let big: { mib: number; up: number; down: number } | undefined;
    if (opts.bigMiB > 0) {
      sampler.enter('big-idle');
      await new Promise((r) => setTimeout(r, 1500));
      sampler.enter('big-upload');
      log(`cluster: a ${opts.bigMiB} MiB blob in ${BIG_CHUNK / MiB} MiB PATCHes alternating between the nodes`);
      let t = performance.now();
      const digest = await pushChunked([nodeA.base, nodeB.base], 'bench/big', opts.bigMiB * MiB, BIG_CHUNK);
      const up = (performance.now() - t) / 1000;
      sampler.enter('big-download');
      t = performance.now();
      const got = await drain(`${nodeB.base}/v2/bench/big/blobs/${digest}`);
      const down = (performance.now() - t) / 1000;
      if (got !== opts.bigMiB * MiB) throw new Error(`big blob GET returned ${got} bytes`);
      big = { mib: opts.bigMiB, up, down };
    }
    sampler.enter('done');
    return render({ opts, reads, blobGets, transfer, s3only, sampler, nodes: nodes.map((n) => n.name), big, imageMiB });
  } finally {
    await cleanup();
  }
}

interface ClusterReport {
  opts: ClusterOptions;
  reads: Array<{ name: string; dist: LoadResult; wharf: LoadResult }>;
  blobGets?: { size: number; dist: GetLoopResult; wharf: GetLoopResult; s3: GetLoopResult; redirect: GetLoopResult };
  transfer: { dist: { push: Moves; pull: Moves }; wharf: { push: Moves; pull: Moves } };
  s3only: { put: Moves; get: Moves };
  sampler: RssSampler;
  nodes: string[];
  big?: { mib: number; up: number; down: number };
  imageMiB: number;
}

function render(rep: ClusterReport): string {
  const lines: string[] = [];
  const row = (...cells: string[]) => lines.push(`| ${cells.join(' | ')} |`);
  const ms = (xs: number[] | undefined) => `${fmt(median(xs ?? []) * 1000, 1)} ms`;
  const cores = (xs: number[] | undefined) => fmt(median(xs ?? []), 2);
  lines.push('# Wharf cluster (2 API nodes, s3rver, PostgreSQL, NATS) vs CNCF Distribution 2.8.2', '');
  lines.push(
    `${new Date().toISOString()} · Wharf ${rep.opts.version} · ${CONNECTIONS} connections (split between the two nodes for Wharf) · ${rep.opts.seconds} s per case and side (A B B A halves) · ` +
      `push/pull: two skopeo copies at once of fresh ${LAYERS} x ${LAYER_BYTES / MiB} MiB images (Wharf: one per node, each pulled back through the other node), median of ${rep.opts.pushes} runs · all on one 2-core machine`,
    '',
  );
  row('case', 'Distribution', 'Wharf cluster', 'ratio');
  row('---', '---:', '---:', '---:');
  for (const r of rep.reads) row(`${r.name}, req/s`, fmt(r.dist.reqPerSec), fmt(r.wharf.reqPerSec), ratio(r.wharf.reqPerSec, r.dist.reqPerSec));
  const bad = rep.reads.flatMap((r) => [r.dist, r.wharf]).reduce((n, x) => n + x.non2xx + x.errors, 0);
  const t = rep.transfer;
  const s = rep.s3only;
  const g = rep.blobGets;
  if (g) {
    row('blob GET 1 MiB (16 loops), MiB/s', fmt(g.dist.mibps, 1), fmt(g.wharf.mibps, 1), ratio(g.wharf.mibps, g.dist.mibps));
    row('s3rver alone: presigned GET of the same object, MiB/s', '', fmt(g.s3.mibps, 1), `cluster blob GET = ${ratio(g.wharf.mibps, g.s3.mibps)} of it`);
    row('blob GET with storage.s3.redirect (307 + presigned GET), MiB/s', '', fmt(g.redirect.mibps, 1), `${ratio(g.redirect.mibps, g.dist.mibps)} of Distribution`);
  }
  row('push (2 skopeo at once), MiB/s', fmt(median(t.dist.push.mibps), 1), fmt(median(t.wharf.push.mibps), 1), ratio(median(t.wharf.push.mibps), median(t.dist.push.mibps)));
  row('pull (2 skopeo at once), MiB/s', fmt(median(t.dist.pull.mibps), 1), fmt(median(t.wharf.pull.mibps), 1), ratio(median(t.wharf.pull.mibps), median(t.dist.pull.mibps)));
  row(
    `s3rver alone: ${2 * LAYERS} PUTs of ${LAYER_BYTES / MiB} MiB at once, MiB/s`,
    '',
    fmt(median(s.put.mibps), 1),
    `cluster push = ${ratio(median(t.wharf.push.mibps), median(s.put.mibps))} of it`,
  );
  row(
    `s3rver alone: ${2 * LAYERS} GETs of ${LAYER_BYTES / MiB} MiB at once, MiB/s`,
    '',
    fmt(median(s.get.mibps), 1),
    `cluster pull = ${ratio(median(t.wharf.pull.mibps), median(s.get.mibps))} of it`,
  );

  lines.push(
    '',
    `p50 / p99 latency, ms: ${rep.reads.map((r) => `${r.name}: Distribution ${fmt(r.dist.p50, 1)} / ${fmt(r.dist.p99, 1)}, cluster ${fmt(r.wharf.p50, 1)} / ${fmt(r.wharf.p99, 1)}`).join('; ')}. Non-2xx answers and errors: ${bad}.`,
  );
  lines.push('', '## CPU per MiB moved and busy cores (medians)', '');
  row('process', 'push CPU/MiB', 'push cores busy', 'pull CPU/MiB', 'pull cores busy');
  row('---', '---:', '---:', '---:', '---:');
  row(
    'Distribution',
    ms(t.dist.push.cpu.get('Distribution')),
    cores(t.dist.push.cores.get('Distribution')),
    ms(t.dist.pull.cpu.get('Distribution')),
    cores(t.dist.pull.cores.get('Distribution')),
  );
  for (const n of rep.nodes) row(n, ms(t.wharf.push.cpu.get(n)), cores(t.wharf.push.cores.get(n)), ms(t.wharf.pull.cpu.get(n)), cores(t.wharf.pull.cores.get(n)));
  const sum = (m: Moves) => (m.cpu.size ? rep.nodes.map((n) => median(m.cpu.get(n) ?? [])).reduce((a, b) => a + b, 0) : NaN);
  row('both API nodes', `${fmt(sum(t.wharf.push) * 1000, 1)} ms`, '', `${fmt(sum(t.wharf.pull) * 1000, 1)} ms`, '');
  row(
    's3rver, under the cluster',
    ms(t.wharf.push.cpu.get('s3rver')),
    cores(t.wharf.push.cores.get('s3rver')),
    ms(t.wharf.pull.cpu.get('s3rver')),
    cores(t.wharf.pull.cores.get('s3rver')),
  );
  row('s3rver, alone', ms(s.put.cpu.get('s3rver')), cores(s.put.cores.get('s3rver')), ms(s.get.cpu.get('s3rver')), cores(s.get.cores.get('s3rver')));
  lines.push(
    '',
    `Per run: Distribution push ${t.dist.push.mibps.map((x) => fmt(x, 1)).join(', ')}; cluster push ${t.wharf.push.mibps.map((x) => fmt(x, 1)).join(', ')}; ` +
      `Distribution pull ${t.dist.pull.mibps.map((x) => fmt(x, 1)).join(', ')}; cluster pull ${t.wharf.pull.mibps.map((x) => fmt(x, 1)).join(', ')}; ` +
      `s3rver alone in ${s.put.mibps.map((x) => fmt(x, 1)).join(', ')}, out ${s.get.mibps.map((x) => fmt(x, 1)).join(', ')} (MiB/s).`,
  );

  lines.push('', '## Peak VmRSS per phase (sampled every 100 ms)', '');
  const phases = ['idle', 'seed', 'reads', 'push', 'big-upload', 'big-download'];
  row('process', 'after start', 'seeding', 'read load', 'push/pull', 'big blob upload', 'big blob download');
  row('---', '---:', '---:', '---:', '---:', '---:', '---:');
  for (const label of ['Distribution', ...rep.nodes, 's3rver']) row(label, ...phases.map((p) => (rep.sampler.peaks.has(p) ? mb(rep.sampler.peak(label, [p])) : 'n/a')));
  if (rep.big) {
    const b = rep.big;
    lines.push(
      '',
      `Big blob: ${fmt(b.mib)} MiB in ${BIG_CHUNK / MiB} MiB PATCHes alternating between node A and node B at ${fmt(b.mib / b.up, 1)} MiB/s, read back through node B at ${fmt(b.mib / b.down, 1)} MiB/s.`,
    );
  }
  return lines.join('\n') + '\n';
}
