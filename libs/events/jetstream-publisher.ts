import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from 'nats';

interface Waiting {
  resolve(): void;
  reject(err: Error): void;
  sentAt: number;
}

/**
 * JetStream publishes whose acknowledgements come back on one subscription of this connection,
 * the way the Go client's PublishAsync works. The client's own `jetstream().publish` makes each
 * publish a request: a reply subscription entry, a timer and two Error objects with stack
 * traces, which was a large part of an API node's CPU while it relayed a backlog. Here a publish
 * is a core publish with a reply subject, and one sweep per second fails those unanswered for
 * `timeoutMs`.
 */
export class JetStreamPublisher {
  private readonly prefix = createInbox();
  private readonly subscription: Subscription;
  private readonly waiting = new Map<string, Waiting>();
  private readonly sweep: NodeJS.Timeout;
  private next = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
  ) {
    this.subscription = nc.subscribe(`${this.prefix}.*`, { callback: (err, msg) => (err ? undefined : this.answered(msg)) });
    this.sweep = setInterval(() => this.expire(), Math.min(1_000, timeoutMs));
    this.sweep.unref();
  }

  /** Resolves once the stream stored the message (or already had its id); rejects on a refusal or after timeoutMs. */
  publish(subject: string, data: Uint8Array, msgId: string): Promise<void> {
    const token = (this.next++).toString(36);
    const h = headers();
    h.set('Nats-Msg-Id', msgId);
    return new Promise<void>((resolve, reject) => {
      // Throws at once when the message is over the server's max_payload.
      this.nc.publish(subject, data, { reply: `${this.prefix}.${token}`, headers: h });
      this.waiting.set(token, { resolve, reject, sentAt: Date.now() });
    });
  }

  /** Fails what is still waiting (the connection is closing). */
  close(): void {
    clearInterval(this.sweep);
    this.subscription.unsubscribe();
    for (const w of this.waiting.values()) w.reject(new Error('NATS connection closed before JetStream acknowledged'));
    this.waiting.clear();
  }

  private answered(msg: Msg): void {
    const token = msg.subject.slice(this.prefix.length + 1);
    const w = this.waiting.get(token);
    if (!w) return; // timed out already
    this.waiting.delete(token);
    if (msg.headers?.hasError) {
      // 503: no stream takes the subject (no responders).
      w.reject(new Error(`JetStream did not take the message: ${msg.headers.code} ${msg.headers.description}`));
      return;
    }
    let ack: { stream?: string; error?: { code?: number; description?: string } };
    try {
      ack = msg.json();
    } catch {
      w.reject(new Error('JetStream answered the publish with something that is not a PubAck'));
      return;
    }
    if (ack.error) w.reject(new Error(`JetStream refused the message: ${ack.error.code ?? ''} ${ack.error.description ?? ''}`.trim()));
    else if (!ack.stream) w.reject(new Error('JetStream answered the publish without naming a stream'));
    else w.resolve();
  }

  private expire(): void {
    const now = Date.now();
    // Oldest first (Map order): the first one still within its time ends the sweep.
    for (const [token, w] of this.waiting) {
      if (now - w.sentAt < this.timeoutMs) return;
      this.waiting.delete(token);
      w.reject(new Error(`JetStream did not acknowledge within ${this.timeoutMs} ms`));
    }
  }
}
