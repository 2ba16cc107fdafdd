import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Schema } from './schema.js';

const INT8_OID = 20;

/**
 * 64-bit integers (sizes, offsets, ids) come back as JavaScript numbers in every mode.
 * A value beyond 2^53 would lose precision, so it is refused rather than rounded.
 */
function parseInt8(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`int8 value ${value} exceeds the safe integer range`);
  return n;
}

const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return parseInt8;
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

export interface DatabaseOptions {
  url: string;
  /** Connections for ordinary queries. */
  poolSize: number;
  /** Connections held by in-flight upload requests (one each, for the session's row lock). */
  uploadPoolSize: number;
  onError?: (err: Error) => void;
}

export interface Database {
  db: Kysely<Schema>;
  /** A second pool whose connections stay checked out while an upload body streams. */
  uploadsDb: Kysely<Schema>;
  close(): Promise<void>;
}

function makePool(url: string, max: number, onError?: (err: Error) => void): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, types, connectionTimeoutMillis: 10_000 });
  // An idle client losing its connection (database restart) must not crash the process.
  pool.on('error', (err) => onError?.(err));
  return pool;
}

export function openDatabase(options: DatabaseOptions): Database {
  const pool = makePool(options.url, options.poolSize, options.onError);
  const uploadPool = makePool(options.url, options.uploadPoolSize, options.onError);
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  const uploadsDb = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: uploadPool }) });
  return {
    db,
    uploadsDb,
    async close() {
      await Promise.all([db.destroy(), uploadsDb.destroy()]);
    },
  };
}
