// Listing benchmark (issue 5): catalog, nested namespace listing and manifest listing pages at
// 100,000 repositories (one of 50,000 manifests) against 1,000 repositories (one of 1,000),
// and the same catalog page on CNCF Distribution 2.8.2 with 5,000 repositories.
// Usage: npm run bench:listings [-- --requests N]
// Needs PostgreSQL (WHARF_BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres:
// a database is created per dataset and dropped at the end) and /usr/bin/docker-registry.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from 'kysely';
import { openDatabase, readModels } from '../libs/metadata/index.js';
import { startDistribution } from './registries.js';
import { createScratchDatabase, dropScratchDatabase } from './scratch-database.js';
import { startWharfServe } from './wharf-serve.js';

const PORTS = { large: 5410, small: 5411, distribution: 5401 };
const PAGE = 100;
const log = (line: string) => console.error(`[bench:listings] ${line}`);

let requests = 400;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--requests') requests = Number(process.argv[++i]);
  else throw new Error(`unknown argument ${process.argv[i]}\nusage: npm run bench:listings [-- --requests N]`);
}

interface Dataset {
  label: string;
  repositories: number;
  bigManifests: number;
  url: string;
  dbName: string;
}

const repoName = (i: number) => `team${String(Math.floor(i / 1000)).padStart(3, '0')}/app${String(i % 1000).padStart(3, '0')}`;

