import { sql } from 'kysely';
import type { Executor } from './schema.js';

export interface OutboxMessage {
  eventId: string;
  subject: string;
  payload: unknown;
}

export interface ClaimedMessage extends OutboxMessage {
  id: number;
}

export async function appendOutbox(db: Executor, messages: OutboxMessage[]): Promise<void> {
  if (messages.length === 0) return;
  await db
    .insertInto('outbox')
    .values(messages.map((m) => ({ event_id: m.eventId, subject: m.subject, payload: JSON.stringify(m.payload) })))
    .execute();
}

/**
 * Locks up to `limit` unpublished rows, oldest first, skipping rows another relay holds. Call it
 * in a transaction: it makes the planner walk the partial index in id order for this transaction,
 * and its commit asynchronous.
 * Without that, right after a burst (statistics not yet analyzed) it chose a bitmap scan of every
 * unpublished row and a sort of them all, payloads included: 250-300 ms per claim at a backlog of
 * 100,000, against 2 ms.
 */
export async function claimUnpublished(db: Executor, limit: number): Promise<ClaimedMessage[]> {
  // Losing the commit of the claim's transaction to a database crash only republishes its batch,
  // which consumers tolerate (same ids, at least once); not waiting for the WAL flush saves a
  // disk sync per batch. Set with the planner's settings: one round trip.
  await sql`select set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true), set_config('synchronous_commit', 'off', true)`.execute(db);
  const rows = await db
    .selectFrom('outbox')
    .select(['id', 'event_id', 'subject', 'payload'])
    .where('published_at', 'is', null)
    .where('dead_lettered_at', 'is', null)
    .orderBy('id')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
  return rows.map((r) => ({ id: r.id, eventId: r.event_id, subject: r.subject, payload: r.payload }));
}

/** One UPDATE for a whole batch, whatever its size (an array parameter, not one per id). */
export async function markPublished(db: Executor, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await sql`update outbox set published_at = now() where id = any(${ids}::bigint[])`.execute(db);
}

/** Sets rows aside that the bus refuses for good: no longer claimed, kept (not pruned) with why. */
export async function markDeadLettered(db: Executor, rows: Array<{ id: number; error: string }>): Promise<void> {
  if (rows.length === 0) return;
  await sql`
    update outbox o set dead_lettered_at = now(), dead_letter_error = d.error
    from unnest(${rows.map((r) => r.id)}::bigint[], ${rows.map((r) => r.error)}::text[]) as d(id, error)
    where o.id = d.id`.execute(db);
}

/** Outbox rows set aside as undeliverable (see markDeadLettered). */
export async function outboxDeadLetters(db: Executor): Promise<number> {
  const row = await db
    .selectFrom('outbox')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('dead_lettered_at', 'is not', null)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

export async function prunePublished(db: Executor, olderThanSeconds: number): Promise<number> {
  const result = await db.deleteFrom('outbox').where('published_at', '<', sql<Date>`now() - make_interval(secs => ${olderThanSeconds})`).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Unpublished rows and the age in seconds of the oldest (0 when none): one index scan for the age, a count for the backlog. */
export async function outboxStats(db: Executor): Promise<{ backlog: number; oldestAgeSeconds: number }> {
  const row = await db
    .selectFrom('outbox')
    .select((eb) => [eb.fn.countAll<string>().as('count'), sql<string | null>`extract(epoch from now() - min(created_at))`.as('age')])
    .where('published_at', 'is', null)
    .where('dead_lettered_at', 'is', null)
    .executeTakeFirstOrThrow();
  return { backlog: Number(row.count), oldestAgeSeconds: row.age === null ? 0 : Math.max(0, Number(row.age)) };
}

/** Keeps the relays of the cluster paced (events.busyrate) for `forMs` from now: an API node serving requests calls it every second. */
export async function markRelaysBusy(db: Executor, forMs: number): Promise<void> {
  await sql`update outbox_pace set busy_until = greatest(busy_until, clock_timestamp() + make_interval(secs => ${forMs / 1000}::float8))`.execute(db);
}

/**
 * The pace the relays of a cluster share while an API node is busy: `rate` events a second, with
 * `burstMs` of slack. charge() books what a relay just published and resolves with how long it
 * should wait before its next pass (0: go on), or undefined when no node is busy (no pace: the
 * booking is skipped too). One UPDATE of one row per relay pass.
 */
export function outboxPace(db: Executor, rate: number, burstMs: number) {
  return {
    async charge(events: number): Promise<number | undefined> {
      const seconds = events / rate;
      const { rows } = await sql<{ wait_ms: string }>`
        update outbox_pace set next_at = greatest(next_at, clock_timestamp()) + make_interval(secs => ${seconds}::float8)
        where busy_until > clock_timestamp()
        returning extract(epoch from next_at - clock_timestamp()) * 1000 - ${seconds * 1000 + burstMs}::float8 as wait_ms`.execute(db);
      const row = rows[0];
      return row === undefined ? undefined : Math.max(0, Number(row.wait_ms));
    },
  };
}

/** What the relay did with a claimed batch: by event id, the rows the bus took and the rows it refused for good. */
export interface BatchOutcome {
  published: string[];
  deadLettered: Array<{ eventId: string; error: string }>;
}

/**
 * An OutboxSource (libs/events) over this table: claim a batch, hand it over, then one UPDATE
 * for the rows published and one for those dead-lettered, in one transaction. Rows in neither
 * list (a publish that failed for now) stay unpublished for the next pass.
 */
export function outboxSource(db: import('kysely').Kysely<import('./schema.js').Schema>) {
  return {
    async withClaimed(limit: number, fn: (messages: OutboxMessage[]) => Promise<BatchOutcome>): Promise<{ claimed: number; published: number; deadLettered: number }> {
      return db.transaction().execute(async (trx) => {
        const claimed = await claimUnpublished(trx, limit);
        if (claimed.length === 0) return { claimed: 0, published: 0, deadLettered: 0 };
        const outcome = await fn(claimed);
        const idOf = new Map(claimed.map((m) => [m.eventId, m.id]));
        const published = outcome.published.map((e) => idOf.get(e)).filter((id): id is number => id !== undefined);
        const dead = outcome.deadLettered.flatMap((d) => (idOf.has(d.eventId) ? [{ id: idOf.get(d.eventId)!, error: d.error }] : []));
        await markPublished(trx, published);
        await markDeadLettered(trx, dead);
        return { claimed: claimed.length, published: published.length, deadLettered: dead.length };
      });
    },
  };
}
