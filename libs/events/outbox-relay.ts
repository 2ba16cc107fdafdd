import { giveWay, type Activity } from '../async/activity.js';
import { WakeableSleep } from '../async/wakeable-sleep.js';
import { EventRejectedError, type EventBus } from './bus.js';
import type { RegistryEvent } from './event.js';

export interface PendingMessage {
  eventId: string;
  subject: string;
  payload: unknown;
}

/** What became of a claimed batch, by event id; a row in neither list stays unpublished. */
export interface BatchOutcome {
  published: string[];
  deadLettered: Array<{ eventId: string; error: string }>;
}

/**
 * Hands out unpublished outbox rows. `fn` runs while the rows are claimed; the rows it reports
 * published (or dead-lettered) are marked so when it resolves, in one transaction with the claim,
 * so a crash or a bus failure leaves them for the next pass.
 */
export interface OutboxSource {
  withClaimed(limit: number, fn: (messages: PendingMessage[]) => Promise<BatchOutcome>): Promise<{ claimed: number; published: number; deadLettered: number }>;
}

/** A pace shared by the relays of a cluster (PostgreSQL's outbox_pace in Wharf). */
export interface RelayPace {
  /** Books `events` just published; resolves with the wait before the next pass, or undefined when no pace applies now. */
  charge(events: number): Promise<number | undefined>;
}

/** The longest a relay waits for the pace before a pass, whatever the pace says (a clock jump, many relays). */
const MAX_PACE_WAIT_MS = 10_000;

/** How long the pace's "no node busy" is believed (API nodes mark busy every second). */
const IDLE_KNOWN_MS = 1_000;

export interface OutboxRelayOptions {
  /** Rows claimed (and marked) per pass. */
  batchSize?: number;
  /** Publishes awaiting the bus's acknowledgement at once, within a batch (default: the whole batch, so the in-process bus hands it to each consumer in one go). */
  maxInFlight?: number;
  /**
   * Batches in flight at once (default 2): while one waits for the bus (or, in process, for the
   * consumers), the next is claimed and the one before is marked. With 1, a relay hands rows to
   * the bus strictly in outbox order.
   */
  passes?: number;
  /** How often to look for rows when nobody calls wake(), e.g. rows other nodes wrote. */
  pollIntervalMs?: number;
  /**
   * The requests this process serves (an API node's). While any is in progress the relay runs
   * one batch at a time, of at most `busyBatchSize` rows, and after each waits as long as the
   * batch took: a backlog drains at about half speed instead of taking the CPU the requests need.
   */
  activity?: Activity;
  /**
   * Rows claimed per pass while requests are in progress (default 64): a pass holds this
   * process's event loop while it parses the rows and issues their publishes, and every request
   * waiting meanwhile waits that long.
   */
  busyBatchSize?: number;
  /**
   * The cluster's pace while any API node serves requests (events.busyrate): after each pass the
   * relay books what it published and waits as long as the pace says, and runs one short batch at a
   * time as if its own node were busy. Not while stopping: the flush at shutdown goes at full speed.
   */
  pace?: RelayPace;
  onError?: (err: unknown) => void;
  /** A row the bus refused for good, now set aside (count it, log it). */
  onDeadLetter?: (message: PendingMessage, err: unknown) => void;
}

/** Why a pass published only part of a batch: the first transient failure; the rest was marked. */
export class PartialPublishError extends Error {
  override readonly name = 'PartialPublishError';
}

/**
 * Moves committed outbox rows onto the bus, oldest first, a batch at a time: many rows per
 * claim, their publishes in flight together (issued in outbox order), one UPDATE to mark them.
 * A publish failing in the middle of a batch costs only that row a retry on the next pass; so an
 * event retried can reach subscribers after later ones (order is not guaranteed, docs/events.md).
 * Safe to run on many nodes at once.
 */
export class OutboxRelay {
  private readonly batchSize: number;
  private readonly busyBatchSize: number;
  private readonly maxInFlight: number;
  private readonly passes: number;
  private readonly pollIntervalMs: number;
  private readonly activity: Activity | undefined;
  private readonly pace: RelayPace | undefined;
  /** What the pace said last: some API node is busy. */
  private paced = false;
  /** Until when (performance.now()) the pace's last "no node busy" holds; past it the state is unknown, taken as busy for the batch size. */
  private idleKnownUntil = 0;
  private stopping = false;
  private readonly paceSleep = new WakeableSleep();
  private readonly onError: (err: unknown) => void;
  private readonly onDeadLetter: (message: PendingMessage, err: unknown) => void;
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly sleeper = new WakeableSleep();

  constructor(
    private readonly source: OutboxSource,
    private readonly bus: EventBus,
    options: OutboxRelayOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 1000;
    this.busyBatchSize = Math.max(1, Math.min(this.batchSize, options.busyBatchSize ?? 64));
    this.maxInFlight = Math.max(1, options.maxInFlight ?? bus.maxPublishesInFlight ?? this.batchSize);
    this.passes = Math.max(1, options.passes ?? 2);
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.activity = options.activity;
    this.pace = options.pace;
    this.onError = options.onError ?? (() => {});
    this.onDeadLetter = options.onDeadLetter ?? (() => {});
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = false;
    this.loop = this.run();
  }

