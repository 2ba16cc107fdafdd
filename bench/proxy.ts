/**
 * The pull-through cache next to CNCF Distribution 2.8.2, in one run: Distribution as the
 * upstream, Wharf (`wharf all`) caching it, and Distribution's own proxy mode
 * (`proxy.remoteurl`) as the peer. Reports ratios (see bench/README.md, "Pull-through cache"):
 *
 * - cold pull through Wharf vs the same pull straight from the upstream (target >= 0.9x);
 * - warm pull through Wharf vs a pull of the same image pushed to Wharf directly (>= 0.95x);
 * - Wharf vs Distribution's proxy mode, cold and warm (>= 1x);
 * - the same cold pull through a bare Node pass-through proxy (bench/pass-through-proxy.mjs: no
 *   cache, no digest, no store), the ceiling of any Node process in the byte path here;
 * - upstream bytes for 20 concurrent cold pulls of one image (1x the image), for both caches.
 *
 *   npm run bench:proxy -- [--rounds 5] [--layers 4] [--layer-mib 8] [--port-base 25100]
 *                          [--only cold,warm,burst] [--profile DIR]
 *
 * `--profile DIR` runs Wharf under `node --cpu-prof` (the profile lands in DIR when it stops;
 * `node bench/cpu-profile-top.mjs DIR/*.cpuprofile` lists where the time went). Ports: the
 * registries on --port-base .. +3, the two counting proxies on +4 and +5, the pass-through on +6.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCountingProxy } from '../test/helpers/counting-proxy.js';
import { blobOf, type Blob } from '../test/helpers/oci.js';
import { pushContent, rawImage } from '../test/helpers/upstream-push.js';
import { launch, startDistribution, startWharfProcess, type RunningRegistry } from './registries.js';
import { cpuSecondsOf, descendants } from './rss.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const ROUNDS = option('rounds', 5);
const LAYERS = option('layers', 4);
const LAYER_MIB = option('layer-mib', 8);
const PORT_BASE = option('port-base', 25100);
const text = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const ONLY = new Set((text('only') ?? 'cold,warm,burst').split(','));
const PROFILE_DIR = text('profile');
const CONCURRENT = 20;

type Image = ReturnType<typeof rawImage>;

function makeImage(): Image {
  return rawImage(Array.from({ length: LAYERS }, () => blobOf(randomBytes(LAYER_MIB * 1024 * 1024)) as Blob));
}

/** A client pull: the manifest, then every blob, 3 at a time (as containers/image does); returns milliseconds. */
async function pull(base: string, name: string, image: Image, reference = 'v1'): Promise<number> {
  const started = performance.now();
  const m = await fetch(`${base}/v2/${name}/manifests/${reference}`, { headers: { accept: image.mediaType } });
  if (m.status !== 200) throw new Error(`${base} ${name}:${reference}: ${m.status} ${await m.text()}`);
  await m.arrayBuffer();
  const queue = [...image.blobs];
  const worker = async () => {
    for (let blob = queue.shift(); blob; blob = queue.shift()) {
      const res = await fetch(`${base}/v2/${name}/blobs/${blob.digest}`);
      if (res.status !== 200) throw new Error(`${base} ${name}@${blob.digest}: ${res.status}`);
      let size = 0;
      for await (const chunk of res.body!) size += chunk.length;
      if (size !== blob.size) throw new Error(`${base} ${name}@${blob.digest}: ${size} bytes, expected ${blob.size}`);
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  return performance.now() - started;
}

async function startDistributionProxy(port: number, remoteUrl: string): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-bench-distproxy-'));
  const config = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  cache:',
    '    blobdescriptor: inmemory',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    'proxy:',
    `  remoteurl: ${remoteUrl}`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'config.yml'), config);
  return launch('Distribution-proxy', dir, `http://127.0.0.1:${port}`, '/usr/bin/docker-registry', ['serve', join(dir, 'config.yml')], { readyTimeoutMs: 15_000 });
}

const cpuOfTree = (pid: number) => [pid, ...descendants(pid)].reduce((sum, p) => sum + cpuSecondsOf(p), 0);
const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! : Number.NaN);
const mib = (bytes: number) => bytes / (1024 * 1024);

