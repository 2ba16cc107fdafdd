import type { Kysely } from 'kysely';
import { Batcher } from '../../libs/async/batcher.js';
import { WakeableSleep } from '../../libs/async/wakeable-sleep.js';
import type { WebhookEndpoint } from '../../libs/config/index.js';
import type { Logger } from '../../libs/log/index.js';
import { webhooks, type Schema } from '../../libs/metadata/index.js';
import { counter, histogram } from '../../libs/metrics/index.js';
import { sendEvent } from './webhook-sender.js';

const attemptsTotal = counter({
  name: 'wharf_webhook_attempts_total',
  help: 'Webhook HTTP attempts by endpoint and outcome (delivered, failed)',
  labelNames: ['endpoint', 'outcome'],
});
const deadLetteredTotal = counter({
  name: 'wharf_webhook_dead_lettered_total',
  help: 'Webhook deliveries moved to the dead-letter table after maxattempts',
  labelNames: ['endpoint'],
});
const attemptSeconds = histogram({
  name: 'wharf_webhook_attempt_seconds',
  help: 'Duration of webhook HTTP attempts',
  labelNames: ['endpoint'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
});

export interface EndpointLoopOptions {
  /** How often an idle loop looks for rows other replicas queued or whose lease ran out. */
  pollMs: number;
  /** Time a claim hides a row beyond the request timeout, before another replica may take it. */
  leaseMarginMs: number;
}

/** Retry delay after the n-th failed attempt: backoff doubling, capped, ±20% jitter so retries of a burst spread out. */
export function retryDelayMs(endpoint: WebhookEndpoint, attempt: number): number {
  const base = Math.min(endpoint.maxBackoffMs, endpoint.backoffMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

const OUTCOME_BATCHING = { maxBatch: 500, maxInFlight: 1 };

/**
 * Works off one endpoint's queue: claims due rows (bounded by the endpoint's concurrency), POSTs
 * them, records each outcome. After `threshold` consecutive failures the endpoint is failing:
 * one delivery at a time, `backoff` apart, until one succeeds. Each endpoint has its own loop,
 * so a slow or dead one only delays its own rows.
 */
export class EndpointLoop {
  private running = false;
  private inflight = 0;
  private consecutiveFailures = 0;
  private pausedUntil = 0;
  private loop: Promise<void> | undefined;
  private readonly sleeper = new WakeableSleep();
  private readonly idle = new Set<() => void>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Outcomes that arrive while others are being written go together in the next statement. */
  private readonly delivered = new Batcher(async (done: Array<{ d: webhooks.ClaimedDelivery; result: webhooks.AttemptResult }>) => {
    await webhooks.markDeliveredMany(this.db, done);
    return done.map(() => undefined);
  }, OUTCOME_BATCHING);
  private readonly failed = new Batcher(async (failed: Array<{ d: webhooks.ClaimedDelivery; result: webhooks.AttemptResult; retryInMs: number }>) => {
    await webhooks.markFailedMany(this.db, failed);
    return failed.map(() => undefined);
  }, OUTCOME_BATCHING);

  constructor(
    readonly endpoint: WebhookEndpoint,
    private readonly db: Kysely<Schema>,
    private readonly logger: Logger,
    private readonly options: EndpointLoopOptions,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Look for due rows now (after this replica queued one, or a retry came due). */
  wake(): void {
    this.sleeper.wake();
  }

  /** Stops claiming and waits for the requests in flight to finish and be recorded. */
  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers) clearTimeout(t);
    this.wake();
    await this.loop;
    while (this.inflight > 0) await new Promise<void>((resolve) => this.idle.add(resolve));
  }

  private failing(): boolean {
    return this.consecutiveFailures >= this.endpoint.threshold;
  }

  private async run(): Promise<void> {
    const leaseMs = this.endpoint.timeoutMs + this.options.leaseMarginMs;
    let dbFailures = 0;
    while (this.running) {
      this.sleeper.resetWoken();
      const capacity = this.failing() ? 1 : this.endpoint.concurrency;
      const free = capacity - this.inflight;
      const pauseLeft = this.failing() ? this.pausedUntil - Date.now() : 0;
      let claimed = 0;
      // With deliveries in flight, claim once a quarter of the slots is free rather than for
      // each one that frees: one statement for many rows, and the rest still keep the receiver busy.
      if (free > 0 && pauseLeft <= 0 && (this.inflight === 0 || free >= Math.ceil(capacity / 4))) {
        try {
          const rows = await webhooks.claimDue(this.db, this.endpoint.name, free, leaseMs);
          dbFailures = 0;
          claimed = rows.length;
          for (const row of rows) {
            this.inflight++;
            void this.deliver(row).finally(() => {
              this.inflight--;
              if (this.inflight === 0) {
                for (const resolve of this.idle) resolve();
                this.idle.clear();
              }
              this.wake();
            });
          }
        } catch (err) {
          dbFailures++;
          this.logger.warn({ err, endpoint: this.endpoint.name }, 'claiming webhook deliveries failed; will retry');
        }
      }
      if (!this.running) break;
      // A full claim may have left more due rows behind: go again once a slot frees up.
      if (claimed > 0 && claimed === free && this.inflight < capacity) continue;
      if (this.sleeper.woken) continue;
      const wait = dbFailures > 0 ? Math.min(5_000, 200 * 2 ** dbFailures) : pauseLeft > 0 ? Math.min(pauseLeft, this.options.pollMs) : this.options.pollMs;
      await this.sleeper.sleep(wait);
    }
  }

  private wakeIn(ms: number): void {
    if (ms >= this.options.pollMs) return; // the poll finds it
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.wake();
    }, ms);
    timer.unref();
    this.timers.add(timer);
  }

  private async deliver(row: webhooks.ClaimedDelivery): Promise<void> {
    const name = this.endpoint.name;
    const result = await sendEvent(this.endpoint, row.payload, { eventId: row.eventId, attempt: row.attempt });
    attemptSeconds.observe({ endpoint: name }, result.latencyMs / 1000);
    attemptsTotal.inc({ endpoint: name, outcome: result.ok ? 'delivered' : 'failed' });
    const attempt = { status: result.status, latencyMs: result.latencyMs, error: result.error };
    try {
      if (result.ok) {
        this.consecutiveFailures = 0;
        await this.delivered.add({ d: row, result: attempt });
        return;
      }
      this.consecutiveFailures++;
      if (this.failing()) this.pausedUntil = Date.now() + this.endpoint.backoffMs;
      if (row.attempt >= this.endpoint.maxAttempts) {
        if (await webhooks.deadLetter(this.db, row, attempt)) {
          deadLetteredTotal.inc({ endpoint: name });
          this.logger.warn({ endpoint: name, eventId: row.eventId, attempts: row.attempt, error: result.error }, 'webhook delivery dead-lettered');
        }
        return;
      }
      const retryMs = retryDelayMs(this.endpoint, row.attempt);
      await this.failed.add({ d: row, result: attempt, retryInMs: retryMs });
      this.wakeIn(Math.max(retryMs, this.failing() ? this.endpoint.backoffMs : 0));
    } catch (err) {
      // The row's lease runs out and it is claimed again: a duplicate at worst, never a loss.
      this.logger.warn({ err, endpoint: name, eventId: row.eventId }, 'recording a webhook attempt failed');
    }
  }
}
