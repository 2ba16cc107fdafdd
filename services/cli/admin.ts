import { join } from 'node:path';
import { ConfigError, parseUpstreams, type Config } from '../../libs/config/index.js';
import { openDatabase, runningEmbeddedPostgresUrl, type Database } from '../../libs/metadata/index.js';
import { fsck } from './fsck.js';
import { reconcile } from './reconcile.js';
import type { BlobStore } from '../../libs/storage/index.js';
import { openBlobStore, startLockedEmbeddedPostgres } from './parts.js';

/** `wharf reconcile` (alias `wharf gc`) and `wharf fsck`: offline-style checks that run safely next to a live registry. */

interface AdminParts {
  database: Database;
  store: BlobStore;
  close(): Promise<void>;
}

/** database.url, else the embedded PostgreSQL of a running `wharf all` on data.dir, else a temporary start of it. */
async function openAdminParts(config: Config): Promise<AdminParts> {
  let url = config['database.url'];
  let stop: (() => Promise<void>) | undefined;
  if (url === '') {
    const dir = join(config['data.dir'], 'postgres');
    const running = await runningEmbeddedPostgresUrl(dir);
    if (running) url = running;
    else {
      const started = await startLockedEmbeddedPostgres(config);
      url = started.url;
      stop = started.stop;
    }
  }
  const database = openDatabase({ url, poolSize: 4, uploadPoolSize: 1 });
  const store = await openBlobStore(config);
  return {
    database,
    store,
    async close() {
      await database.close();
      (store as { destroy?: () => void }).destroy?.();
      await stop?.();
    },
  };
}

/** A one-line bar on a terminal; nothing when stdout is a pipe or a file. */
function progress(label: string): { update(done: number, total: number | undefined): void; end(): void } {
  if (!process.stdout.isTTY) return { update() {}, end() {} };
  let last = 0;
  return {
    update(done, total) {
      const now = Date.now();
      if (now - last < 100 && done !== total) return;
      last = now;
      if (total) {
        const width = 30;
        const filled = Math.round((done / total) * width);
        process.stdout.write(`\r${label} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${total}`);
      } else {
        process.stdout.write(`\r${label} ${done}`);
      }
    },
    end() {
      process.stdout.write('\r\x1b[K');
    },
  };
}

function number(flag: string, value: string | undefined, min: number): number {
  const n = Number(value);
  if (value === undefined || !Number.isSafeInteger(n) || n < min) throw new ConfigError(`${flag} needs an integer of at least ${min}`);
  return n;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Exit code: 0 storage and metadata agree (or every orphan was deleted), 1 a discrepancy is left. */
export async function runReconcile(config: Config, args: string[]): Promise<number> {
  let apply: boolean | undefined;
  let minAgeSeconds = 3600;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--dry-run') apply = false;
    else if (arg === '--apply') apply = true;
    else if (arg === '--min-age') minAgeSeconds = number('--min-age', args[++i], 0);
    else throw new ConfigError(`wharf reconcile: unexpected argument ${arg} (usage: wharf reconcile --dry-run | --apply [--min-age SECONDS])`);
  }
  if (apply === undefined) throw new ConfigError('wharf reconcile needs --dry-run or --apply');
  const parts = await openAdminParts(config);
  try {
    const bar = progress('listing storage');
    const proxiedPrefixes = parseUpstreams(config['proxy.upstreams']).map((u) => u.prefix);
    const report = await reconcile(parts.database.db, parts.store, { apply, minAgeSeconds, onProgress: bar.update, proxiedPrefixes });
    bar.end();
    for (const o of report.orphans) console.log(`orphan object ${o.key} (${o.size} bytes)${apply ? ': deleted' : ''}`);
    for (const m of report.missing) {
      console.log(
        `missing object ${m.key} of blob ${m.digest}${m.manifests.length ? `, named by ${m.manifests.join(', ')}` : ''}${apply ? ': blob forgotten, push it again' : ''}`,
      );
    }
    for (const d of report.dangling) console.log(`dangling reference: ${d.manifest} names ${d.digest}, which is not stored`);
    for (const u of report.strayUploads) {
      console.log(`unfinished multipart upload ${u.uploadId} of ${u.key} (started ${u.initiated.toISOString()}), no session owns it${apply ? ': aborted' : ''}`);
    }
    console.log(
      `wharf reconcile${apply ? ' --apply' : ' --dry-run'}: ${report.objects} objects (${mib(report.bytes)}); ` +
        `${report.orphans.length} orphan objects (${mib(report.orphanBytes)})${apply ? `, ${report.orphansDeleted} deleted` : ''}; ` +
        `${report.missing.length} blobs with a missing object${apply ? `, ${report.blobsForgotten} forgotten` : ''}; ` +
        `${report.dangling.length} dangling references; ` +
        `${report.strayUploads.length} unfinished multipart uploads no session owns${apply ? `, ${report.strayUploadsAborted} aborted` : ''}`,
    );
    const orphansLeft = apply ? report.orphans.length - report.orphansDeleted : report.orphans.length;
    const straysLeft = apply ? report.strayUploads.length - report.strayUploadsAborted : report.strayUploads.length;
    return orphansLeft > 0 || straysLeft > 0 || report.missing.length > 0 || report.dangling.length > 0 ? 1 : 0;
  } finally {
    await parts.close();
  }
}

/** Exit code: 0 every checked blob hashes to its digest, 1 otherwise. */
export async function runFsck(config: Config, args: string[]): Promise<number> {
  let sample: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--sample') sample = number('--sample', args[++i], 1);
    else throw new ConfigError(`wharf fsck: unexpected argument ${arg} (usage: wharf fsck [--sample N])`);
  }
  const parts = await openAdminParts(config);
  try {
    const bar = progress('checking blobs');
    const report = await fsck(parts.database.db, parts.store, { sample, onProgress: bar.update });
    bar.end();
    for (const c of report.corrupt) console.log(`corrupt blob ${c.digest}: object ${c.key} holds ${c.size} bytes hashing to ${c.actual}`);
    for (const u of report.unreadable) console.log(`unreadable blob ${u.digest}: object ${u.key}: ${u.error}`);
    console.log(`wharf fsck: ${report.checked} blobs checked (${mib(report.bytes)}); ${report.ok} ok, ${report.corrupt.length} corrupt, ${report.unreadable.length} unreadable`);
    return report.corrupt.length > 0 || report.unreadable.length > 0 ? 1 : 0;
  } finally {
    await parts.close();
  }
}