const upstream = await startDistribution(PORT_BASE);
const counted = await startCountingProxy(upstream.base, PORT_BASE + 4);
const countedForPeer = await startCountingProxy(upstream.base, PORT_BASE + 5);
const registries: RunningRegistry[] = [upstream];
try {
  const wharf = await startWharfProcess(
    PORT_BASE + 1,
    {
      WHARF_PROXY_UPSTREAMS: JSON.stringify([
        { name: 'dist', url: upstream.base, prefix: 'dist', ttl: '1h' },
        { name: 'counted', url: counted.url, prefix: 'counted', ttl: '1h' },
      ]),
    },
    PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [],
  );
  registries.push(wharf);
  const peer = await startDistributionProxy(PORT_BASE + 2, upstream.base);
  registries.push(peer);
  const peerCounted = await startDistributionProxy(PORT_BASE + 3, countedForPeer.url);
  registries.push(peerCounted);
  const passDir = await mkdtemp(join(tmpdir(), 'wharf-bench-pass-through-'));
  const passThrough = await launch(
    'pass-through',
    passDir,
    `http://127.0.0.1:${PORT_BASE + 6}`,
    process.execPath,
    [join(import.meta.dirname, 'pass-through-proxy.mjs'), String(PORT_BASE + 6), upstream.base],
    {
      readyTimeoutMs: 15_000,
    },
  );
  registries.push(passThrough);

  const images = Array.from({ length: ROUNDS }, makeImage);
  for (const [i, image] of images.entries()) await pushContent(upstream.base, `bench/cold${i}`, image, 'v1');
  const warmImage = images[0]!;
  await pushContent(wharf.base, 'direct/app', warmImage, 'v1');
  const burst = makeImage();
  await pushContent(upstream.base, 'bench/burst', burst, 'v1');
  const imageBytes = burst.blobs.reduce((s, b) => s + b.size, 0);

  const times = {
    passThrough: [] as number[],
    upstream: [] as number[],
    wharfCold: [] as number[],
    peerCold: [] as number[],
    wharfWarm: [] as number[],
    wharfDirect: [] as number[],
    peerWarm: [] as number[],
  };
  type Workload = keyof typeof times;
  // CPU seconds each server's process tree (Wharf: node and its PostgreSQL) used during each workload: what the load average does not move.
  const servers = { upstream, wharf, peer };
  const cpu = new Map<Workload, Record<keyof typeof servers, number>>();
  const cpuNow = () => Object.fromEntries(Object.entries(servers).map(([k, r]) => [k, cpuOfTree(r.pid)])) as Record<keyof typeof servers, number>;
  const timed = async (workload: Workload, run: () => Promise<number>) => {
    const before = cpuNow();
    times[workload].push(await run());
    const after = cpuNow();
    const sum = cpu.get(workload) ?? { upstream: 0, wharf: 0, peer: 0 };
    for (const k of Object.keys(servers) as Array<keyof typeof servers>) sum[k] += after[k] - before[k];
    cpu.set(workload, sum);
  };
  // Cold: each round a fresh image; the order alternates so a slow moment of the machine lands on all.
  const loadAtStart = loadavg()[0]!;
  for (const [i, image] of images.entries()) {
    if (!ONLY.has('cold')) break;
    const name = `bench/cold${i}`;
    const order = i % 2 === 0 ? ['upstream', 'wharf', 'pass', 'peer'] : ['peer', 'pass', 'wharf', 'upstream'];
    for (const who of order) {
      if (who === 'upstream') await timed('upstream', () => pull(upstream.base, name, image));
      if (who === 'wharf') await timed('wharfCold', () => pull(wharf.base, `dist/${name}`, image));
      if (who === 'peer') await timed('peerCold', () => pull(peer.base, name, image));
      if (who === 'pass') await timed('passThrough', () => pull(passThrough.base, name, image));
    }
  }
  // Warm: image 0 is cached in both proxies now, and pushed to Wharf directly.
  if (ONLY.has('warm') && !ONLY.has('cold')) {
    await pull(wharf.base, 'dist/bench/cold0', warmImage);
    await pull(peer.base, 'bench/cold0', warmImage);
  }
  for (let i = 0; i < (ONLY.has('warm') ? ROUNDS * 2 : 0); i++) {
    const order = i % 2 === 0 ? ['direct', 'warm', 'peer'] : ['peer', 'warm', 'direct'];
    for (const who of order) {
      if (who === 'direct') await timed('wharfDirect', () => pull(wharf.base, 'direct/app', warmImage));
      if (who === 'warm') await timed('wharfWarm', () => pull(wharf.base, 'dist/bench/cold0', warmImage));
      if (who === 'peer') await timed('peerWarm', () => pull(peer.base, 'bench/cold0', warmImage));
    }
  }
  // 20 concurrent cold pulls of one image through each cache; bytes counted in front of the upstream.
  let [wharfBurstMs, wharfUpstreamBytes, peerBurstMs, peerFailed, peerUpstreamBytes] = [Number.NaN, Number.NaN, Number.NaN, 0, Number.NaN];
  if (ONLY.has('burst')) {
    const burstStart = performance.now();
    await Promise.all(Array.from({ length: CONCURRENT }, () => pull(wharf.base, 'counted/bench/burst', burst)));
    wharfBurstMs = performance.now() - burstStart;
    wharfUpstreamBytes = counted.bytesFor('/blobs/');
    const peerStart = performance.now();
    const peerOutcome = await Promise.allSettled(Array.from({ length: CONCURRENT }, () => pull(peerCounted.base, 'bench/burst', burst)));
    peerBurstMs = performance.now() - peerStart;
    peerFailed = peerOutcome.filter((o) => o.status === 'rejected').length;
    peerUpstreamBytes = countedForPeer.bytesFor('/blobs/');
  }

  const size = mib(warmImage.blobs.reduce((s, b) => s + b.size, 0));
  const rate = (ms: number[]) => (size / (median(ms) / 1000)).toFixed(0);
  const cpuPerMiB = (workload: Workload) => {
    const sum = cpu.get(workload);
    if (!sum) return '';
    const moved = size * times[workload].length;
    return [sum.upstream, sum.wharf, sum.peer].map((s) => ((1000 * s) / moved).toFixed(1)).join(' / ');
  };
  const ratio = (a: number[], b: number[]) => (median(a) / median(b)).toFixed(2);
  const lines = [
    '# Pull-through cache benchmark',
    '',
    `${new Date().toISOString()}; image ${LAYERS} x ${LAYER_MIB} MiB layers + config; ${ROUNDS} cold rounds, ${ROUNDS * 2} warm; load average ${loadAtStart.toFixed(2)} at the start, ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} at the end (2 cores, shared)`,
    '',
    '| workload | median ms | MiB/s | CPU ms per MiB: upstream / Wharf / Distribution proxy |',
    '|---|---|---|---|',
    `| cold: straight from the upstream (Distribution 2.8.2) | ${median(times.upstream).toFixed(0)} | ${rate(times.upstream)} | ${cpuPerMiB('upstream')} |`,
    `| cold: through Wharf | ${median(times.wharfCold).toFixed(0)} | ${rate(times.wharfCold)} | ${cpuPerMiB('wharfCold')} |`,
    `| cold: through Distribution proxy mode | ${median(times.peerCold).toFixed(0)} | ${rate(times.peerCold)} | ${cpuPerMiB('peerCold')} |`,
    `| cold: through a bare Node pass-through (no cache) | ${median(times.passThrough).toFixed(0)} | ${rate(times.passThrough)} | ${cpuPerMiB('passThrough')} |`,
    `| warm: image pushed to Wharf directly | ${median(times.wharfDirect).toFixed(0)} | ${rate(times.wharfDirect)} | ${cpuPerMiB('wharfDirect')} |`,
    `| warm: through Wharf's cache | ${median(times.wharfWarm).toFixed(0)} | ${rate(times.wharfWarm)} | ${cpuPerMiB('wharfWarm')} |`,
    `| warm: through Distribution proxy mode | ${median(times.peerWarm).toFixed(0)} | ${rate(times.peerWarm)} | ${cpuPerMiB('peerWarm')} |`,
    '',
    '| ratio (speed, higher is better for Wharf) | value | target |',
    '|---|---|---|',
    `| cold through Wharf vs straight from upstream | ${ratio(times.upstream, times.wharfCold)}x | >= 0.9x |`,
    `| warm through Wharf vs pushed to Wharf directly | ${ratio(times.wharfDirect, times.wharfWarm)}x | >= 0.95x |`,
    `| cold: Wharf vs Distribution proxy mode | ${ratio(times.peerCold, times.wharfCold)}x | >= 1x |`,
    `| cold: bare Node pass-through vs straight from upstream (the ceiling of a Node proxy here) | ${ratio(times.upstream, times.passThrough)}x | |`,
    `| cold: Wharf vs the bare Node pass-through | ${ratio(times.passThrough, times.wharfCold)}x | |`,
    `| warm: Wharf vs Distribution proxy mode | ${ratio(times.peerWarm, times.wharfWarm)}x | >= 1x |`,
    '',
    `| ${CONCURRENT} concurrent cold pulls of one ${mib(imageBytes).toFixed(0)} MiB image | upstream blob bytes / image | wall ms | failed pulls |`,
    '|---|---|---|---|',
    `| Wharf | ${(wharfUpstreamBytes / imageBytes).toFixed(2)}x | ${wharfBurstMs.toFixed(0)} | 0 |`,
    `| Distribution proxy mode | ${(peerUpstreamBytes / imageBytes).toFixed(2)}x | ${peerBurstMs.toFixed(0)} | ${peerFailed} |`,
    '',
    `Upstream requests for those ${CONCURRENT} pulls of a manifest and ${burst.blobs.length} blobs (counted in front of the upstream):`,
    '',
    '| cache | manifest GET | manifest HEAD | blob GET | blob HEAD | other |',
    '|---|---|---|---|---|---|',
    ...[
      ['Wharf', counted],
      ['Distribution proxy mode', countedForPeer],
    ].map(([who, c]) => {
      const proxy = c as typeof counted;
      const cells = [proxy.count('/manifests/', 'GET'), proxy.count('/manifests/', 'HEAD'), proxy.count('/blobs/', 'GET'), proxy.count('/blobs/', 'HEAD')];
      return `| ${who} | ${cells.join(' | ')} | ${proxy.requests.length - cells.reduce((a, b) => a + b, 0)} |`;
    }),
    '',
  ];
  const report = lines.join('\n');
  console.log(report);
  await writeFile(new URL('./results/proxy-latest.md', import.meta.url), report);
} finally {
  for (const r of registries.reverse()) await r.stop().catch(() => {});
  await counted.close();
  await countedForPeer.close();
  for (const r of registries) await rm(r.dir, { recursive: true, force: true }).catch(() => {});
}
