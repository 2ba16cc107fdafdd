import type { EventBus } from './bus.js';
import type { RegistryEvent } from './event.js';

export type DropReason = 'full' | 'disconnected' | 'failed';

export interface BestEffortPublisherOptions {
  /** Events waiting to be published at most; past this, new ones are dropped. */
  maxQueued?: number;
  /** Publishes awaiting the bus at once. */
  maxInFlight?: number;
  /** Called for every event dropped (count it). */
  onDropped?: (reason: DropReason, err?: unknown) => void;
}

/**
 * Pull events, off the request path: offer() only queues (never waits, never throws), and a
 * pump publishes what queued up after the current turn of the event loop: without waiting for
 * acknowledgements where the bus allows it (NATS), else a bounded number in flight. Best effort by design: when the queue is full, the bus is disconnected, or a publish
 * fails, the event is dropped and counted; nothing is retried.
 */
export class BestEffortPublisher {
  private readonly queue: Array<{ subject: string; event: RegistryEvent }> = [];
  private readonly maxQueued: number;
  private readonly maxInFlight: number;
  private readonly onDropped: (reason: DropReason, err?: unknown) => void;
  private inFlight = 0;
  private scheduled = false;
  private idle: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly bus: EventBus,
    options: BestEffortPublisherOptions = {},
  ) {
    this.maxQueued = options.maxQueued ?? 10_000;
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 64);
    this.onDropped = options.onDropped ?? (() => {});
  }

  offer(subject: string, event: RegistryEvent): void {
    if (this.closed || this.queue.length >= this.maxQueued) {
      this.onDropped('full');
      return;
    }
    this.queue.push({ subject, event });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.pump();
      });
    }
  }

  /** Events queued or in flight. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  private pump(): void {
    if (this.bus.isConnected && !this.bus.isConnected()) {
      for (const _ of this.queue.splice(0)) this.onDropped('disconnected');
    }
    if (this.bus.publishUnacknowledged) {
      // Nothing to wait for (NATS): hand everything queued to the client now.
      for (const { subject, event } of this.queue.splice(0)) {
        try {
          this.bus.publishUnacknowledged(subject, event);
        } catch (err) {
          this.onDropped('failed', err);
        }
      }
    }
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const { subject, event } = this.queue.shift()!;
      this.inFlight++;
      this.bus.publish(subject, event).then(
        () => this.settled(),
        (err) => {
          this.onDropped('failed', err);
          this.settled();
        },
      );
    }
    if (this.pending === 0) this.idle?.();
  }

  private settled(): void {
    this.inFlight--;
    this.pump();
  }

  /** Publishes what is queued (no new offers), then resolves. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.pending === 0) return;
    await new Promise<void>((resolve) => {
      this.idle = resolve;
      this.pump();
    });
  }
}
