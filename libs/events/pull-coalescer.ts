import type { RegistryEvent } from './event.js';

interface EventSink {
  offer(subject: string, event: RegistryEvent): void;
}

export interface PullCoalescerOptions {
  /** Milliseconds a pull waits for identical ones to join it; 0: every pull passes straight through. */
  windowMs: number;
  /** Distinct pulls held at most; one more hands everything held to the sink at once. */
  maxHeld?: number;
}

/**
 * Gathers identical pulls (same subject, object, tag, actor and client) within a window into one
 * event whose `count` says how many pulls it stands for: a client pulling one tag thousands of
 * times a second costs the stream a few events, not thousands. The event kept is the first pull's
 * (its id, timestamp and request id); the rest only add to its count.
 */
export class PullCoalescer {
  private held = new Map<string, { subject: string; event: RegistryEvent }>();
  private timer: NodeJS.Timeout | undefined;
  private readonly maxHeld: number;

  constructor(
    private readonly sink: EventSink,
    private readonly options: PullCoalescerOptions,
  ) {
    this.maxHeld = options.maxHeld ?? 10_000;
  }

  offer(subject: string, event: RegistryEvent): void {
    event.count = 1;
    if (this.options.windowMs <= 0) {
      this.sink.offer(subject, event);
      return;
    }
    const { target, actor, request } = event;
    const key = JSON.stringify([
      subject,
      target.repository,
      target.digest,
      target.tag,
      target.mediaType,
      actor.name,
      request.addr,
      request.host,
      request.useragent,
      request.method,
    ]);
    const same = this.held.get(key);
    if (same) {
      same.event.count! += 1;
      return;
    }
    if (this.held.size >= this.maxHeld) this.flush();
    this.held.set(key, { subject, event });
    this.timer ??= setTimeout(() => this.flush(), this.options.windowMs).unref();
  }

  /** Hands every held event to the sink now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const held = this.held;
    this.held = new Map();
    for (const { subject, event } of held.values()) this.sink.offer(subject, event);
  }
}
