// Side-by-side benchmark of CNCF Distribution 2.8.2 and Wharf (embedded mode) on loopback.
// Usage: npm run bench [-- --no-big] [--big-mib N] [--seconds N] [--pushes N] [--cases tags,manifest|none] [--port-base N] [--cluster]
import { execFileSync, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runClusterBench } from './cluster.js';
import { compare, type LoadResult } from './load.js';
import { writeLayout } from './oci-layout.js';
import { startDistribution, startWharfProcess, WHARF_ROOT, type RunningRegistry } from './registries.js';
import { cpuSecondsOf, memoryOf, RssSampler } from './rss.js';
import { APP_REPO, drain, HttpError, makeDataset, OCI_MANIFEST, pushChunked, seed, sha256, TAG_COUNT, TAGS_REPO, type Dataset } from './seed.js';

/** Embedded benchmark's ports without --port-base: Distribution on P, Wharf on P+1. */
const EMBEDDED_PORT_BASE = 5201;
const CLUSTER_PORT_BASE = 5203;
const CONNECTIONS = 32;
const LAYERS = 3;
const LAYER_BYTES = 21 * 1024 * 1024;
const BIG_CHUNK = 64 * 1024 * 1024;
const MiB = 1024 * 1024;

interface Options {
  big: boolean;
  bigMiB: number;
  seconds: number;
  pushes: number;
  /** Only the read cases whose name contains one of these (all when empty; `none` matches none). */
  cases: string[];
  /** The cluster benchmark (bench/cluster.ts) instead of the embedded one. */
  cluster: boolean;
  /** First port: the embedded benchmark's two (Distribution, Wharf) or the cluster benchmark's four (Distribution, s3rver, node A, node B). */
  portBase?: number;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { big: true, bigMiB: 2048, seconds: 8, pushes: 3, cases: [], cluster: false };
  const number = (flag: string, value: string | undefined) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} needs a positive number, got ${value}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--no-big') opts.big = false;
    else if (arg === '--big-mib') opts.bigMiB = number(arg, argv[++i]);
    else if (arg === '--seconds') opts.seconds = number(arg, argv[++i]);
    else if (arg === '--pushes') opts.pushes = argv[i + 1] === '0' ? (i++, 0) : Math.round(number(arg, argv[++i]));
    else if (arg === '--cluster') opts.cluster = true;
    else if (arg === '--port-base') opts.portBase = Math.round(number(arg, argv[++i]));
    else if (arg === '--cases') opts.cases = (argv[++i] ?? '').split(',').filter(Boolean);
    else
      throw new Error(
        `unknown argument ${arg}\nusage: npm run bench [-- --no-big] [--big-mib N] [--seconds N] [--pushes N] [--cases tags,manifest|none] [--port-base N] [--cluster]`,
      );
  }
  return opts;
}

