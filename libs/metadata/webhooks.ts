import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Executor, Schema } from './schema.js';

/** The webhook delivery queue, its attempt log and its dead letters (migrations/0002_webhooks.sql). */

export interface QueuedEvent {
  eventId: string;
  subject: string;
  payload: unknown;
}

export interface ClaimedDelivery {
  id: number;
  endpoint: string;
  eventId: string;
  subject: string;
  payload: unknown;
  /** This attempt's number, 1 on the first. */
  attempt: number;
  claimToken: string;
}

export interface AttemptResult {
  status: number | null;
  latencyMs: number;
  error: string | null;
}

/**
 * Queues each event for each of its endpoints, all in one statement; idempotent on (endpoint,
 * event id), and an event already in the dead-letter table for an endpoint is not queued again
 * (only a redrive brings it back). Returns, per event, the endpoints that got a new row.
 */
export async function enqueueMany(db: Executor, items: Array<{ endpoints: string[]; event: QueuedEvent }>): Promise<string[][]> {
  const rows = items.flatMap((it) => it.endpoints.map((endpoint) => ({ endpoint, event: it.event })));
  if (rows.length === 0) return items.map(() => []);
  // Rows go in in one order whoever inserts them, so two replicas queueing overlapping batches wait on each other instead of deadlocking.
  const result = await sql<{ endpoint: string; event_id: string }>`
    insert into webhook_deliveries (endpoint, event_id, subject, payload)
    select e.endpoint, e.event_id, e.subject, e.payload::jsonb
    from unnest(${rows.map((r) => r.endpoint)}::text[], ${rows.map((r) => r.event.eventId)}::uuid[],
                ${rows.map((r) => r.event.subject)}::text[], ${rows.map((r) => JSON.stringify(r.event.payload))}::text[])
      as e(endpoint, event_id, subject, payload)
    where not exists (select 1 from webhook_dead_letters d where d.endpoint = e.endpoint and d.event_id = e.event_id)
    order by e.endpoint, e.event_id
    on conflict (endpoint, event_id) do nothing
    returning endpoint, event_id`.execute(db);
  const queued = new Set(result.rows.map((r) => `${r.endpoint}\n${r.event_id}`));
  return items.map((it) => it.endpoints.filter((endpoint) => queued.has(`${endpoint}\n${it.event.eventId.toLowerCase()}`)));
}

/**
 * Claims up to `limit` due deliveries of an endpoint, skipping rows another replica is claiming.
 * A claim counts as an attempt and hides the row for `leaseMs`: if this replica dies before it
 * records the outcome, the row is due again when the lease ends.
 */
export async function claimDue(db: Kysely<Schema>, endpoint: string, limit: number, leaseMs: number): Promise<ClaimedDelivery[]> {
  const token = randomUUID();
  const result = await sql<{ id: number; event_id: string; subject: string; payload: unknown; attempts: number }>`
    update webhook_deliveries d
    set attempts = d.attempts + 1,
        next_attempt_at = now() + make_interval(secs => ${leaseMs / 1000}),
        claim_token = ${token}::uuid
    where d.id in (
      select id from webhook_deliveries
      where endpoint = ${endpoint} and state = 'pending' and next_attempt_at <= now()
      order by next_attempt_at, id
      limit ${limit}
      for update skip locked)
    returning d.id, d.event_id, d.subject, d.payload, d.attempts`.execute(db);
  return result.rows
    .sort((a, b) => a.id - b.id)
    .map((r) => ({ id: r.id, endpoint, eventId: r.event_id, subject: r.subject, payload: r.payload, attempt: r.attempts, claimToken: token }));
}

async function recordAttempt(db: Executor, d: ClaimedDelivery, result: AttemptResult): Promise<void> {
  await db
    .insertInto('webhook_attempts')
    .values({ endpoint: d.endpoint, event_id: d.eventId, attempt: d.attempt, status: result.status, latency_ms: Math.round(result.latencyMs), error: result.error })
    .execute();
}

// The outcome and its attempt row in one statement: one round trip, and atomic like a transaction.

/** Marks deliveries delivered, each with its attempt row, in one statement. Delivered is delivered, whoever holds the claim now. */
export async function markDeliveredMany(db: Executor, done: Array<{ d: ClaimedDelivery; result: AttemptResult }>): Promise<void> {
  if (done.length === 0) return;
  await sql`
    with d as (
      select * from unnest(${done.map((x) => x.d.id)}::bigint[], ${done.map((x) => x.d.endpoint)}::text[], ${done.map((x) => x.d.eventId)}::uuid[],
                           ${done.map((x) => x.d.attempt)}::integer[], ${done.map((x) => x.result.status)}::integer[], ${done.map((x) => Math.round(x.result.latencyMs))}::integer[])
        as d(id, endpoint, event_id, attempt, status, latency_ms)),
    marked as (
      update webhook_deliveries w set state = 'delivered', delivered_at = now(), claim_token = null, last_status = d.status
      from d where w.id = d.id)
    insert into webhook_attempts (endpoint, event_id, attempt, status, latency_ms, error)
    select endpoint, event_id, attempt, status, latency_ms, null from d`.execute(db);
}

