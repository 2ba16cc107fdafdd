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
  /** Server-side backstops (and a client-side deadline) on every connection; absent: none (one-off commands, migrations). */
  timeouts?: DatabaseTimeouts;
  onError?: (err: Error) => void;
}

/** Milliseconds; 0 turns one off. */
export interface DatabaseTimeouts {
  /** statement_timeout; a query without an answer this long after it (plus a margin) also fails on the client. */
  statementMs: number;
  /** lock_timeout: how long a statement waits for a row or table lock. */
  lockMs: number;
  /** idle_in_transaction_session_timeout on the query pool. */
  idleTransactionMs: number;
  /** The same on the upload pool, whose transactions wait on a streaming body between statements. */
  uploadIdleTransactionMs: number;
}

/** How long after statement_timeout a query's answer may still arrive before the connection is given up as stalled. */
const CLIENT_DEADLINE_MARGIN_MS = 5_000;

export interface PoolStats {
  /** 'queries' or 'uploads'. */
  pool: string;
  max: number;
  /** Connections open (idle + checked out). */
  total: number;
  idle: number;
  /** Callers queued for a connection. */
  waiting: number;
}

export interface Database {
  db: Kysely<Schema>;
  /** A second pool whose connections stay checked out while an upload body streams. */
  uploadsDb: Kysely<Schema>;
  /** One round trip (`select 1`) on the query pool; rejects after `timeoutMs`. */
  ping(timeoutMs: number): Promise<void>;
  poolStats(): PoolStats[];
  /** A separate one-connection database without the timeouts, for migrations and rebuilds that may run long; close it after use. */
  unbounded(): Database;
  /** The same database and timeouts on pools of its own (`size` query connections), e.g. for background loops that must not take the connections requests wait for; close it after use. */
  withPool(size: number): Database;
  close(): Promise<void>;
}

/** Connection-level failures: the server is unreachable, restarting or refusing connections. */
const UNAVAILABLE_SYSTEM_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
const UNAVAILABLE_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended unexpectedly|the database system is (starting up|shutting down)|Query read timeout/i;
/** statement_timeout (57014) and lock_timeout (55P03) expired: PostgreSQL did not answer in time, which is not the client's fault. */
const TIMED_OUT_CODES = new Set(['57014', '55P03']);

/**
 * Whether `err` (from pg or Kysely) means PostgreSQL cannot be reached right now rather than
 * that a query was wrong: SQLSTATE class 08 (connection exception), 57P01-57P03 (admin shutdown,
 * crash shutdown, cannot connect now), 53300 (too many connections), or a socket-level failure.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === 'string') {
      if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return true;
      if (TIMED_OUT_CODES.has(code)) return true;
      if (UNAVAILABLE_SYSTEM_CODES.has(code)) return true;
    }
    if (typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message)) return true;
  }
  return false;
}

/**
 * A client that gives up a connection whose query went unanswered past its deadline (pg's
 * query_timeout): pg fails the query but keeps the connection, so the next query would queue
 * behind the stalled one. Destroying the socket makes the pool drop the client on release.
 */
class DeadlineClient extends pg.Client {
  override query(...args: unknown[]): never {
    const result = (pg.Client.prototype.query as (...a: unknown[]) => unknown).apply(this, args);
    if (result instanceof Promise) {
      result.catch((err: unknown) => {
        if ((err as Error)?.message === 'Query read timeout') (this as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      });
    }
    return result as never;
  }
}

function makePool(url: string, max: number, idleTransactionMs: number | undefined, timeouts: DatabaseTimeouts | undefined, onError?: (err: Error) => void): pg.Pool {
  const bounds = timeouts
    ? {
        Client: DeadlineClient,
        statement_timeout: timeouts.statementMs,
        lock_timeout: timeouts.lockMs,
        idle_in_transaction_session_timeout: idleTransactionMs ?? 0,
        ...(timeouts.statementMs > 0 ? { query_timeout: timeouts.statementMs + CLIENT_DEADLINE_MARGIN_MS } : {}),
      }
    : {};
  // TCP keepalive: a connection to a server that vanished without closing it is noticed by the
  // operating system instead of looking alive forever.
  const pool = new pg.Pool({ connectionString: url, max, types, connectionTimeoutMillis: 10_000, keepAlive: true, keepAliveInitialDelayMillis: 10_000, ...bounds });
  // An idle client losing its connection (database restart) must not crash the process.
  pool.on('error', (err) => onError?.(err));
  // Nor may a checked-out one: the pool listens only while a client is idle, and an upload holds
  // its client while the body streams. The error reaches the caller through its next query
  // anyway, and the broken client is dropped when released (pg-pool checks it is queryable).
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

export function openDatabase(options: DatabaseOptions): Database {
  const { timeouts } = options;
  const pool = makePool(options.url, options.poolSize, timeouts?.idleTransactionMs, timeouts, options.onError);
  const uploadPool = makePool(options.url, options.uploadPoolSize, timeouts?.uploadIdleTransactionMs, timeouts, options.onError);
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  const uploadsDb = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: uploadPool }) });
  const stats = (name: string, p: pg.Pool, max: number): PoolStats => ({ pool: name, max, total: p.totalCount, idle: p.idleCount, waiting: p.waitingCount });
  return {
    db,
    uploadsDb,
    async ping(timeoutMs) {
      // A client checked out here is released even when the deadline wins the race.
      const attempt = (async () => {
        const client = await pool.connect();
        try {
          await client.query('select 1');
          client.release();
        } catch (err) {
          client.release(err as Error);
          throw err;
        }
      })();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      attempt.catch(() => {});
      try {
        await Promise.race([attempt, deadline]);
      } finally {
        clearTimeout(timer);
      }
    },
    poolStats: () => [stats('queries', pool, options.poolSize), stats('uploads', uploadPool, options.uploadPoolSize)],
    unbounded: () => openDatabase({ url: options.url, poolSize: 1, uploadPoolSize: 1, ...(options.onError ? { onError: options.onError } : {}) }),
    withPool: (size) => openDatabase({ ...options, poolSize: size, uploadPoolSize: 1 }),
    async close() {
      await Promise.all([db.destroy(), uploadsDb.destroy()]);
    },
  };
}
