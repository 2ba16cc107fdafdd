import type { ConsumerLag, DurableConsumerOptions, EventBus, EventHandler, StopConsumer } from './bus.js';
import { subjectMatches } from './bus.js';
import type { RegistryEvent } from './event.js';

interface DurableSubscriber {
  options: DurableConsumerOptions;
  /** Events of one consumer are handled one at a time, in publish order, as a JetStream pull consumer would. */
  tail: Promise<void>;
  stopped: boolean;
  /** Events handed to this consumer and not yet handled (its lag). */
  queued: number;
}

/**
 * The in-process bus of embedded mode. Plain subscribers run after publish resolves, never
 * inside it. Durable consumers run before it resolves: the outbox relay marks a row published
 * only after every durable consumer has handled it (or dead-lettered it), so a crash in between
 * republishes the row on the next start — at least once, as on JetStream.
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
      durable.queued++;
      const run = durable.tail.then(() => this.deliver(durable, subject, event)).finally(() => void durable.queued--);
      durable.tail = run.catch(() => {});
      handled.push(run);
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
    const durable: DurableSubscriber = { options, tail: Promise.resolve(), stopped: false, queued: 0 };
    this.durables.add(durable);
    return async () => {
      durable.stopped = true;
      this.durables.delete(durable);
      await durable.tail;
    };
  }

  /** In embedded mode events wait in the outbox, not here: the lag is what is being handled right now. */
  async consumerLag(): Promise<ConsumerLag[]> {
    return [...this.durables].map((d) => ({ durable: d.options.durable, pending: Math.max(0, d.queued - 1), ackPending: Math.min(1, d.queued) }));
  }

  async close(): Promise<void> {
    this.subscribers.clear();
    await Promise.all([...this.durables].map(async (d) => {
      d.stopped = true;
      await d.tail;
    }));
    this.durables.clear();
  }
}