const log = (line: string) => console.error(`[bench] ${line}`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// ---------------------------------------------------------------- read cases

interface ReadCase {
  name: string;
  unit: 'req/s' | 'MiB/s';
  method: 'GET' | 'HEAD';
  path: string;
  accept?: string;
  /** One request checked before the load, so a fast error never passes for a fast answer. */
  check(res: Response, body: Buffer): string | undefined;
}

function readCases(data: Dataset): ReadCase[] {
  const manifest = (method: 'GET' | 'HEAD', ref: string): ReadCase => ({
    name: `manifest ${method} by ${ref.startsWith('sha256:') ? 'digest' : 'tag'}`,
    unit: 'req/s',
    method,
    path: `/v2/${APP_REPO}/manifests/${ref}`,
    accept: OCI_MANIFEST,
    check: (res, body) => {
      if (res.headers.get('docker-content-digest') !== data.app.digest) return `Docker-Content-Digest ${res.headers.get('docker-content-digest')}`;
      if (Number(res.headers.get('content-length')) !== Buffer.byteLength(data.app.manifest)) return `Content-Length ${res.headers.get('content-length')}`;
      if (method === 'GET' && body.toString() !== data.app.manifest) return 'body differs from the manifest pushed';
      return undefined;
    },
  });
  return [
    manifest('HEAD', 'latest'),
    manifest('GET', 'latest'),
    manifest('GET', data.app.digest),
    manifest('HEAD', data.app.digest),
    {
      name: `tags/list (${TAG_COUNT.toLocaleString('en-US')} tags)`,
      unit: 'req/s',
      method: 'GET',
      path: `/v2/${TAGS_REPO}/tags/list`,
      check: (_res, body) => {
        const tags = (JSON.parse(body.toString()) as { tags?: string[] }).tags ?? [];
        return tags.length === TAG_COUNT ? undefined : `${tags.length} tags`;
      },
    },
    {
      name: 'blob GET (1 MiB)',
      unit: 'MiB/s',
      method: 'GET',
      path: `/v2/${APP_REPO}/blobs/${data.bigBlob.digest}`,
      check: (_res, body) => (sha256(body) === data.bigBlob.digest ? undefined : `body of ${body.length} bytes has the wrong digest`),
    },
  ];
}

async function checkOnce(r: RunningRegistry, c: ReadCase): Promise<void> {
  const url = `${r.base}${c.path}`;
  const res = await fetch(url, { method: c.method, headers: c.accept ? { accept: c.accept } : {} });
  const body = Buffer.from(await res.arrayBuffer());
  const problem = res.status !== 200 ? `status ${res.status}` : c.check(res, body);
  if (problem) {
    const headers = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n  ');
    throw new HttpError(`${r.name} ${c.name}: ${problem}\n> ${c.method} ${url}\n< ${res.status}\n  ${headers}\n\n${body.toString().slice(0, 2000)}`);
  }
}

// ---------------------------------------------------------------- skopeo push / pull

function skopeo(args: string[], timeoutMs = 180_000): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('/usr/bin/skopeo', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code === 0) resolvePromise(seconds);
      else reject(new Error(`skopeo ${args.join(' ')}: ${code ?? signal}\n${stderr}`));
    });
  });
}

interface Transfer {
  pushMiBps: number[];
  pullMiBps: number[];
  /** The registry process's CPU seconds per MiB moved, per run. */
  pushCpuPerMiB: number[];
  pullCpuPerMiB: number[];
}

const emptyTransfer = (): Transfer => ({ pushMiBps: [], pullMiBps: [], pushCpuPerMiB: [], pullCpuPerMiB: [] });