/** Schedules the next attempt of each delivery, with its attempt row, in one statement; a row a newer claim took over after our lease ran out is left alone. */
export async function markFailedMany(db: Executor, failed: Array<{ d: ClaimedDelivery; result: AttemptResult; retryInMs: number }>): Promise<void> {
  if (failed.length === 0) return;
  await sql`
    with f as (
      select * from unnest(${failed.map((x) => x.d.id)}::bigint[], ${failed.map((x) => x.d.claimToken)}::uuid[], ${failed.map((x) => x.d.endpoint)}::text[],
                           ${failed.map((x) => x.d.eventId)}::uuid[], ${failed.map((x) => x.d.attempt)}::integer[], ${failed.map((x) => x.result.status)}::integer[],
                           ${failed.map((x) => Math.round(x.result.latencyMs))}::integer[], ${failed.map((x) => x.result.error)}::text[],
                           ${failed.map((x) => x.retryInMs / 1000)}::float8[])
        as f(id, claim_token, endpoint, event_id, attempt, status, latency_ms, error, retry_secs)),
    marked as (
      update webhook_deliveries w
      set next_attempt_at = now() + make_interval(secs => f.retry_secs), claim_token = null, last_error = f.error, last_status = f.status
      from f where w.id = f.id and w.claim_token = f.claim_token and w.state = 'pending')
    insert into webhook_attempts (endpoint, event_id, attempt, status, latency_ms, error)
    select endpoint, event_id, attempt, status, latency_ms, error from f`.execute(db);
}

/** Moves the delivery to the dead-letter table with its last error, in one transaction. Returns false if another claim owns it now. */
export async function deadLetter(db: Kysely<Schema>, d: ClaimedDelivery, result: AttemptResult): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const moved = await sql`
      with gone as (
        delete from webhook_deliveries
        where id = ${d.id} and claim_token = ${d.claimToken}::uuid and state = 'pending'
        returning endpoint, event_id, subject, payload, attempts, created_at)
      insert into webhook_dead_letters (endpoint, event_id, subject, payload, attempts, last_error, last_status, created_at)
      select endpoint, event_id, subject, payload, attempts, ${result.error}, ${result.status}::integer, created_at from gone
      on conflict (endpoint, event_id) do nothing`.execute(trx);
    await recordAttempt(trx, d, result);
    return Number(moved.numAffectedRows ?? 0) > 0;
  });
}

/** Moves dead letters back to the queue as new deliveries (attempts from 0); returns how many. */
export async function redrive(db: Kysely<Schema>, filter: { endpoint?: string; eventId?: string } = {}): Promise<number> {
  const result = await sql`
    with back as (
      delete from webhook_dead_letters
      where (${filter.endpoint ?? null}::text is null or endpoint = ${filter.endpoint ?? null})
        and (${filter.eventId ?? null}::uuid is null or event_id = ${filter.eventId ?? null}::uuid)
      returning endpoint, event_id, subject, payload, created_at)
    insert into webhook_deliveries (endpoint, event_id, subject, payload, created_at)
    select endpoint, event_id, subject, payload, created_at from back
    on conflict (endpoint, event_id) do update set state = 'pending', attempts = 0, next_attempt_at = now(), claim_token = null`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

export interface EndpointCounts {
  endpoint: string;
  delivered: number;
  pending: number;
  /** Pending deliveries whose last attempt failed. */
  failing: number;
  deadLettered: number;
  oldestPending: Date | null;
  lastError: { message: string; status: number | null; eventId: string; at: Date } | null;
}

/** Per-endpoint counts of the queue, in one round trip. */
export async function endpointCounts(db: Executor): Promise<EndpointCounts[]> {
  const result = await sql<{
    endpoint: string;
    delivered: number;
    pending: number;
    failing: number;
    dead: number;
    oldest_pending: Date | null;
    error: string | null;
    error_status: number | null;
    error_event: string | null;
    error_at: Date | null;
  }>`
    with q as (
      select endpoint,
             count(*) filter (where state = 'delivered')::int as delivered,
             count(*) filter (where state = 'pending')::int as pending,
             count(*) filter (where state = 'pending' and last_error is not null)::int as failing,
             min(created_at) filter (where state = 'pending') as oldest_pending
      from webhook_deliveries group by endpoint),
    dl as (select endpoint, count(*)::int as dead from webhook_dead_letters group by endpoint),
    names as (select endpoint from q union select endpoint from dl)
    select n.endpoint, coalesce(q.delivered, 0) as delivered, coalesce(q.pending, 0) as pending, coalesce(q.failing, 0) as failing,
           coalesce(dl.dead, 0) as dead, q.oldest_pending,
           e.error, e.status as error_status, e.event_id::text as error_event, e.created_at as error_at
    from names n
    left join q on q.endpoint = n.endpoint
    left join dl on dl.endpoint = n.endpoint
    left join lateral (
      select error, status, event_id, created_at from webhook_attempts a
      where a.endpoint = n.endpoint and a.error is not null
      order by a.id desc limit 1) e on true
    order by n.endpoint`.execute(db);
  return result.rows.map((r) => ({
    endpoint: r.endpoint,
    delivered: r.delivered,
    pending: r.pending,
    failing: r.failing,
    deadLettered: r.dead,
    oldestPending: r.oldest_pending,
    lastError: r.error !== null ? { message: r.error, status: r.error_status, eventId: r.error_event!, at: r.error_at! } : null,
  }));
}

/** Deletes delivered deliveries and attempts older than the retention. */
export async function prune(db: Executor, olderThanSeconds: number): Promise<void> {
  const cutoff = sql<Date>`now() - make_interval(secs => ${olderThanSeconds})`;
  await db.deleteFrom('webhook_deliveries').where('state', '=', 'delivered').where('delivered_at', '<', cutoff).execute();
  await db.deleteFrom('webhook_attempts').where('created_at', '<', cutoff).execute();
}

/** Every attempt at one event for one endpoint, oldest first. */
export async function attemptsOf(db: Executor, endpoint: string, eventId: string) {
  return db
    .selectFrom('webhook_attempts')
    .select(['attempt', 'status', 'latency_ms', 'error', 'created_at'])
    .where('endpoint', '=', endpoint)
    .where('event_id', '=', eventId)
    .orderBy('id')
    .execute();
}