/** A fresh database with the schema, seeded in SQL: `repositories` repositories of one tagged manifest each, plus big/repo. */
async function seed(label: string, repositories: number, bigManifests: number): Promise<Dataset> {
  const { name: dbName, url, database } = await createScratchDatabase(`wharf_bench_listings_${label}`);
  const db = database.db;
  try {
    const started = Date.now();
    await db.connection().execute(async (conn) => {
      // Bulk rows without the per-row change triggers; change numbers are set once below.
      await sql`set session_replication_role = replica`.execute(conn);
      await sql`insert into blobs values ('sha256:' || repeat('a', 64), 1048576, 'seed/layer')`.execute(conn);
      await sql`insert into repositories (name, change_seq)
                select 'team' || lpad((i / 1000)::text, 3, '0') || '/app' || lpad((i % 1000)::text, 3, '0'), 1
                  from generate_series(0, ${repositories - 1}::int) i`.execute(conn);
      await sql`insert into repositories (name, change_seq) values ('big/repo', 1)`.execute(conn);
      await sql`insert into manifests (repository_id, digest, media_type, size, payload, created_at)
                select id, 'sha256:' || encode(sha256(('m' || id)::bytea), 'hex'), 'application/vnd.oci.image.manifest.v1+json', 500, '\\x7b7d', now()
                  from repositories where name <> 'big/repo'`.execute(conn);
      await sql`insert into manifests (repository_id, digest, media_type, size, payload, artifact_type, created_at)
                select r.id, 'sha256:' || encode(sha256(('big' || i)::bytea), 'hex'), 'application/vnd.oci.image.manifest.v1+json', 500, '\\x7b7d',
                       case when i % 10 = 0 then 'application/spdx+json' end, now() - make_interval(secs => i)
                  from repositories r, generate_series(0, ${bigManifests - 1}::int) i where r.name = 'big/repo'`.execute(conn);
      // Every manifest references one shared layer and one config of its own.
      await sql`insert into blobs select 'sha256:' || encode(sha256(('c' || id)::bytea), 'hex'), 1000, 'seed/config' from manifests`.execute(conn);
      await sql`insert into manifest_references
                select id, 'sha256:' || repeat('a', 64), 'layer' from manifests
                union all select id, 'sha256:' || encode(sha256(('c' || id)::bytea), 'hex'), 'config' from manifests`.execute(conn);
      // One tag per repository; in big/repo every other manifest is tagged.
      await sql`insert into tags (repository_id, name, manifest_id)
                select m.repository_id, case when r.name = 'big/repo' then 'v' || m.id else 'latest' end, m.id
                  from manifests m join repositories r on r.id = m.repository_id
                 where r.name <> 'big/repo' or m.id % 2 = 0`.execute(conn);
      await sql`insert into tag_history (repository_id, tag, digest)
                select t.repository_id, t.name, m.digest from tags t join manifests m on m.id = t.manifest_id`.execute(conn);
      await sql`set session_replication_role = origin`.execute(conn);
      await sql`analyze`.execute(conn);
    });
    log(
      `${label}: seeded ${repositories.toLocaleString()} repositories + big/repo (${bigManifests.toLocaleString()} manifests) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    const reindexStart = Date.now();
    const counts = await readModels.rebuildReadModels(db);
    const reindexSeconds = (Date.now() - reindexStart) / 1000;
    log(
      `${label}: wharf reindex built ${counts.repositories} catalog entries, ${counts.namespaces} tree nodes, ${counts.manifests} listing rows in ${reindexSeconds.toFixed(1)} s`,
    );
    await sql`analyze`.execute(db);
    reindexTimes[label] = reindexSeconds;
    // What one event costs the workers in big/repo: a full catalog recompute and a one-manifest listing refresh.
    const costs: number[] = [];
    for (let i = 0; i < 5; i++) {
      await sql`update repositories set change_seq = change_seq + 1 where name = 'big/repo'`.execute(db);
      const t0 = performance.now();
      await readModels.refreshCatalogEntry(db, 'big/repo');
      const t1 = performance.now();
      await readModels.refreshManifestListing(db, 'big/repo', { digests: [], tags: [await firstTag(db)] });
      costs.push(t1 - t0, performance.now() - t1);
    }
    indexerCosts[label] = {
      catalog: median(costs.filter((_, i) => i % 2 === 0)),
      listing: median(costs.filter((_, i) => i % 2 === 1)),
    };
    return { label, repositories, bigManifests, url, dbName };
  } finally {
    await database.close();
  }
}

const reindexTimes: Record<string, number> = {};

async function firstTag(db: import('kysely').Kysely<import('../libs/metadata/index.js').Schema>): Promise<string> {
  const row = await sql<{ name: string }>`select t.name from tags t join repositories r on r.id = t.repository_id where r.name = 'big/repo' limit 1`.execute(db);
  return row.rows[0]!.name;
}
const indexerCosts: Record<string, { catalog: number; listing: number }> = {};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

interface Result {
  p50: number;
  p99: number;
  items: number;
}

/** Checks the page once, then times `count` sequential GETs on one keep-alive connection after `warmup` thrown away. */
async function timeRequests(url: string, itemsOf: (body: Record<string, unknown[]>) => unknown[], count: number, warmup: number): Promise<{ times: number[]; items: number }> {
  const check = await fetch(url);
  if (check.status !== 200) throw new Error(`${url}: ${check.status} ${await check.text()}`);
  const items = itemsOf((await check.json()) as Record<string, unknown[]>).length;
  if (items === 0) throw new Error(`${url}: empty page`);
  const times: number[] = [];
  for (let i = 0; i < count + warmup; i++) {
    const t0 = performance.now();
    const res = await fetch(url);
    await res.arrayBuffer();
    if (i >= warmup) times.push(performance.now() - t0);
  }
  return { times, items };
}

function summarize(times: number[], items: number): Result {
  const sorted = [...times].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), items };
}

/**
 * The same case on two servers in halves ordered A, B, B, A, so that a slow moment of the shared
 * machine lands on both.
 */
async function measurePair(a: string, b: string, itemsOf: (body: Record<string, unknown[]>) => unknown[]): Promise<[Result, Result]> {
  const half = Math.ceil(requests / 2);
  const a1 = await timeRequests(a, itemsOf, half, 100);
  const b1 = await timeRequests(b, itemsOf, half, 100);
  const b2 = await timeRequests(b, itemsOf, half, 20);
  const a2 = await timeRequests(a, itemsOf, half, 20);
  return [summarize([...a1.times, ...a2.times], a1.items), summarize([...b1.times, ...b2.times], b1.items)];
}

async function measure(url: string, itemsOf: (body: Record<string, unknown[]>) => unknown[]): Promise<Result> {
  const r = await timeRequests(url, itemsOf, requests, 100);
  return summarize(r.times, r.items);
}

type Position = 'start' | 'middle' | 'end';
const POSITIONS: Position[] = ['start', 'middle', 'end'];

type Case = { name: string; position: Position; path: string; items: (b: Record<string, unknown[]>) => unknown[] };

/** The `last` of a page at the start, middle and end of a keyset, read from the database. */
async function keysetPositions(url: string, query: string): Promise<Record<Position, string | undefined>> {
  const database = openDatabase({ url, poolSize: 1, uploadPoolSize: 1 });
  try {
    const keys = (await sql.raw<{ k: string }>(query).execute(database.db)).rows.map((r) => r.k);
    return { start: undefined, middle: keys[Math.floor(keys.length / 2)], end: keys[keys.length - PAGE - 1] };
  } finally {
    await database.close();
  }
}

async function cases(dataset: Dataset): Promise<Case[]> {
  const big = `(select id from repositories where name = 'big/repo')`;
  const catalog = await keysetPositions(dataset.url, 'select name as k from catalog_entries order by name');
  const nested = await keysetPositions(dataset.url, "select child as k from namespace_children where parent = 'team000' order by child");
  const manifests = await keysetPositions(dataset.url, `select digest as k from manifest_listing where repository_id = ${big} order by digest`);
  const untagged = await keysetPositions(dataset.url, `select digest as k from manifest_listing where repository_id = ${big} and not tagged order by digest`);
  const last = (k: string | undefined) => (k === undefined ? '' : `&last=${encodeURIComponent(k)}`);
  const out: Case[] = [];
  for (const position of POSITIONS) {
    out.push({ name: 'catalog page', position, path: `/v2/_catalog?n=${PAGE}${last(catalog[position])}`, items: (b) => b.repositories! });
    out.push({
      name: 'nested page (team000: 1,000 children)',
      position,
      path: `/v2/team000/_wharf/repositories?n=${PAGE}${last(nested[position])}`,
      items: (b) => b.repositories!,
    });
    out.push({ name: 'manifest listing page (big/repo)', position, path: `/v2/big/repo/_wharf/manifests?n=${PAGE}${last(manifests[position])}`, items: (b) => b.manifests! });
    out.push({
      name: 'manifest listing page, tagged=false',
      position,
      path: `/v2/big/repo/_wharf/manifests?n=${PAGE}&tagged=false${last(untagged[position])}`,
      items: (b) => b.manifests!,
    });
  }
  return out;
}

async function dropDatabase(name: string): Promise<void> {
  await dropScratchDatabase(name).catch((err) => log(`drop ${name}: ${err}`));
}

async function main(): Promise<void> {
  const datasets: Dataset[] = [];
  const results = new Map<string, Result>();
  const stops: Array<() => Promise<void>> = [];
  try {
    datasets.push(await seed('large', 100_000, 50_000));
    datasets.push(await seed('small', 1_000, 1_000));
    const [large, small] = datasets as [Dataset, Dataset];
    const wharfLarge = await startWharfServe(large.url, PORTS.large);
    stops.push(wharfLarge.stop);
    const wharfSmall = await startWharfServe(small.url, PORTS.small);
    stops.push(wharfSmall.stop);
    const smallCases = await cases(small);
    for (const [i, c] of (await cases(large)).entries()) {
      const s = smallCases[i]!;
      const [rl, rs] = await measurePair(`${wharfLarge.base}${c.path}`, `${wharfSmall.base}${s.path}`, c.items);
      results.set(`large|${c.name}|${c.position}`, rl);
      results.set(`small|${c.name}|${c.position}`, rs);
      log(
        `${c.name} ${c.position}: large p50 ${rl.p50.toFixed(2)} / p99 ${rl.p99.toFixed(2)} ms (${rl.items} items); small p50 ${rs.p50.toFixed(2)} / p99 ${rs.p99.toFixed(2)} ms (${rs.items} items)`,
      );
    }
    await wharfSmall.stop();
    await wharfLarge.stop();
    stops.length = 0;

    // Distribution: its catalog walks the storage tree; a repository is a directory holding _layers.
    const distribution = await startDistribution(PORTS.distribution);
    stops.push(distribution.stop);
    const root = join(distribution.dir, 'data', 'docker', 'registry', 'v2', 'repositories');
    const DIST_REPOS = 5_000;
    for (let i = 0; i < DIST_REPOS; i++) {
      for (const sub of ['_layers', '_manifests', '_uploads']) await mkdir(join(root, repoName(i), sub), { recursive: true });
    }
    await writeFile(join(distribution.dir, 'seeded'), `${DIST_REPOS}\n`);
    const distResults: Record<Position, Result> = {} as Record<Position, Result>;
    for (const position of POSITIONS) {
      const last = position === 'start' ? undefined : position === 'middle' ? repoName(DIST_REPOS / 2) : repoName(DIST_REPOS - PAGE - 1);
      const r = await measure(`${distribution.base}/v2/_catalog?n=${PAGE}${last ? `&last=${encodeURIComponent(last)}` : ''}`, (b) => b.repositories!);
      distResults[position] = r;
      log(`Distribution catalog page ${position}: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms (${r.items} items)`);
    }
    await distribution.stop();
    stops.pop();

    // Report.
    const lines: string[] = [];
    lines.push(
      `Sequential GETs on one keep-alive connection, ${requests} timed per case and server (two halves, ordered large, small, small, large, each after a warm-up); pages of n=${PAGE}; times in ms.`,
    );
    lines.push('');
    lines.push('| case | position | 100k repos p50 | p99 | 1k repos p50 | p99 | ratio p50 large/small |');
    lines.push('|---|---|---|---|---|---|---|');
    const names = [...new Set([...results.keys()].map((k) => k.split('|')[1]!))];
    for (const name of names) {
      for (const position of POSITIONS) {
        const large = results.get(`large|${name}|${position}`)!;
        const small = results.get(`small|${name}|${position}`)!;
        lines.push(
          `| ${name} | ${position} | ${large.p50.toFixed(2)} | ${large.p99.toFixed(2)} | ${small.p50.toFixed(2)} | ${small.p99.toFixed(2)} | ${(large.p50 / small.p50).toFixed(2)} |`,
        );
      }
    }
    lines.push('');
    lines.push(`| catalog page, n=${PAGE} | position | Distribution 2.8.2, 5k repos p50 | p99 | Wharf, 100k repos p50 | p99 |`);
    lines.push('|---|---|---|---|---|---|');
    for (const position of POSITIONS) {
      const d = distResults[position];
      const w = results.get(`large|catalog page|${position}`)!;
      lines.push(`| | ${position} | ${d.p50.toFixed(2)} | ${d.p99.toFixed(2)} | ${w.p50.toFixed(2)} | ${w.p99.toFixed(2)} |`);
    }
    lines.push('');
    lines.push(`wharf reindex: ${reindexTimes.large?.toFixed(1)} s for 100k repositories + 50k-manifest repository (${reindexTimes.small?.toFixed(1)} s for the small set).`);
    for (const [label, c] of Object.entries(indexerCosts)) {
      lines.push(
        `Worker cost of one event in big/repo (${label}): catalog entry recompute ${c.catalog.toFixed(1)} ms, listing refresh of one tag ${c.listing.toFixed(1)} ms (median of 5).`,
      );
    }
    console.log(lines.join('\n'));
    await writeFile(join(import.meta.dirname, 'results', 'listings-latest.md'), `${lines.join('\n')}\n`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    for (const d of datasets) await dropDatabase(d.dbName);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