async function pushAndPull(r: RunningRegistry, scratch: string, run: number, result: Transfer): Promise<void> {
  const layoutDir = join(scratch, `layout-${r.name}-${run}`);
  const pullDir = join(scratch, `pulled-${r.name}-${run}`);
  const layout = await writeLayout(layoutDir, { layers: LAYERS, layerBytes: LAYER_BYTES, ref: 'v1' });
  const ref = `docker://${new URL(r.base).host}/bench/push-${run}:v1`;
  try {
    const cpu0 = cpuSecondsOf(r.pid);
    const push = await skopeo(['copy', '--quiet', '--dest-tls-verify=false', `oci:${layoutDir}:v1`, ref]);
    const cpu1 = cpuSecondsOf(r.pid);
    const pull = await skopeo(['copy', '--quiet', '--src-tls-verify=false', ref, `oci:${pullDir}:v1`]);
    const cpu2 = cpuSecondsOf(r.pid);
    const mib = layout.totalBytes / MiB;
    result.pushMiBps.push(mib / push);
    result.pullMiBps.push(mib / pull);
    result.pushCpuPerMiB.push((cpu1 - cpu0) / mib);
    result.pullCpuPerMiB.push((cpu2 - cpu1) / mib);
    log(`${r.name} push ${run}: ${mib.toFixed(1)} MiB in ${push.toFixed(2)} s; pull ${pull.toFixed(2)} s`);
  } finally {
    await rm(layoutDir, { recursive: true, force: true });
    await rm(pullDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- report

/** Which Wharf was measured: commit of WHARF_ROOT, and whether its work tree had uncommitted changes. */
function wharfVersion(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', WHARF_ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' + uncommitted changes' : ''}`;
  } catch {
    return 'unknown commit';
  }
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const mb = (kib: number) => `${fmt(kib / 1024)} MiB`;
const ratio = (wharf: number, dist: number) => (dist > 0 ? `${fmt(wharf / dist, 2)}x` : 'n/a');
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

interface BigResult {
  mib: number;
  uploadSeconds: number;
  downloadSeconds: number;
  distUploadSeconds: number;
  /** The GETs of the D W W D round, seconds each. */
  getSeconds: { dist: number[]; wharf: number[] };
  /** Peak Wharf node VmRSS (KiB) idle before, during the upload, during the download. */
  before: number;
  upload: number;
  download: number;
}

interface Report {
  opts: Options;
  version: string;
  reads: Array<{ c: ReadCase; dist: LoadResult; wharf: LoadResult }>;
  seed: { dist: number; wharf: number };
  transfer: { dist: Transfer; wharf: Transfer };
  rss: RssSampler;
  hwm: { dist: number; wharf: number };
  big?: BigResult;
}

function render(rep: Report): string {
  const lines: string[] = [];
  const row = (...cells: string[]) => lines.push(`| ${cells.join(' | ')} |`);
  const headline = (r: LoadResult, unit: string) => (unit === 'MiB/s' ? r.mibPerSec : r.reqPerSec);

  lines.push(`# Wharf vs CNCF Distribution 2.8.2`, '');
  lines.push(
    `${new Date().toISOString()} · ${CONNECTIONS} connections · ${rep.opts.seconds} s per case and registry (1 s warm-up each, then halves in A B B A order) · ` +
      `push/pull: median of ${rep.opts.pushes} skopeo runs of a ${LAYERS}-layer image (${LAYERS} x ${LAYER_BYTES / MiB} MiB, incompressible) · loopback`,
    '',
    `Wharf: ${rep.version} (embedded mode, embedded PostgreSQL) · Distribution: docker-registry 2.8.2 (filesystem, inmemory blob descriptor cache, access log off)`,
    '',
  );
  row('case', 'Distribution', 'Wharf', 'ratio (Wharf/Distribution)');
  row('---', '---:', '---:', '---:');
  for (const { c, dist, wharf } of rep.reads) {
    const d = headline(dist, c.unit);
    const w = headline(wharf, c.unit);
    row(`${c.name}, ${c.unit}`, fmt(d, c.unit === 'MiB/s' ? 1 : 0), fmt(w, c.unit === 'MiB/s' ? 1 : 0), ratio(w, d));
  }
  const push = { d: median(rep.transfer.dist.pushMiBps), w: median(rep.transfer.wharf.pushMiBps) };
  const pull = { d: median(rep.transfer.dist.pullMiBps), w: median(rep.transfer.wharf.pullMiBps) };
  row('push, skopeo, MiB/s (median)', fmt(push.d, 1), fmt(push.w, 1), ratio(push.w, push.d));
  row('pull, skopeo, MiB/s (median)', fmt(pull.d, 1), fmt(pull.w, 1), ratio(pull.w, pull.d));
  row(`seeding: ${TAG_COUNT} tag PUTs, 8 in flight, PUT/s`, fmt(rep.seed.dist), fmt(rep.seed.wharf), ratio(rep.seed.wharf, rep.seed.dist));
  const pgPss = rep.rss.peak('Wharf PostgreSQL (sum PSS)', ['seed', 'reads', 'push']);
  const distPeak = rep.rss.peak('Distribution');
  const nodePeak = rep.rss.peak('Wharf node', ['seed', 'reads', 'push']);
  row('peak RSS under load (Wharf: node process)', mb(distPeak), mb(nodePeak), ratio(nodePeak, distPeak));
  row('peak RSS under load (Wharf: node + PostgreSQL PSS)', mb(distPeak), mb(nodePeak + pgPss), ratio(nodePeak + pgPss, distPeak));

  lines.push('', '## Latency and detail', '');
  row('case', 'registry', 'req/s', 'p50 ms', 'p99 ms', 'MiB/s', 'requests', 'non-2xx', 'errors');
  row('---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:');
  for (const { c, dist, wharf } of rep.reads) {
    for (const [name, r] of [
      ['Distribution', dist],
      ['Wharf', wharf],
    ] as const) {
      row(c.name, name, fmt(r.reqPerSec), fmt(r.p50, 1), fmt(r.p99, 1), fmt(r.mibPerSec, 1), fmt(r.requests), fmt(r.non2xx), fmt(r.errors));
    }
  }
  const runs = (xs: number[]) => xs.map((x) => fmt(x, 1)).join(', ');
  lines.push('', `Push MiB/s per run: Distribution ${runs(rep.transfer.dist.pushMiBps)}; Wharf ${runs(rep.transfer.wharf.pushMiBps)}.`);
  lines.push(`Pull MiB/s per run: Distribution ${runs(rep.transfer.dist.pullMiBps)}; Wharf ${runs(rep.transfer.wharf.pullMiBps)}.`);
  const ms = (xs: number[]) => `${fmt(median(xs) * 1000, 1)} ms`;
  lines.push(
    `Registry process CPU per MiB (median; Wharf: the node process, its PostgreSQL not counted): push Distribution ${ms(rep.transfer.dist.pushCpuPerMiB)}, Wharf ${ms(rep.transfer.wharf.pushCpuPerMiB)}; ` +
      `pull Distribution ${ms(rep.transfer.dist.pullCpuPerMiB)}, Wharf ${ms(rep.transfer.wharf.pullCpuPerMiB)}.`,
  );

  lines.push('', '## Memory (VmRSS sampled every 100 ms; peak per phase)', '');
  const phases = ['idle', 'seed', 'reads', 'push'];
  row('process', 'after start', 'seeding', 'read load', 'skopeo push/pull', 'VmHWM before big blob');
  row('---', '---:', '---:', '---:', '---:', '---:');
  row('Distribution', ...phases.map((p) => mb(rep.rss.peak('Distribution', [p]))), mb(rep.hwm.dist));
  row('Wharf node', ...phases.map((p) => mb(rep.rss.peak('Wharf node', [p]))), mb(rep.hwm.wharf));
  row('Wharf PostgreSQL, sum of VmRSS', ...phases.map((p) => mb(rep.rss.peak('Wharf PostgreSQL (sum VmRSS)', [p]))), '');
  row('Wharf PostgreSQL, sum of PSS', ...phases.map((p) => mb(rep.rss.peak('Wharf PostgreSQL (sum PSS)', [p]))), '');
  lines.push('', 'The PostgreSQL sum of VmRSS counts shared buffers once per backend; PSS splits shared pages between the processes and is the fairer total.');

  lines.push('', '## Big blob', '');
  if (rep.big) {
    const b = rep.big;
    lines.push(
      `${fmt(b.mib)} MiB pushed in ${BIG_CHUNK / MiB} MiB PATCHes in ${fmt(b.uploadSeconds, 1)} s (${fmt(b.mib / b.uploadSeconds, 1)} MiB/s), ` +
        `read back in ${fmt(b.downloadSeconds, 1)} s (${fmt(b.mib / b.downloadSeconds, 1)} MiB/s).`,
      '',
      `Wharf node peak VmRSS: ${mb(b.before)} idle before · ${mb(b.upload)} during the upload · ${mb(b.download)} during the download.`,
      '',
      `Distribution: the same size pushed in ${fmt(b.distUploadSeconds, 1)} s (${fmt(b.mib / b.distUploadSeconds, 1)} MiB/s). ` +
        `GETs of the whole blob, D W W D: Distribution ${b.getSeconds.dist.map((x) => fmt(b.mib / x, 1)).join(', ')} MiB/s, Wharf ${b.getSeconds.wharf.map((x) => fmt(b.mib / x, 1)).join(', ')} MiB/s; ` +
        `big blob GET ratio (Wharf/Distribution, total time) ${ratio(sum(b.getSeconds.dist), sum(b.getSeconds.wharf))}.`,
    );
  } else {
    lines.push('Skipped (--no-big).');
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.cluster) return clusterMain(opts);
  const data = makeDataset();
  const registries: RunningRegistry[] = [];
  const scratch = await mkdtemp(join(tmpdir(), 'wharf-bench-scratch-'));
  let sampler: RssSampler | undefined;
  let report: Report | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      sampler?.stop();
      log('stopping registries');
      for (const r of [...registries].reverse()) await r.stop().catch((err) => log(`stopping ${r.name}: ${err}`));
      for (const dir of [scratch, ...registries.map((r) => r.dir)]) await rm(dir, { recursive: true, force: true });
    })());
  const interrupted = (signal: NodeJS.Signals) => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    log('starting Distribution and Wharf');
    const ports = opts.portBase ?? EMBEDDED_PORT_BASE;
    const dist = await startDistribution(ports);
    registries.push(dist);
    const wharf = await startWharfProcess(ports + 1);
    registries.push(wharf);
    sampler = new RssSampler([
      { label: 'Distribution', pid: dist.pid },
      { label: 'Wharf node', pid: wharf.pid, children: 'Wharf PostgreSQL' },
    ]);
    sampler.start();
    await new Promise((r) => setTimeout(r, 1000));

    sampler.enter('seed');
    const seedRate = async (r: RunningRegistry) => {
      const t = performance.now();
      await seed(r.base, data);
      return TAG_COUNT / ((performance.now() - t) / 1000);
    };
    log('seeding');
    const seedRates = { dist: await seedRate(dist), wharf: await seedRate(wharf) };

    sampler.enter('reads');
    const reads: Report['reads'] = [];
    const wanted = (c: ReadCase) => opts.cases.length === 0 || opts.cases.some((x) => c.name.includes(x));
    for (const c of readCases(data).filter(wanted)) {
      await checkOnce(dist, c);
      await checkOnce(wharf, c);
      const [d, w] = await compare(`${dist.base}${c.path}`, `${wharf.base}${c.path}`, {
        method: c.method,
        headers: c.accept ? { accept: c.accept } : undefined,
        connections: CONNECTIONS,
        seconds: opts.seconds,
        warmupSeconds: 1,
      });
      for (const [name, r] of [
        ['Distribution', d],
        ['Wharf', w],
      ] as const) {
        log(
          `${c.name} ${name}: ${fmt(r.reqPerSec)} req/s, ${fmt(r.mibPerSec, 1)} MiB/s, p50 ${fmt(r.p50, 1)} ms, p99 ${fmt(r.p99, 1)} ms, non-2xx ${r.non2xx}, errors ${r.errors}`,
        );
      }
      reads.push({ c, dist: d, wharf: w });
    }

    sampler.enter('push');
    const transfer = { dist: emptyTransfer(), wharf: emptyTransfer() };
    for (let run = 1; run <= opts.pushes; run++) {
      // Alternate which registry goes first, as with the read cases.
      const order = run % 2 === 1 ? [dist, wharf] : [wharf, dist];
      for (const r of order) await pushAndPull(r, scratch, run, r === dist ? transfer.dist : transfer.wharf);
    }
    const hwm = { dist: memoryOf(dist.pid).hwm, wharf: memoryOf(wharf.pid).hwm };
    report = { opts, version: wharfVersion(), reads, seed: seedRates, transfer, rss: sampler, hwm };

    if (opts.big) {
      sampler.enter('big-idle');
      await new Promise((r) => setTimeout(r, 2000));
      sampler.enter('big-upload');
      log(`pushing a ${opts.bigMiB} MiB blob to Wharf in ${BIG_CHUNK / MiB} MiB PATCHes`);
      let t = performance.now();
      const digest = await pushChunked(wharf.base, 'bench/big', opts.bigMiB * MiB, BIG_CHUNK);
      const uploadSeconds = (performance.now() - t) / 1000;
      sampler.enter('big-download');
      t = performance.now();
      const got = await drain(`${wharf.base}/v2/bench/big/blobs/${digest}`);
      const downloadSeconds = (performance.now() - t) / 1000;
      sampler.enter('done');
      if (got !== opts.bigMiB * MiB) throw new Error(`big blob GET returned ${got} bytes, expected ${opts.bigMiB * MiB}`);
      // The same size on Distribution, read back twice on each side in D W W D order: the ratio of the GETs.
      log(`pushing a ${opts.bigMiB} MiB blob to Distribution`);
      t = performance.now();
      const distDigest = await pushChunked(dist.base, 'bench/big', opts.bigMiB * MiB, BIG_CHUNK);
      const distUploadSeconds = (performance.now() - t) / 1000;
      const timedGet = async (base: string, d: string) => {
        const start = performance.now();
        const n = await drain(`${base}/v2/bench/big/blobs/${d}`);
        if (n !== opts.bigMiB * MiB) throw new Error(`big blob GET from ${base} returned ${n} bytes, expected ${opts.bigMiB * MiB}`);
        return (performance.now() - start) / 1000;
      };
      const d1 = await timedGet(dist.base, distDigest);
      const w1 = await timedGet(wharf.base, digest);
      const w2 = await timedGet(wharf.base, digest);
      const d2 = await timedGet(dist.base, distDigest);
      report.big = {
        mib: opts.bigMiB,
        uploadSeconds,
        downloadSeconds,
        distUploadSeconds,
        getSeconds: { dist: [d1, d2], wharf: [w1, w2] },
        before: sampler.peak('Wharf node', ['big-idle']),
        upload: sampler.peak('Wharf node', ['big-upload']),
        download: sampler.peak('Wharf node', ['big-download']),
      };
    }
  } catch (err) {
    // Keep each registry's whole log: the temp dirs go away below.
    const outDir = resolve(import.meta.dirname, 'results');
    await mkdir(outDir, { recursive: true });
    for (const r of registries) {
      const kept = join(outDir, `failed-${r.name.toLowerCase()}.log`);
      await copyFile(r.logFile, kept).catch(() => {});
      log(`${r.name} log tail (whole log in ${kept}):\n${await r.logTail()}`);
    }
    throw err;
  } finally {
    await cleanup();
  }
  if (!report) throw new Error('no report');

  const markdown = render(report);
  const outDir = resolve(import.meta.dirname, 'results');
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'latest.md'), markdown);
  console.log(markdown);
  log(`written to ${join(outDir, 'latest.md')}`);
}

async function clusterMain(opts: Options): Promise<void> {
  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
    log('SIGINT: finishing the current step, then cleaning up');
  });
  const markdown = await runClusterBench({
    seconds: opts.seconds,
    pushes: opts.pushes,
    bigMiB: opts.big ? opts.bigMiB : 0,
    cases: opts.cases,
    portBase: opts.portBase ?? CLUSTER_PORT_BASE,
    skopeo: (args) => {
      if (interrupted) throw new Error('interrupted');
      return skopeo(args);
    },
    log,
    version: wharfVersion(),
  });
  const outDir = resolve(import.meta.dirname, 'results');
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'cluster-latest.md'), markdown);
  console.log(markdown);
  log(`written to ${join(outDir, 'cluster-latest.md')}`);
}

main().catch((err) => {
  console.error(err instanceof HttpError ? `[bench] registry error: ${err.message}` : err);
  process.exit(1);
});
