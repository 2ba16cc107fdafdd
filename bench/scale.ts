// Scale benchmark (issue 14, target 6): the cost of a manifest read (by tag, by digest), a
// tags/list page and a catalog page at 1,000, 100,000 and 1,000,000 manifests (up to 100,000
// repositories), each set seeded in SQL into a fresh database and served by `wharf serve`.
// Usage: npm run bench:scale [-- --requests N] [--sizes 1000,100000,1000000] [--port-base P]
// Needs PostgreSQL (WHARF_BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres:
// a database per set, dropped at the end).
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from 'kysely';
import { readModels } from '../libs/metadata/index.js';
import { createScratchDatabase, dropScratchDatabase } from './scratch-database.js';
import { startWharfServe } from './wharf-serve.js';

const TAGS = 1000;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const log = (line: string) => console.error(`[bench:scale] ${line}`);

let requests = 400;
let sizes = [1_000, 100_000, 1_000_000];
let portBase = 5420;
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (arg === '--requests') requests = Number(process.argv[++i]);
  else if (arg === '--sizes') sizes = process.argv[++i]!.split(',').map(Number);
  else if (arg === '--port-base') portBase = Number(process.argv[++i]);
  else throw new Error(`unknown argument ${arg}\nusage: npm run bench:scale [-- --requests N] [--sizes a,b,c] [--port-base P]`);
}

interface Dataset {
  manifests: number;
  repositories: number;
  url: string;
  dbName: string;
}

/** The payload of bench/tags's manifest i, as stored (a small OCI manifest). */
function payloadOf(i: number): string {
  return JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, annotations: { i: String(i) } });
}

const digestOf = (i: number) => `sha256:${createHash('sha256').update(payloadOf(i)).digest('hex')}`;
const tagOf = (i: number) => `t${String(i).padStart(4, '0')}`;
const repoName = (i: number) => `team${String(Math.floor(i / 1000)).padStart(3, '0')}/app${String(i % 1000).padStart(3, '0')}`;

/**
 * `bench/tags`: 1,000 manifests, each tagged (t0000..t0999), the repository every case reads;
 * around it, `manifests - 1,000` more spread over up to 100,000 repositories, one tag each.
 */
