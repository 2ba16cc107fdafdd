// UI benchmark (issue 18): time to first render of a repository page in Chromium, for a
// repository of 50,000 manifests and one of 5 on the same server, and the size of the shipped
// assets. The UI pages every list through the keyset APIs, so the two should render alike.
// Usage: npm run bench:ui [-- --rounds N]
// Needs PostgreSQL (WHARF_BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres:
// a database is created for the run and dropped at the end) and /usr/bin/chromium.
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { sql } from 'kysely';
import { migrate, openDatabase, readModels } from '../libs/metadata/index.js';
import { openBrowser } from '../test/helpers/browser.js';
import { startWharfServe } from './wharf-serve.js';

const ADMIN_URL = process.env.WHARF_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const PORT = 26010;
const BIG = 50_000;
const SMALL = 5;
const log = (line: string) => console.error(`[bench:ui] ${line}`);

let rounds = 15;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--rounds') rounds = Number(process.argv[++i]);
  else throw new Error(`unknown argument ${process.argv[i]}\nusage: npm run bench:ui [-- --rounds N]`);
}

/** big/repo with 50,000 manifests (every other one tagged) and small/repo with 5 (all tagged), seeded in SQL. */
async function seed(url: string): Promise<void> {
  const database = openDatabase({ url, poolSize: 2, uploadPoolSize: 1 });
  const db = database.db;
  try {
    await migrate(db);
    await db.connection().execute(async (conn) => {
      await sql`set session_replication_role = replica`.execute(conn);
      await sql`insert into blobs values ('sha256:' || repeat('a', 64), 1048576, 'seed/layer')`.execute(conn);
      await sql`insert into repositories (name, change_seq) values ('big/repo', 1), ('small/repo', 1)`.execute(conn);
      for (const [name, count] of [
        ['big/repo', BIG],
        ['small/repo', SMALL],
      ] as const) {
        await sql`insert into manifests (repository_id, digest, media_type, size, payload, artifact_type, created_at)
                  select r.id, 'sha256:' || encode(sha256((${name} || i)::bytea), 'hex'), 'application/vnd.oci.image.manifest.v1+json', 500, '\\x7b7d',
                         case when i % 10 = 0 then 'application/spdx+json' end, now() - make_interval(secs => i)
                    from repositories r, generate_series(0, ${count - 1}::int) i where r.name = ${name}`.execute(conn);
      }
      await sql`insert into blobs select 'sha256:' || encode(sha256(('c' || id)::bytea), 'hex'), 1000, 'seed/config' from manifests`.execute(conn);
      await sql`insert into manifest_references
                select id, 'sha256:' || repeat('a', 64), 'layer' from manifests
                union all select id, 'sha256:' || encode(sha256(('c' || id)::bytea), 'hex'), 'config' from manifests`.execute(conn);
      await sql`insert into tags (repository_id, name, manifest_id)
                select m.repository_id, 'v' || lpad(m.id::text, 6, '0'), m.id from manifests m join repositories r on r.id = m.repository_id
                 where r.name = 'small/repo' or m.id % 2 = 0`.execute(conn);
      await sql`insert into tag_history (repository_id, tag, digest)
                select t.repository_id, t.name, m.digest from tags t join manifests m on m.id = t.manifest_id`.execute(conn);
      await sql`set session_replication_role = origin`.execute(conn);
    });
    await readModels.rebuildReadModels(db);
    await sql`analyze`.execute(db);
  } finally {
    await database.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const dbName = `wharf_bench_ui_${randomBytes(3).toString('hex')}`;
  const admin = openDatabase({ url: ADMIN_URL, poolSize: 1, uploadPoolSize: 1 });
  await sql.raw(`create database ${dbName}`).execute(admin.db);
  const u = new URL(ADMIN_URL);
  u.pathname = `/${dbName}`;
  const url = u.toString();
  let wharf: Awaited<ReturnType<typeof startWharfServe>> | undefined;
  const browser = await openBrowser('bench');
  try {
    const t0 = Date.now();
    await seed(url);
    log(`seeded big/repo (${BIG.toLocaleString()} manifests) and small/repo (${SMALL}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    wharf = await startWharfServe(url, PORT);
    const page = browser.page;
    /** A full page load of the route; ms from navigation start to the UI's wharf:rendered mark. */
    const firstRender = async (hash: string, rows: string): Promise<{ render: number; listing: number }> => {
      await page.goto('about:blank');
      await page.goto(`${wharf!.base}/ui/${hash}`);
      await page.waitForFunction((h) => document.getElementById('main')?.dataset.state === 'ready' && document.getElementById('main')?.dataset.route === h, hash);
      if ((await page.locator(rows).count()) === 0) throw new Error(`${hash}: no rows`);
      return page.evaluate(() => ({
        render: performance.getEntriesByName('wharf:rendered').at(-1)!.startTime,
        // The listing request alone (request start to last byte), to tell the API's share from the page's.
        listing: Math.max(
          0,
          ...performance
            .getEntriesByType('resource')
            .filter((e) => /\/_wharf\/(tags|manifests)\?/.test(e.name))
            .map((e) => e.duration),
        ),
      }));
    };
    const cases = [
      { label: 'tags', hash: (r: string) => `#/repo/${r}`, rows: '#tags tbody tr' },
      { label: 'all manifests', hash: (r: string) => `#/repo/${r}?tab=manifests`, rows: '#manifests tbody tr' },
      { label: 'untagged filter', hash: (r: string) => `#/repo/${r}?tab=manifests&tagged=false`, rows: '#manifests tbody tr' },
    ];
    const results: Array<{ label: string; big: number; small: number; bigListing: number; smallListing: number }> = [];
    for (const c of cases) {
      // Warm-up (server caches, the browser's copy of app.js), then alternating rounds.
      await firstRender(c.hash('big/repo'), c.rows);
      await firstRender(c.hash('small/repo'), c.rows === '#manifests tbody tr' && c.label === 'untagged filter' ? '#manifests, p.empty' : c.rows);
      const big: Array<{ render: number; listing: number }> = [];
      const small: Array<{ render: number; listing: number }> = [];
      for (let i = 0; i < rounds; i++) {
        const order = i % 2 === 0 ? ['big', 'small'] : ['small', 'big'];
        for (const which of order) {
          const repo = which === 'big' ? 'big/repo' : 'small/repo';
          // small/repo has every manifest tagged: its untagged page is the empty message, still a first render.
          const rows = c.label === 'untagged filter' && which === 'small' ? '#manifests, p.empty' : c.rows;
          (which === 'big' ? big : small).push(await firstRender(c.hash(repo), rows));
        }
      }
      const r = {
        label: c.label,
        big: median(big.map((x) => x.render)),
        small: median(small.map((x) => x.render)),
        bigListing: median(big.map((x) => x.listing)),
        smallListing: median(small.map((x) => x.listing)),
      };
      results.push(r);
      log(
        `${c.label}: 50,000 manifests ${r.big.toFixed(0)} ms (listing request ${r.bigListing.toFixed(0)} ms), 5 manifests ${r.small.toFixed(0)} ms (${r.smallListing.toFixed(0)} ms), median of ${rounds}`,
      );
    }
    const assets = join(import.meta.dirname, '..', 'dist', 'ui');
    let raw = 0;
    let gz = 0;
    const sizes: string[] = [];
    for (const f of (await readdir(assets)).sort()) {
      const body = await readFile(join(assets, f));
      const g = gzipSync(body, { level: 9 }).length;
      raw += body.length;
      gz += g;
      sizes.push(`${f} ${body.length.toLocaleString()} B (gzip ${g.toLocaleString()} B)`);
    }
    console.log(
      `\nUI first render, median of ${rounds} page loads each, load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} (2 cores)\n`,
    );
    console.log('| page | 50,000 manifests | 5 manifests | ratio | listing request, 50,000 / 5 |');
    console.log('|---|---|---|---|---|');
    for (const r of results) {
      console.log(
        `| ${r.label} | ${r.big.toFixed(0)} ms | ${r.small.toFixed(0)} ms | ${(r.big / r.small).toFixed(2)} | ${r.bigListing.toFixed(0)} ms / ${r.smallListing.toFixed(0)} ms |`,
      );
    }
    console.log(`\nShipped assets: ${sizes.join(', ')}; total ${raw.toLocaleString()} B, ${gz.toLocaleString()} B gzipped (what a browser receives).`);
  } finally {
    await browser.close();
    await wharf?.stop();
    await sql.raw(`drop database if exists ${dbName} with (force)`).execute(admin.db);
    await admin.close();
  }
}

await main();
