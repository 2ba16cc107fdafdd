import type { EventBus, EventHandler } from './bus.js';
import { subjectMatches } from './bus.js';
import type { RegistryEvent } from './event.js';

/** The in-process bus of embedded mode: handlers run after publish resolves, never inside it. */
export class MemoryBus implements EventBus {
  private readonly subscribers = new Set<{ pattern: string; handler: EventHandler }>();
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
  }

  subscribe(pattern: string, handler: EventHandler): () => void {
    const sub = { pattern, handler };
    this.subscribers.add(sub);
    return () => this.subscribers.delete(sub);
  }

  async close(): Promise<void> {
    this.subscribers.clear();
  }
}
