// `npm run bench:s3`: Wharf's cluster (two API nodes) and CNCF Distribution 2.8.2 with its S3
// driver, both on the same Ceph RGW (scripts/rgw.sh), in one run; plus RGW alone as the ceiling.
// Usage: npm run bench:s3 [-- --pushes N] [--big-mib N | --no-big] [--seconds N] [--port-base P]
// An RGW that is already running: WHARF_BENCH_RGW_DIR=<dir of scripts/rgw.sh start>.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createDatabase } from './cluster.js';
import { compare, warmUp, type LoadResult } from './load.js';
import { writeLayout } from './oci-layout.js';
import { startDistribution, startWharfNode, WHARF_ROOT, type RunningRegistry } from './registries.js';
import { cpuSecondsOf, RssSampler } from './rss.js';
import { APP_REPO, drain, makeDataset, pushChunked, seed } from './seed.js';
import { WHARF_MAIN } from './wharf-main.js';

const MiB = 1024 * 1024;
const LAYERS = 3;
const LAYER_BYTES = 21 * MiB;
const BIG_CHUNK = 64 * MiB;
const CONNECTIONS = 16;
const log = (line: string) => console.error(`[bench:s3] ${line}`);
const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a');
const median = (xs: number[]) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? `${fmt(a / b, 2)}x` : 'n/a');

interface Options {
  pushes: number;
  bigMiB: number;
  seconds: number;
  portBase: number;
}

function parse(argv: string[]): Options {
  const opts: Options = { pushes: 3, bigMiB: 1024, seconds: 6, portBase: 24300 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const n = () => Number(argv[++i]);
    if (a === '--pushes') opts.pushes = n();
    else if (a === '--big-mib') opts.bigMiB = n();
    else if (a === '--no-big') opts.bigMiB = 0;
    else if (a === '--seconds') opts.seconds = n();
    else if (a === '--port-base') opts.portBase = n();
    else throw new Error(`unknown argument ${a}\nusage: npm run bench:s3 [-- --pushes N] [--big-mib N | --no-big] [--seconds N] [--port-base P]`);
  }
  return opts;
}

/** A side's figures for one kind of transfer: MiB/s per run and CPU s per MiB per process label. */
interface Moves {
  mibps: number[];
  cpu: Map<string, number[]>;
}
const moves = (): Moves => ({ mibps: [], cpu: new Map() });

type Proc = { label: string; pids: number[] };
const cpuOf = (p: Proc) => p.pids.reduce((sum, pid) => sum + cpuSecondsOf(pid), 0);

async function measured(into: Moves, mib: number, procs: Proc[], task: () => Promise<void>): Promise<number> {
  const before = procs.map(cpuOf);
  const t = performance.now();
  await task();
  const seconds = (performance.now() - t) / 1000;
  into.mibps.push(mib / seconds);
  for (const [i, p] of procs.entries()) into.cpu.set(p.label, [...(into.cpu.get(p.label) ?? []), (cpuOf(p) - before[i]!) / mib]);
  return seconds;
}

interface Rgw {
  dir: string;
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  pids: number[];
  stop(): Promise<void>;
}

