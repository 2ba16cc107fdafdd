import { buildEvent, type EventContext, type EventTarget, type RegistryEvent } from './event.js';

interface EventSink {
  offer(subject: string, event: RegistryEvent): void;
}

export interface PullCoalescerOptions {
  /** Milliseconds a pull waits for identical ones to join it; 0: every pull passes straight through. */
  windowMs: number;
  /** Distinct pulls held at most; one more hands everything held to the sink at once. */
  maxHeld?: number;
}

/** The client's address without its port: a client opening a connection per pull is still one client. */
function hostOf(addr: string): string {
  const colon = addr.lastIndexOf(':');
  return colon === -1 ? addr : addr.slice(0, colon);
}

/** A pull event standing for one pull so far. */
function pullEvent(target: EventTarget, context: EventContext): RegistryEvent {
  const event = buildEvent('pull', target, context);
  event.count = 1;
  return event;
}

/**
 * Gathers identical pulls (same subject, object, tag, actor and client) within a window into one
 * event whose `count` says how many pulls it stands for: a client pulling one tag thousands of
 * times a second costs the stream a few events, not thousands, and a pull that joins one costs no
 * event of its own. The event kept is the first pull's (its id, timestamp and request); the
 * rest only add to its count.
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

  offer(subject: string, target: EventTarget, context: EventContext): void {
    if (this.options.windowMs <= 0) {
      this.sink.offer(subject, pullEvent(target, context));
      return;
    }
    const { request } = context;
    // NUL never occurs in these: names, tags and digests follow their grammars, and HTTP header values cannot hold it.
    const key = `${subject}\0${target.repository}\0${target.digest}\0${target.tag ?? ''}\0${context.actor.name ?? ''}\0${hostOf(request.addr)}\0${request.host}\0${request.method}\0${request.useragent}`;
    const same = this.held.get(key);
    if (same) {
      same.event.count! += 1;
      return;
    }
    if (this.held.size >= this.maxHeld) this.flush();
    this.held.set(key, { subject, event: pullEvent(target, context) });
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