async function seed(manifests: number): Promise<Dataset> {
  const filler = Math.max(manifests - TAGS, 1000);
  const repositories = Math.min(filler, 100_000);
  const perRepository = Math.ceil(filler / repositories);
  const { name: dbName, url, database } = await createScratchDatabase(`wharf_bench_scale_${manifests}`);
  const db = database.db;
  try {
    const started = Date.now();
    const rows = Array.from({ length: TAGS }, (_, i) => ({ digest: digestOf(i), payload: payloadOf(i), tag: tagOf(i) }));
    await db.connection().execute(async (conn) => {
      await sql`set session_replication_role = replica`.execute(conn);
      await sql`insert into repositories (name, change_seq)
                select 'team' || lpad((i / 1000)::text, 3, '0') || '/app' || lpad((i % 1000)::text, 3, '0'), 1
                  from generate_series(0, ${repositories - 1}::int) i`.execute(conn);
      await sql`insert into manifests (repository_id, digest, media_type, size, payload, created_at)
                select r.id, 'sha256:' || encode(sha256((r.id || '/' || k)::text::bytea), 'hex'), ${OCI_MANIFEST}, 2, '\\x7b7d', now()
                  from repositories r, generate_series(1, ${perRepository}::int) k`.execute(conn);
      await sql`insert into tags (repository_id, name, manifest_id) select repository_id, 'v' || id, id from manifests`.execute(conn);
      await sql`insert into repositories (name, change_seq) values ('bench/tags', 1)`.execute(conn);
      await sql`insert into manifests (repository_id, digest, media_type, size, payload, created_at)
                select r.id, x.digest, ${OCI_MANIFEST}, octet_length(convert_to(x.payload, 'UTF8')), convert_to(x.payload, 'UTF8'), now()
                  from repositories r, jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(digest text, payload text, tag text)
                 where r.name = 'bench/tags'`.execute(conn);
      await sql`insert into tags (repository_id, name, manifest_id)
                select m.repository_id, x.tag, m.id
                  from manifests m join repositories r on r.id = m.repository_id and r.name = 'bench/tags'
                  join jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(digest text, payload text, tag text) on x.digest = m.digest`.execute(conn);
      await sql`set session_replication_role = origin`.execute(conn);
    });
    await readModels.rebuildReadModels(db);
    await sql`analyze`.execute(db);
    const count = await sql<{ n: string }>`select count(*)::text as n from manifests`.execute(db);
    const total = Number(count.rows[0]!.n);
    log(`${dbName}: ${total.toLocaleString()} manifests in ${repositories + 1} repositories, seeded and indexed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { manifests: total, repositories: repositories + 1, url, dbName };
  } finally {
    await database.close();
  }
}

interface Case {
  name: string;
  path: string;
  headers?: Record<string, string>;
  method?: string;
}

const cases = (catalogLast: string): Case[] => [
  { name: 'manifest GET by tag', path: `/v2/bench/tags/manifests/${tagOf(500)}`, headers: { accept: OCI_MANIFEST } },
  { name: 'manifest GET by digest', path: `/v2/bench/tags/manifests/${digestOf(500)}`, headers: { accept: OCI_MANIFEST } },
  { name: 'manifest HEAD by tag', path: `/v2/bench/tags/manifests/${tagOf(500)}`, headers: { accept: OCI_MANIFEST }, method: 'HEAD' },
  { name: 'tags/list (1,000 tags)', path: '/v2/bench/tags/tags/list' },
  { name: 'tags/list page n=100, middle', path: `/v2/bench/tags/tags/list?n=100&last=${tagOf(499)}` },
  { name: 'catalog page n=100, middle', path: `/v2/_catalog?n=100&last=${encodeURIComponent(catalogLast)}` },
];

async function timeOne(base: string, c: Case): Promise<number> {
  const t = performance.now();
  const res = await fetch(base + c.path, { method: c.method ?? 'GET', headers: c.headers ?? {} });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${c.name} at ${base}: ${res.status}`);
  return performance.now() - t;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const datasets: Dataset[] = [];
  const servers: Array<{ base: string; stop(): Promise<void> }> = [];
  const lines: string[] = [];
  try {
    for (const size of sizes) datasets.push(await seed(size));
    for (const [i, d] of datasets.entries()) servers.push(await startWharfServe(d.url, portBase + i));
    // The same catalog position in every set: the middle of the repositories the smallest set has.
    const catalogCases = cases(repoName(Math.floor(Math.min(...datasets.map((d) => d.repositories - 1)) / 2)));
    const times = datasets.map(() => catalogCases.map(() => [] as number[]));
    for (const s of servers) for (const c of catalogCases) for (let k = 0; k < 20; k++) await timeOne(s.base, c); // warm-up
    // Rounds in alternating order (small..large, large..small), so a slow moment lands on every set.
    const rounds = 4;
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? servers.map((_, i) => i) : servers.map((_, i) => servers.length - 1 - i);
      for (const i of order) for (const [ci, c] of catalogCases.entries()) for (let k = 0; k < requests / rounds; k++) times[i]![ci]!.push(await timeOne(servers[i]!.base, c));
    }
    lines.push(
      `| case | ${datasets.map((d) => `${d.manifests.toLocaleString()} manifests / ${d.repositories.toLocaleString()} repos, p50 / p99 ms`).join(' | ')} | ratio p50 largest / smallest |`,
      `| --- | ${datasets.map(() => '---:').join(' | ')} | ---: |`,
    );
    for (const [ci, c] of catalogCases.entries()) {
      const p50s = datasets.map((_, i) =>
        percentile(
          [...times[i]![ci]!].sort((a, b) => a - b),
          50,
        ),
      );
      const p99s = datasets.map((_, i) =>
        percentile(
          [...times[i]![ci]!].sort((a, b) => a - b),
          99,
        ),
      );
      lines.push(`| ${c.name} | ${p50s.map((p, i) => `${p.toFixed(2)} / ${p99s[i]!.toFixed(2)}`).join(' | ')} | ${(p50s.at(-1)! / p50s[0]!).toFixed(2)} |`);
    }
    const report = `${lines.join('\n')}\n\nSequential requests on one keep-alive connection, ${requests} per case and set, ${rounds} rounds in alternating order.\n`;
    console.log(report);
    await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
    await writeFile(join(import.meta.dirname, 'results', 'scale-latest.md'), report);
  } finally {
    for (const s of servers) await s.stop().catch(() => {});
    if (process.env.WHARF_BENCH_KEEP !== '1') {
      for (const d of datasets) await dropScratchDatabase(d.dbName);
    } else for (const d of datasets) log(`kept ${d.url}`);
  }
}

await main();
