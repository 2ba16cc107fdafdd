import type { ConsumerLag, DurableConsumerOptions, EventBus, EventHandler, StopConsumer } from './bus.js';
import { subjectMatches } from './bus.js';
import type { RegistryEvent } from './event.js';

interface Queued {
  subject: string;
  event: RegistryEvent;
  settle: (err?: unknown) => void;
}

interface DurableSubscriber {
  options: DurableConsumerOptions;
  /** Events handed to this consumer and not yet taken by its pump (its lag). */
  queue: Queued[];
  /** Events being handled right now. */
  handling: number;
  /** The loop handling the queue, in publish order, as a JetStream pull consumer would; undefined when idle. */
  pump: Promise<void> | undefined;
  stopped: boolean;
}

/** Events one handleBatch call gets at most. */
const MAX_BATCH = 1000;

/**
 * The in-process bus of embedded mode. Plain subscribers run after publish resolves, never
 * inside it. Durable consumers run before it resolves: the outbox relay marks a row published
 * only after every durable consumer has handled it (or dead-lettered it), so a crash in between
 * republishes the row on the next start — at least once, as on JetStream. Each durable consumer
 * has a queue: the relay publishes a whole batch at once, consumers work through it side by
 * side, and one with `handleBatch` takes everything queued in one call.
 */
export class MemoryBus implements EventBus {
  private readonly subscribers = new Set<{ pattern: string; handler: EventHandler }>();
  private readonly durables = new Set<DurableSubscriber>();
  private readonly seen = new Set<string>();
  private readonly seenOrder: string[] = [];
  private readonly dedupeWindow: number;
  onHandlerError: (err: unknown) => void = () => {};

  constructor(dedupeWindow = 10_000) {
    this.dedupeWindow = dedupeWindow;
  }

  async publish(subject: string, event: RegistryEvent): Promise<void> {
    // Like JetStream's duplicate window: a re-relayed event id is delivered once.
    if (this.seen.has(event.id)) return;
    this.seen.add(event.id);
    this.seenOrder.push(event.id);
    if (this.seenOrder.length > this.dedupeWindow) this.seen.delete(this.seenOrder.shift()!);
    for (const sub of this.subscribers) {
      if (!subjectMatches(sub.pattern, subject)) continue;
      queueMicrotask(() => {
        Promise.resolve()
          .then(() => sub.handler(subject, event))
          .catch((err) => this.onHandlerError(err));
      });
    }
    const handled: Promise<void>[] = [];
    for (const durable of this.durables) {
      if (durable.stopped || !subjectMatches(durable.options.filterSubject, subject)) continue;
      handled.push(
        new Promise<void>((resolve, reject) => {
          durable.queue.push({ subject, event, settle: (err) => (err === undefined ? resolve() : reject(err)) });
        }),
      );
      durable.pump ??= this.runPump(durable);
    }
    if (handled.length === 0) return;
    try {
      await Promise.all(handled);
    } catch (err) {
      // Not handled: the relay publishes the row again, and that must not be dropped as a duplicate.
      this.seen.delete(event.id);
      throw err;
    }
  }

  private async runPump(durable: DurableSubscriber): Promise<void> {
    // Start after the publisher's synchronous loop: a batch published at once is then queued whole.
    await Promise.resolve();
    try {
      while (durable.queue.length > 0) {
        if (durable.stopped) {
          // Stopping (shutdown): the relay keeps these rows and publishes them after the restart.
          for (const q of durable.queue.splice(0)) q.settle(new Error(`consumer ${durable.options.durable} stopped`));
          break;
        }
        const batch = durable.queue.splice(0, durable.options.handleBatch ? MAX_BATCH : 1);
        durable.handling = batch.length;
        if (batch.length > 1 && (await this.tryBatch(durable, batch))) {
          for (const q of batch) q.settle();
        } else {
          for (const q of batch)
            await this.deliver(durable, q.subject, q.event).then(
              () => q.settle(),
              (err) => q.settle(err ?? new Error('handler failed')),
            );
        }
        durable.handling = 0;
      }
    } finally {
      durable.pump = undefined;
      // Published while the loop was ending.
      if (durable.queue.length > 0) durable.pump = this.runPump(durable);
    }
  }

  private async tryBatch(durable: DurableSubscriber, batch: Queued[]): Promise<boolean> {
    try {
      await durable.options.handleBatch!(batch.map((q) => ({ subject: q.subject, event: q.event })));
      return true;
    } catch (err) {
      this.onHandlerError(err);
      return false;
    }
  }

  private async deliver(durable: DurableSubscriber, subject: string, event: RegistryEvent): Promise<void> {
    const { handler, onDeadLetter } = durable.options;
    const maxDeliver = durable.options.maxDeliver ?? 5;
    const backoffMs = durable.options.backoffMs?.length ? durable.options.backoffMs : [100, 1_000, 5_000];
    for (let attempt = 1; ; attempt++) {
      try {
        await handler(subject, event, { deliveryCount: attempt, streamSequence: 0 });
        return;
      } catch (err) {
        // Stopping mid-retry (shutdown): the relay keeps the row and publishes it after the restart.
        if (durable.stopped) throw err;
        if (attempt >= maxDeliver) {
          // Recording the dead letter failing throws to the relay, which publishes the row again later.
          await onDeadLetter?.(subject, event, err);
          if (!onDeadLetter) this.onHandlerError(err);
          return;
        }
        this.onHandlerError(err);
        await new Promise((resolve) => setTimeout(resolve, backoffMs[Math.min(attempt, backoffMs.length) - 1]));
      }
    }
  }

  subscribe(pattern: string, handler: EventHandler): () => void {
    const sub = { pattern, handler };
    this.subscribers.add(sub);
    return () => this.subscribers.delete(sub);
  }

  async consumeDurable(options: DurableConsumerOptions): Promise<StopConsumer> {
    const durable: DurableSubscriber = { options, queue: [], handling: 0, pump: undefined, stopped: false };
    this.durables.add(durable);
    return async () => {
      durable.stopped = true;
      this.durables.delete(durable);
      await durable.pump;
    };
  }

  /** In embedded mode events wait in the outbox, not here: the lag is what the relay handed over and is not handled yet. */
  async consumerLag(): Promise<ConsumerLag[]> {
    return [...this.durables].map((d) => ({ durable: d.options.durable, pending: d.queue.length, ackPending: d.handling }));
  }

  async close(): Promise<void> {
    this.subscribers.clear();
    await Promise.all(
      [...this.durables].map(async (d) => {
        d.stopped = true;
        await d.pump;
      }),
    );
    this.durables.clear();
  }
}