async function startRgw(port: number): Promise<Rgw> {
  const given = process.env.WHARF_BENCH_RGW_DIR;
  const script = join(WHARF_ROOT, 'scripts', 'rgw.sh');
  const dir = given ?? (await mkdtemp(join(tmpdir(), 'wharf-bench-rgw-')));
  if (!given) {
    log(`starting Ceph RGW on 127.0.0.1:${port} (scripts/rgw.sh)`);
    execFileSync('bash', [script, 'start', dir], { env: { ...process.env, WHARF_RGW_PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const env = Object.fromEntries(
    (await readFile(join(dir, 'env'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const pids = await Promise.all(['rgw', 'osd', 'mon'].map(async (n) => Number(await readFile(join(dir, `${n}.pid`), 'utf8'))));
  return {
    dir,
    endpoint: env.WHARF_TEST_S3_ENDPOINT!,
    accessKeyId: env.WHARF_TEST_S3_ACCESSKEYID!,
    secretAccessKey: env.WHARF_TEST_S3_SECRETACCESSKEY!,
    region: env.WHARF_TEST_S3_REGION!,
    pids,
    stop: async () => {
      if (!given) execFileSync('bash', [script, 'stop', dir], { stdio: 'ignore' });
    },
  };
}

async function skopeoAsync(args: string[]): Promise<void> {
  const { execFile } = await import('node:child_process');
  await new Promise<void>((res, rej) =>
    execFile('skopeo', ['--insecure-policy', ...args], { maxBuffer: 16 * MiB }, (err, _out, stderr) => (err ? rej(new Error(`skopeo ${args.join(' ')}: ${stderr}`)) : res())),
  );
}

async function rgwAlone(client: S3Client, bucket: string, into: { put: Moves; get: Moves }, procs: Proc[]): Promise<void> {
  const keys = Array.from({ length: 2 * LAYERS }, () => `alone/${randomBytes(8).toString('hex')}`);
  const bodies = keys.map(() => randomBytes(LAYER_BYTES));
  const mib = (keys.length * LAYER_BYTES) / MiB;
  await measured(into.put, mib, procs, async () => {
    await Promise.all(keys.map((Key, i) => client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: bodies[i], ContentLength: LAYER_BYTES }))));
  });
  await measured(into.get, mib, procs, async () => {
    await Promise.all(
      keys.map(async (Key) => {
        const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key }));
        for await (const _ of res.Body as AsyncIterable<Buffer>) {
          // discard
        }
      }),
    );
  });
}

async function main(): Promise<void> {
  const opts = parse(process.argv.slice(2));
  const [DIST_PORT, NODE_A, NODE_B, RGW_PORT] = [opts.portBase, opts.portBase + 1, opts.portBase + 2, opts.portBase + 10];
  const adminUrl = process.env.WHARF_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const natsUrl = process.env.WHARF_BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
  execFileSync(process.execPath, ['scripts/build-js.mjs'], { cwd: WHARF_ROOT, stdio: 'inherit', env: { ...process.env, WHARF_BUILD_QUIET: '1' } });
  const scratch = await mkdtemp(join(tmpdir(), 'wharf-bench-s3-'));
  const started: RunningRegistry[] = [];
  let rgw: Rgw | undefined;
  let db: Awaited<ReturnType<typeof createDatabase>> | undefined;
  let sampler: RssSampler | undefined;
  let client: S3Client | undefined;
  try {
    rgw = await startRgw(RGW_PORT);
    client = new S3Client({
      endpoint: rgw.endpoint,
      region: rgw.region,
      forcePathStyle: true,
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const suffix = randomBytes(4).toString('hex');
    const buckets = { wharf: `bench-wharf-${suffix}`, dist: `bench-dist-${suffix}`, alone: `bench-alone-${suffix}` };
    for (const b of Object.values(buckets)) await client.send(new CreateBucketCommand({ Bucket: b }));
    db = await createDatabase(adminUrl);
    const env: Record<string, string> = {
      WHARF_DATABASE_URL: db.url,
      WHARF_NATS_URL: natsUrl,
      WHARF_NATS_STREAM: `WHARF_BENCH_${suffix.toUpperCase()}`,
      WHARF_NATS_SUBJECTPREFIX: `wharfbench${suffix}`,
      WHARF_STORAGE_DRIVER: 's3',
      WHARF_S3_ENDPOINT: rgw.endpoint,
      WHARF_S3_BUCKET: buckets.wharf,
      WHARF_S3_FORCEPATHSTYLE: 'true',
      WHARF_S3_ACCESSKEYID: rgw.accessKeyId,
      WHARF_S3_SECRETACCESSKEY: rgw.secretAccessKey,
      // Knobs under study, passed through: WHARF_BENCH_S3_PARTSIZE, WHARF_BENCH_S3_PARTCONCURRENCY.
      ...(process.env.WHARF_BENCH_S3_PARTSIZE ? { WHARF_S3_PARTSIZE: process.env.WHARF_BENCH_S3_PARTSIZE } : {}),
      ...(process.env.WHARF_BENCH_S3_PARTCONCURRENCY ? { WHARF_S3_PARTCONCURRENCY: process.env.WHARF_BENCH_S3_PARTCONCURRENCY } : {}),
    };
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_')));
    execFileSync(process.execPath, [WHARF_MAIN, 'migrate'], { cwd: WHARF_ROOT, env: { ...inherited, ...env, WHARF_LOG_LEVEL: 'warn' }, stdio: 'ignore' });

    // Distribution's S3 driver on the same RGW; blob GETs stream through it (no redirect), as Wharf's do by default.
    const dist = await startDistribution(DIST_PORT, [
      '  s3:',
      `    accesskey: ${rgw.accessKeyId}`,
      `    secretkey: ${rgw.secretAccessKey}`,
      `    region: ${rgw.region}`,
      `    regionendpoint: ${rgw.endpoint}`,
      `    bucket: ${buckets.dist}`,
      '    secure: false',
      '    v4auth: true',
      '    rootdirectory: /',
      '  redirect:',
      '    disable: true',
    ]);
    started.push(dist);
    const nodes: RunningRegistry[] = [];
    for (const [i, port] of [NODE_A, NODE_B].entries()) {
      const node = await startWharfNode(`Wharf node ${'AB'[i]}`, port, { ...env, WHARF_EVENTS_INSTANCEID: `bench-node-${i}` });
      started.push(node);
      nodes.push(node);
    }
    const [nodeA, nodeB] = nodes as [RunningRegistry, RunningRegistry];
    const rgwProc: Proc = { label: 'RGW (radosgw + OSD + mon)', pids: rgw.pids };
    sampler = new RssSampler([
      { label: 'Distribution', pid: dist.pid },
      { label: nodeA.name, pid: nodeA.pid },
      { label: nodeB.name, pid: nodeB.pid },
      { label: 'radosgw', pid: rgw.pids[0]! },
      { label: 'ceph-osd', pid: rgw.pids[1]! },
    ]);
    sampler.start();

    const data = makeDataset();
    log('seeding both');
    await seed(dist.base, data);
    await seed(nodeA.base, data);

    // blob GET 1 MiB, autocannon, A B B A halves; Wharf's connections split between its nodes.
    const blobPath = `/v2/${APP_REPO}/blobs/${data.bigBlob.digest}`;
    for (const r of [dist, nodeA, nodeB]) {
      const got = await drain(`${r.base}${blobPath}`);
      if (got !== MiB) throw new Error(`${r.name} blob GET: ${got} bytes`);
    }
    await warmUp(`${dist.base}${blobPath}`, { method: 'GET', connections: CONNECTIONS }, 2);
    await warmUp([`${nodeA.base}${blobPath}`, `${nodeB.base}${blobPath}`], { method: 'GET', connections: CONNECTIONS }, 2);
    const [blobDist, blobWharf]: [LoadResult, LoadResult] = await compare(`${dist.base}${blobPath}`, [`${nodeA.base}${blobPath}`, `${nodeB.base}${blobPath}`], {
      method: 'GET',
      connections: CONNECTIONS,
      seconds: opts.seconds,
      warmupSeconds: 1,
    });
    log(`blob GET 1 MiB: Distribution ${fmt(blobDist.mibPerSec, 1)} MiB/s, Wharf ${fmt(blobWharf.mibPerSec, 1)} MiB/s`);

    // skopeo push and pull of the 63 MiB image, one copy at a time, alternating who goes first.
    sampler.enter('push');
    const t = { dist: { push: moves(), pull: moves() }, wharf: { push: moves(), pull: moves() } };
    const alone = { put: moves(), get: moves() };
    const imageMiB = (LAYERS * LAYER_BYTES) / MiB;
    const wharfProcs: Proc[] = [{ label: 'Wharf nodes', pids: nodes.map((n) => n.pid) }, rgwProc];
    const distProcs: Proc[] = [{ label: 'Distribution', pids: [dist.pid] }, rgwProc];
    for (let run = 1; run <= opts.pushes; run++) {
      for (const side of run % 2 ? (['dist', 'wharf'] as const) : (['wharf', 'dist'] as const)) {
        const layout = join(scratch, `layout-${side}-${run}`);
        await writeLayout(layout, { layers: LAYERS, layerBytes: LAYER_BYTES, ref: 'v1' });
        const pushTo = side === 'dist' ? dist : nodeA;
        const pullFrom = side === 'dist' ? dist : nodeB;
        const repo = `bench/s3push-${run}`;
        const procs = side === 'dist' ? distProcs : wharfProcs;
        const up = await measured(t[side].push, imageMiB, procs, () =>
          skopeoAsync(['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${new URL(pushTo.base).host}/${repo}:v1`]),
        );
        const down = await measured(t[side].pull, imageMiB, procs, () =>
          skopeoAsync(['copy', '--quiet', '--src-tls-verify=false', `docker://${new URL(pullFrom.base).host}/${repo}:v1`, `oci:${join(scratch, `pulled-${side}-${run}`)}:v1`]),
        );
        log(`${side} run ${run}: push ${fmt(imageMiB / up, 1)} MiB/s, pull ${fmt(imageMiB / down, 1)} MiB/s`);
        await rm(layout, { recursive: true, force: true });
        await rm(join(scratch, `pulled-${side}-${run}`), { recursive: true, force: true });
      }
      await rgwAlone(client, buckets.alone, alone, [rgwProc]);
      log(`RGW alone run ${run}: in ${fmt(alone.put.mibps.at(-1)!, 1)} MiB/s, out ${fmt(alone.get.mibps.at(-1)!, 1)} MiB/s`);
    }

    // The big blob: 64 MiB PATCHes (Wharf: alternating between the nodes), PUT ?digest=, GET.
    const big = { dist: { up: moves(), down: moves() }, wharf: { up: moves(), down: moves() } };
    if (opts.bigMiB > 0) {
      for (const side of ['dist', 'wharf'] as const) {
        sampler.enter(`big-${side}`);
        const bases = side === 'dist' ? [dist.base] : [nodeA.base, nodeB.base];
        const procs = side === 'dist' ? distProcs : wharfProcs;
        let digest = '';
        await measured(big[side].up, opts.bigMiB, procs, async () => {
          digest = await pushChunked(bases, 'bench/big', opts.bigMiB * MiB, BIG_CHUNK);
        });
        await measured(big[side].down, opts.bigMiB, procs, async () => {
          const got = await drain(`${bases.at(-1)}/v2/bench/big/blobs/${digest}`);
          if (got !== opts.bigMiB * MiB) throw new Error(`${side} big blob GET: ${got} bytes`);
        });
        log(`${side} ${opts.bigMiB} MiB blob: up ${fmt(big[side].up.mibps[0]!, 1)} MiB/s, down ${fmt(big[side].down.mibps[0]!, 1)} MiB/s`);
      }
    }
    sampler.enter('done');

    const lines: string[] = [];
    const row = (...cells: string[]) => lines.push(`| ${cells.join(' | ')} |`);
    const ms = (xs: number[] | undefined) => `${fmt(median(xs ?? []) * 1000, 1)} ms`;
    const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
    lines.push('# Wharf cluster (2 API nodes) vs CNCF Distribution 2.8.2, both on one Ceph RGW', '');
    lines.push(
      `${new Date().toISOString()} · load average at the end ${load} · RGW 16.2 single node (bluestore on a sparse file) · push/pull: skopeo copy of a fresh ${LAYERS} x ${LAYER_BYTES / MiB} MiB image, ` +
        `Wharf pushed through node A and pulled through node B, median of ${opts.pushes} runs · blob GET: ${CONNECTIONS} connections, ${opts.seconds} s · all on one 2-core machine` +
        (env.WHARF_S3_PARTSIZE || env.WHARF_S3_PARTCONCURRENCY
          ? ` · Wharf part size ${env.WHARF_S3_PARTSIZE ?? 'default'}, concurrency ${env.WHARF_S3_PARTCONCURRENCY ?? 'default'}`
          : ''),
      '',
    );
    row('case', 'Distribution', 'Wharf cluster', 'ratio', 'RGW alone');
    row('---', '---:', '---:', '---:', '---:');
    row(
      'skopeo push, MiB/s',
      fmt(median(t.dist.push.mibps), 1),
      fmt(median(t.wharf.push.mibps), 1),
      ratio(median(t.wharf.push.mibps), median(t.dist.push.mibps)),
      `${fmt(median(alone.put.mibps), 1)} (6 PUTs of 21 MiB at once)`,
    );
    row(
      'skopeo pull, MiB/s',
      fmt(median(t.dist.pull.mibps), 1),
      fmt(median(t.wharf.pull.mibps), 1),
      ratio(median(t.wharf.pull.mibps), median(t.dist.pull.mibps)),
      `${fmt(median(alone.get.mibps), 1)} (6 GETs at once)`,
    );
    row('blob GET 1 MiB, MiB/s', fmt(blobDist.mibPerSec, 1), fmt(blobWharf.mibPerSec, 1), ratio(blobWharf.mibPerSec, blobDist.mibPerSec), '');
    row('blob GET 1 MiB, p50 / p99 ms', `${fmt(blobDist.p50, 1)} / ${fmt(blobDist.p99, 1)}`, `${fmt(blobWharf.p50, 1)} / ${fmt(blobWharf.p99, 1)}`, '', '');
    if (opts.bigMiB > 0) {
      row(
        `${opts.bigMiB} MiB blob up (64 MiB PATCHes), MiB/s`,
        fmt(big.dist.up.mibps[0]!, 1),
        fmt(big.wharf.up.mibps[0]!, 1),
        ratio(big.wharf.up.mibps[0]!, big.dist.up.mibps[0]!),
        '',
      );
      row(`${opts.bigMiB} MiB blob down, MiB/s`, fmt(big.dist.down.mibps[0]!, 1), fmt(big.wharf.down.mibps[0]!, 1), ratio(big.wharf.down.mibps[0]!, big.dist.down.mibps[0]!), '');
    }
    lines.push('', `Non-2xx and errors in the blob GET runs: ${blobDist.non2xx + blobDist.errors + blobWharf.non2xx + blobWharf.errors}.`, '');
    lines.push('## CPU seconds per MiB moved (medians)', '');
    row('process', 'push', 'pull', ...(opts.bigMiB > 0 ? ['big up', 'big down'] : []));
    row('---', '---:', '---:', ...(opts.bigMiB > 0 ? ['---:', '---:'] : []));
    const bigCells = (side: 'dist' | 'wharf', label: string) => (opts.bigMiB > 0 ? [ms(big[side].up.cpu.get(label)), ms(big[side].down.cpu.get(label))] : []);
    row('Distribution', ms(t.dist.push.cpu.get('Distribution')), ms(t.dist.pull.cpu.get('Distribution')), ...bigCells('dist', 'Distribution'));
    row('RGW under Distribution', ms(t.dist.push.cpu.get(rgwProc.label)), ms(t.dist.pull.cpu.get(rgwProc.label)), ...bigCells('dist', rgwProc.label));
    row('Wharf, both nodes', ms(t.wharf.push.cpu.get('Wharf nodes')), ms(t.wharf.pull.cpu.get('Wharf nodes')), ...bigCells('wharf', 'Wharf nodes'));
    row('RGW under Wharf', ms(t.wharf.push.cpu.get(rgwProc.label)), ms(t.wharf.pull.cpu.get(rgwProc.label)), ...bigCells('wharf', rgwProc.label));
    row('RGW alone', ms(alone.put.cpu.get(rgwProc.label)), ms(alone.get.cpu.get(rgwProc.label)), ...(opts.bigMiB > 0 ? ['', ''] : []));
    lines.push(
      '',
      `Per run (MiB/s): Distribution push ${t.dist.push.mibps.map((x) => fmt(x, 1)).join(', ')}; Wharf push ${t.wharf.push.mibps.map((x) => fmt(x, 1)).join(', ')}; ` +
        `Distribution pull ${t.dist.pull.mibps.map((x) => fmt(x, 1)).join(', ')}; Wharf pull ${t.wharf.pull.mibps.map((x) => fmt(x, 1)).join(', ')}; RGW alone in ${alone.put.mibps.map((x) => fmt(x, 1)).join(', ')}, out ${alone.get.mibps.map((x) => fmt(x, 1)).join(', ')}.`,
    );
    lines.push('', '## Peak VmRSS (MiB, sampled every 100 ms)', '');
    row('process', 'push/pull', ...(opts.bigMiB > 0 ? ['big blob, Distribution', 'big blob, Wharf'] : []));
    row('---', '---:', ...(opts.bigMiB > 0 ? ['---:', '---:'] : []));
    for (const label of ['Distribution', nodeA.name, nodeB.name, 'radosgw', 'ceph-osd']) {
      row(
        label,
        fmt(sampler.peak(label, ['push']) / 1024),
        ...(opts.bigMiB > 0 ? [fmt(sampler.peak(label, ['big-dist']) / 1024), fmt(sampler.peak(label, ['big-wharf']) / 1024)] : []),
      );
    }
    const markdown = lines.join('\n') + '\n';
    const outDir = resolve(import.meta.dirname, 'results');
    await mkdir(outDir, { recursive: true });
    await writeFile(join(outDir, 's3-latest.md'), markdown);
    console.log(markdown);
    log(`written to ${join(outDir, 's3-latest.md')}`);
  } finally {
    sampler?.stop();
    for (const r of [...started].reverse()) await r.stop().catch((err) => log(`stopping ${r.name}: ${err}`));
    client?.destroy();
    await db?.drop().catch(() => {});
    await rgw?.stop().catch((err) => log(`stopping RGW: ${err}`));
    for (const dir of [scratch, ...started.map((r) => r.dir)]) await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
