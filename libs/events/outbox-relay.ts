import { WakeableSleep } from '../async/wakeable-sleep.js';
import type { EventBus } from './bus.js';
import type { RegistryEvent } from './event.js';

export interface PendingMessage {
  eventId: string;
  subject: string;
  payload: unknown;
}

/**
 * Hands out unpublished outbox rows. `fn` runs while the rows are claimed; they count as
 * published only if it resolves, so a crash or a bus failure leaves them for the next pass.
 */
export interface OutboxSource {
  withClaimed(limit: number, fn: (messages: PendingMessage[]) => Promise<void>): Promise<number>;
}

export interface OutboxRelayOptions {
  batchSize?: number;
  /** How often to look for rows when nobody calls wake(), e.g. rows other nodes wrote. */
  pollIntervalMs?: number;
  onError?: (err: unknown) => void;
}

/** Moves committed outbox rows onto the bus, oldest first. Safe to run on many nodes at once. */
export class OutboxRelay {
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly onError: (err: unknown) => void;
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly sleeper = new WakeableSleep();

  constructor(
    private readonly source: OutboxSource,
    private readonly bus: EventBus,
    options: OutboxRelayOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 100;
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.onError = options.onError ?? (() => {});
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Asks for a pass now: called after a commit that wrote outbox rows. */
  wake(): void {
    this.sleeper.wake();
  }

  /** Publishes everything unpublished right now; resolves with how many were published. */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.source.withClaimed(this.batchSize, async (messages) => {
        for (const m of messages) await this.bus.publish(m.subject, m.payload as RegistryEvent);
      });
      total += n;
      if (n < this.batchSize) return total;
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.sleeper.wake();
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
