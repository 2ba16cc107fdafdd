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

/** Locks up to `limit` unpublished rows, oldest first, skipping rows another relay holds. */
export async function claimUnpublished(db: Executor, limit: number): Promise<ClaimedMessage[]> {
  const rows = await db
    .selectFrom('outbox')
    .select(['id', 'event_id', 'subject', 'payload'])
    .where('published_at', 'is', null)
    .orderBy('id')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
  return rows.map((r) => ({ id: r.id, eventId: r.event_id, subject: r.subject, payload: r.payload }));
}

export async function markPublished(db: Executor, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await db.updateTable('outbox').set({ published_at: new Date() }).where('id', 'in', ids).execute();
}

export async function prunePublished(db: Executor, olderThanSeconds: number): Promise<number> {
  const result = await db
    .deleteFrom('outbox')
    .where('published_at', '<', sql<Date>`now() - make_interval(secs => ${olderThanSeconds})`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Unpublished rows and the age in seconds of the oldest (0 when none): one index scan for the age, a count for the backlog. */
export async function outboxStats(db: Executor): Promise<{ backlog: number; oldestAgeSeconds: number }> {
  const row = await db
    .selectFrom('outbox')
    .select((eb) => [
      eb.fn.countAll<string>().as('count'),
      sql<string | null>`extract(epoch from now() - min(created_at))`.as('age'),
    ])
    .where('published_at', 'is', null)
    .executeTakeFirstOrThrow();
  return { backlog: Number(row.count), oldestAgeSeconds: row.age === null ? 0 : Math.max(0, Number(row.age)) };
}

/** An OutboxSource (libs/events) over this table: claim, hand over, mark published, in one transaction. */
export function outboxSource(db: import('kysely').Kysely<import('./schema.js').Schema>) {
  return {
    async withClaimed(limit: number, fn: (messages: OutboxMessage[]) => Promise<void>): Promise<number> {
      return db.transaction().execute(async (trx) => {
        const claimed = await claimUnpublished(trx, limit);
        if (claimed.length === 0) return 0;
        await fn(claimed);
        await markPublished(trx, claimed.map((m) => m.id));
        return claimed.length;
      });
    },
  };
}
