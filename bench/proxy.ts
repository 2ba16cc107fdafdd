/**
 * The pull-through cache next to CNCF Distribution 2.8.2, in one run: Distribution as the
 * upstream, Wharf (`wharf all`) caching it, and Distribution's own proxy mode
 * (`proxy.remoteurl`) as the peer. Reports ratios (see bench/README.md, "Pull-through cache"):
 *
 * - cold pull through Wharf vs the same pull straight from the upstream (target >= 0.9x);
 * - warm pull through Wharf vs a pull of the same image pushed to Wharf directly (>= 0.95x);
 * - Wharf vs Distribution's proxy mode, cold and warm (>= 1x);
 * - upstream bytes for 20 concurrent cold pulls of one image (1x the image), for both caches.
 *
 *   npm run bench:proxy -- [--rounds 5] [--layers 4] [--layer-mib 8] [--port-base 25100]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCountingProxy } from '../test/helpers/counting-proxy.js';
import { blobOf, type Blob } from '../test/helpers/oci.js';
import { pushContent, rawImage } from '../test/helpers/upstream-push.js';
import { launch, startDistribution, startWharfProcess, type RunningRegistry } from './registries.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const ROUNDS = option('rounds', 5);
const LAYERS = option('layers', 4);
const LAYER_MIB = option('layer-mib', 8);
const PORT_BASE = option('port-base', 25100);
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mib = (bytes: number) => bytes / (1024 * 1024);

const upstream = await startDistribution(PORT_BASE);
const counted = await startCountingProxy(upstream.base);
const countedForPeer = await startCountingProxy(upstream.base);
const registries: RunningRegistry[] = [upstream];
try {
  const wharf = await startWharfProcess(PORT_BASE + 1, {
    WHARF_PROXY_UPSTREAMS: JSON.stringify([
      { name: 'dist', url: upstream.base, prefix: 'dist', ttl: '1h' },
      { name: 'counted', url: counted.url, prefix: 'counted', ttl: '1h' },
    ]),
  });
  registries.push(wharf);
  const peer = await startDistributionProxy(PORT_BASE + 2, upstream.base);
  registries.push(peer);
  const peerCounted = await startDistributionProxy(PORT_BASE + 3, countedForPeer.url);
  registries.push(peerCounted);

  const images = Array.from({ length: ROUNDS }, makeImage);
  for (const [i, image] of images.entries()) await pushContent(upstream.base, `bench/cold${i}`, image, 'v1');
  const warmImage = images[0]!;
  await pushContent(wharf.base, 'direct/app', warmImage, 'v1');
  const burst = makeImage();
  await pushContent(upstream.base, 'bench/burst', burst, 'v1');
  const imageBytes = burst.blobs.reduce((s, b) => s + b.size, 0);

  const times = { upstream: [] as number[], wharfCold: [] as number[], peerCold: [] as number[], wharfWarm: [] as number[], wharfDirect: [] as number[], peerWarm: [] as number[] };
  // Cold: each round a fresh image; the order alternates so a slow moment of the machine lands on all.
  for (const [i, image] of images.entries()) {
    const name = `bench/cold${i}`;
    const order = i % 2 === 0 ? ['upstream', 'wharf', 'peer'] : ['peer', 'wharf', 'upstream'];
    for (const who of order) {
      if (who === 'upstream') times.upstream.push(await pull(upstream.base, name, image));
      if (who === 'wharf') times.wharfCold.push(await pull(wharf.base, `dist/${name}`, image));
      if (who === 'peer') times.peerCold.push(await pull(peer.base, name, image));
    }
  }
  // Warm: image 0 is cached in both proxies now, and pushed to Wharf directly.
  for (let i = 0; i < ROUNDS * 2; i++) {
    const order = i % 2 === 0 ? ['direct', 'warm', 'peer'] : ['peer', 'warm', 'direct'];
    for (const who of order) {
      if (who === 'direct') times.wharfDirect.push(await pull(wharf.base, 'direct/app', warmImage));
      if (who === 'warm') times.wharfWarm.push(await pull(wharf.base, 'dist/bench/cold0', warmImage));
      if (who === 'peer') times.peerWarm.push(await pull(peer.base, 'bench/cold0', warmImage));
    }
  }
  // 20 concurrent cold pulls of one image through each cache; bytes counted in front of the upstream.
  const burstStart = performance.now();
  await Promise.all(Array.from({ length: CONCURRENT }, () => pull(wharf.base, 'counted/bench/burst', burst)));
  const wharfBurstMs = performance.now() - burstStart;
  const wharfUpstreamBytes = counted.bytesFor('/blobs/');
  const peerStart = performance.now();
  const peerOutcome = await Promise.allSettled(Array.from({ length: CONCURRENT }, () => pull(peerCounted.base, 'bench/burst', burst)));
  const peerBurstMs = performance.now() - peerStart;
  const peerFailed = peerOutcome.filter((o) => o.status === 'rejected').length;
  const peerUpstreamBytes = countedForPeer.bytesFor('/blobs/');

  const size = mib(warmImage.blobs.reduce((s, b) => s + b.size, 0));
  const rate = (ms: number[]) => (size / (median(ms) / 1000)).toFixed(0);
  const ratio = (a: number[], b: number[]) => (median(a) / median(b)).toFixed(2);
  const lines = [
    '# Pull-through cache benchmark',
    '',
    `${new Date().toISOString()}; image ${LAYERS} x ${LAYER_MIB} MiB layers + config; ${ROUNDS} cold rounds, ${ROUNDS * 2} warm; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (2 cores, shared)`,
    '',
    '| workload | median ms | MiB/s |',
    '|---|---|---|',
    `| cold: straight from the upstream (Distribution 2.8.2) | ${median(times.upstream).toFixed(0)} | ${rate(times.upstream)} |`,
    `| cold: through Wharf | ${median(times.wharfCold).toFixed(0)} | ${rate(times.wharfCold)} |`,
    `| cold: through Distribution proxy mode | ${median(times.peerCold).toFixed(0)} | ${rate(times.peerCold)} |`,
    `| warm: image pushed to Wharf directly | ${median(times.wharfDirect).toFixed(0)} | ${rate(times.wharfDirect)} |`,
    `| warm: through Wharf's cache | ${median(times.wharfWarm).toFixed(0)} | ${rate(times.wharfWarm)} |`,
    `| warm: through Distribution proxy mode | ${median(times.peerWarm).toFixed(0)} | ${rate(times.peerWarm)} |`,
    '',
    '| ratio (speed, higher is better for Wharf) | value | target |',
    '|---|---|---|',
    `| cold through Wharf vs straight from upstream | ${ratio(times.upstream, times.wharfCold)}x | >= 0.9x |`,
    `| warm through Wharf vs pushed to Wharf directly | ${ratio(times.wharfDirect, times.wharfWarm)}x | >= 0.95x |`,
    `| cold: Wharf vs Distribution proxy mode | ${ratio(times.peerCold, times.wharfCold)}x | >= 1x |`,
    `| warm: Wharf vs Distribution proxy mode | ${ratio(times.peerWarm, times.wharfWarm)}x | >= 1x |`,
    '',
    `| ${CONCURRENT} concurrent cold pulls of one ${mib(imageBytes).toFixed(0)} MiB image | upstream blob bytes / image | wall ms | failed pulls |`,
    '|---|---|---|---|',
    `| Wharf | ${(wharfUpstreamBytes / imageBytes).toFixed(2)}x | ${wharfBurstMs.toFixed(0)} | 0 |`,
    `| Distribution proxy mode | ${(peerUpstreamBytes / imageBytes).toFixed(2)}x | ${peerBurstMs.toFixed(0)} | ${peerFailed} |`,
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