  /** Asks for a pass now: called after a commit that wrote outbox rows. */
  wake(): void {
    this.sleeper.wake();
  }

  /**
   * Publishes everything unpublished right now; resolves with how many were published. Rejects
   * (with PartialPublishError) after the first batch where a publish failed for now: what did go
   * out is marked, the rest waits for the next call.
   */
  async drain(): Promise<number> {
    // While the pace's state is unknown, one short pass learns it before the other loops start: a
    // long batch first, or several, would hold the event loop of every node while reads are served.
    let first = 0;
    if (this.pace !== undefined && !this.stopping && !this.paced && performance.now() > this.idleKnownUntil) {
      const pass = await this.pass(this.busyBatchSize);
      first = pass.published;
      if (!pass.full) return first;
    }
    const counts = await Promise.allSettled(Array.from({ length: this.passes }, (_, loop) => this.drainOne(loop)));
    const failed = counts.find((c): c is PromiseRejectedResult => c.status === 'rejected');
    if (failed) throw failed.reason;
    return counts.reduce((sum, c) => sum + (c.status === 'fulfilled' ? c.value : 0), first);
  }

  /**
   * One loop of passes; the loops of drain() take different rows (SKIP LOCKED). Loop 0 goes on
   * until the outbox is empty; the others stop while requests are in progress (here, or on any
   * node when paced).
   */
  private async drainOne(loop: number): Promise<number> {
    let total = 0;
    for (;;) {
      const busy = (this.activity?.busy ?? false) || (this.paced && !this.stopping);
      if (loop > 0 && busy) return total;
      const pass = await this.pass(busy ? this.busyBatchSize : this.batchSize);
      total += pass.published;
      if (!pass.full) return total;
    }
  }

  /** Claim, publish, mark; then book the rows with the pace and wait as it and the requests here ask. `full`: the claim got `limit` rows, so more may wait. */
  private async pass(limit: number): Promise<{ published: number; full: boolean }> {
    const started = performance.now();
    let failure: unknown;
    const pass = await this.source.withClaimed(limit, async (messages) => {
      const outcome = await this.publishBatch(messages);
      failure = outcome.failure;
      return outcome;
    });
    if (failure !== undefined) {
      throw new PartialPublishError(`${pass.claimed - pass.published - pass.deadLettered} of ${pass.claimed} outbox events not published; retrying`, { cause: failure });
    }
    const worked = performance.now() - started;
    const wait = await this.chargePace(pass.claimed);
    if (pass.claimed < limit) return { published: pass.published, full: false };
    if (wait > 0) await this.paceSleep.sleep(Math.min(wait, MAX_PACE_WAIT_MS));
    await giveWay(this.activity, worked);
    return { published: pass.published, full: true };
  }

  /** Books a pass's rows with the pace; the wait it asks for (0 without a pace, or when it fails: the pass itself reports a database down). */
  private async chargePace(events: number): Promise<number> {
    if (this.pace === undefined || events === 0 || this.stopping) return 0;
    try {
      const wait = await this.pace.charge(events);
      this.paced = wait !== undefined;
      if (!this.paced) this.idleKnownUntil = performance.now() + IDLE_KNOWN_MS;
      return wait ?? 0;
    } catch (err) {
      this.onError(err);
      return 0;
    }
  }

  /** Publishes in outbox order with up to maxInFlight awaiting the bus; never rejects. */
  private async publishBatch(messages: PendingMessage[]): Promise<BatchOutcome & { failure?: unknown }> {
    const published: string[] = [];
    const deadLettered: BatchOutcome['deadLettered'] = [];
    let failure: unknown;
    const inFlight = new Set<Promise<void>>();
    for (const m of messages) {
      const p: Promise<void> = this.bus
        .publish(m.subject, m.payload as RegistryEvent)
        .then(
          () => void published.push(m.eventId),
          (err) => {
            if (err instanceof EventRejectedError) {
              deadLettered.push({ eventId: m.eventId, error: err.message });
              this.onDeadLetter(m, err);
            } else failure ??= err;
          },
        )
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      // Full: wait for half to be acknowledged, then issue the next ones together. Topping up one
      // at a time made each publish a socket write of its own (the client flushes once per turn).
      if (inFlight.size >= this.maxInFlight) while (inFlight.size > this.maxInFlight / 2) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    return { published, deadLettered, failure };
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopping = true;
    this.sleeper.wake();
    this.paceSleep.wake();
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      this.sleeper.resetWoken();
      try {
        await this.drain();
        failures = 0;
      } catch (err) {
        failures++;
        this.onError(err);
      }
      if (!this.running) break;
      if (this.sleeper.woken && failures === 0) continue;
      const delay = failures === 0 ? this.pollIntervalMs : Math.min(5_000, this.pollIntervalMs * 2 ** Math.min(failures, 5));
      await this.sleeper.sleep(delay);
    }
  }
}
