// `wharf fsck`: re-reads blobs and checks their digests and sizes, next to a live registry.
import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { inventory, type Schema } from '../../libs/metadata/index.js';
import type { BlobStore } from '../../libs/storage/index.js';

export interface FsckReport {
  checked: number;
  bytes: number;
  ok: number;
  /** Objects whose bytes do not hash to the blob's digest, or whose size differs. */
  corrupt: Array<{ digest: string; key: string; actual: string; size: number }>;
  /** Blob rows whose object cannot be read. */
  unreadable: Array<{ digest: string; key: string; error: string }>;
}

/** Re-reads blobs (all, or `sample` picked at random) and checks their digests and sizes. */
export async function fsck(
  db: Kysely<Schema>,
  store: BlobStore,
  options: { sample?: number; concurrency?: number; onProgress?: (done: number, total: number) => void },
): Promise<FsckReport> {
  const report: FsckReport = { checked: 0, bytes: 0, ok: 0, corrupt: [], unreadable: [] };
  const rows = options.sample !== undefined ? await inventory.sampleBlobs(db, options.sample) : await inventory.allBlobs(db);
  let next = 0;
  const check = async (row: { digest: string; size: number; storage_key: string }) => {
    const [algorithm, expectedHex] = row.digest.split(':') as [string, string];
    let hash;
    try {
      hash = createHash(algorithm);
    } catch {
      report.unreadable.push({ digest: row.digest, key: row.storage_key, error: `unsupported algorithm ${algorithm}` });
      return;
    }
    let size = 0;
    try {
      for await (const chunk of await store.read(row.storage_key)) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
    } catch (err) {
      if ((await inventory.blobStorageKey(db, row.digest)) === row.storage_key) report.unreadable.push({ digest: row.digest, key: row.storage_key, error: (err as Error).message });
      return;
    }
    report.bytes += size;
    const actual = hash.digest('hex');
    if (actual === expectedHex && size === row.size) report.ok++;
    else report.corrupt.push({ digest: row.digest, key: row.storage_key, actual: `${algorithm}:${actual}`, size });
  };
  const worker = async () => {
    while (next < rows.length) {
      const row = rows[next++]!;
      await check(row);
      report.checked++;
      options.onProgress?.(report.checked, rows.length);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
  return report;
}
