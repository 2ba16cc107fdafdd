import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  ErrorCode,
  Events,
  JSONCodec,
  NatsError,
  RetentionPolicy,
  StorageType,
  connect,
  nanos,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  type StreamConfig,
} from 'nats';
import { EventRejectedError, type ConsumerLag, type DurableConsumerOptions, type EventBus, type EventHandler, type StopConsumer } from './bus.js';
import type { RegistryEvent } from './event.js';
import { JetStreamPublisher } from './jetstream-publisher.js';

/** The fixed prefix of the public subjects in event.ts; NatsBus maps it onto its configured prefix. */
const PUBLIC_PREFIX = 'wharf.events';

export interface NatsBusOptions {
  servers: string | string[];
  /** JetStream stream holding every event; one per deployment (tests use a unique one per run). */
  stream?: string;
  /** Subject prefix inside NATS; `wharf.events.x.y` is published as `<subjectPrefix>.x.y`. */
  subjectPrefix?: string;
  /** Window in which JetStream drops a re-published event id (Nats-Msg-Id). */
  duplicateWindowMs?: number;
  /** How long the stream keeps events. */
  maxAgeMs?: number;
  /** Reject a publish not acknowledged by JetStream within this time. */
  publishTimeoutMs?: number;
  /** Connection name shown by the server (`nats server report connections`). */
  name?: string;
  /** Delay between reconnect attempts; attempts never stop. */
  reconnectTimeWaitMs?: number;
  /** Errors that have no caller to reject: subscriber handlers, consumer setup, status loop. */
  onError?: (err: unknown) => void;
}

export interface NatsBusStatus {
  connected: boolean;
  /** Set once close() ran or the client gave up; a closed bus never reconnects. */
  closed: boolean;
  server?: string;
}

/** An unsubscribe function that also says when the underlying consumer exists (deliver policy "new"). */
export type NatsUnsubscribe = (() => void) & { ready: Promise<void> };

const jc = JSONCodec<RegistryEvent>();

/** The event bus of distributed mode: JetStream, with Nats-Msg-Id = event id for dedupe. */
export class NatsBus implements EventBus {
  readonly stream: string;
  /** JetStream acknowledgements for a whole 1,000-row batch at once outlast the publish timeout on a loaded node; the relay keeps this many waiting. */
  readonly maxPublishesInFlight = 256;
  readonly subjectPrefix: string;
  private connected = true;
  private closing = false;
  private readonly js: JetStreamClient;
  private readonly publisher: JetStreamPublisher;
  private readonly onError: (err: unknown) => void;
  private readonly stoppers = new Set<() => Promise<void>>();
  private readonly durables = new Set<string>();
  private readonly connectionListeners = new Set<() => void>();
  private readonly statusLoop: Promise<void>;

  private constructor(
    private readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    options: Required<Pick<NatsBusOptions, 'stream' | 'subjectPrefix' | 'publishTimeoutMs'>> & Pick<NatsBusOptions, 'onError'>,
  ) {
    this.stream = options.stream;
    this.subjectPrefix = options.subjectPrefix;
    this.onError = options.onError ?? (() => {});
    this.js = nc.jetstream({ timeout: options.publishTimeoutMs });
    this.publisher = new JetStreamPublisher(nc, options.publishTimeoutMs);
    this.statusLoop = this.watchStatus();
  }

  static async connect(options: NatsBusOptions): Promise<NatsBus> {
    const stream = options.stream ?? 'WHARF_EVENTS';
    const subjectPrefix = options.subjectPrefix ?? PUBLIC_PREFIX;
    const publishTimeoutMs = options.publishTimeoutMs ?? 5_000;
    const nc = await connect({
      servers: options.servers,
      name: options.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: options.reconnectTimeWaitMs ?? 250,
      reconnectJitter: 100,
      timeout: 5_000,
    });
    try {
      const jsm = await nc.jetstreamManager({ timeout: publishTimeoutMs });
      await ensureStream(jsm, {
        name: stream,
        subjects: [`${subjectPrefix}.>`],
        duplicateWindowMs: options.duplicateWindowMs ?? 120_000,
        maxAgeMs: options.maxAgeMs ?? 7 * 24 * 3600_000,
      });
      return new NatsBus(nc, jsm, { stream, subjectPrefix, publishTimeoutMs, onError: options.onError });
    } catch (err) {
      await nc.close().catch(() => {});
      throw err;
    }
  }

  /** Rejects when NATS is unreachable or JetStream does not acknowledge in time: the outbox relay retries. */
  async publish(subject: string, event: RegistryEvent): Promise<void> {
    if (this.nc.isClosed()) throw new Error('NATS connection is closed');
    // Fail fast while disconnected; otherwise the request sits in the client's buffer until it times out.
    if (!this.connected) throw new Error('NATS is not connected');
    const { natsSubject, data } = this.encodeForPublish(subject, event);
    try {
      await this.publisher.publish(natsSubject, data, event.id);
    } catch (err) {
      if (err instanceof NatsError && err.code === ErrorCode.MaxPayloadExceeded) throw new EventRejectedError(err.message, { cause: err });
      throw err;
    }
  }

  /** Core NATS publish onto the stream's subject: JetStream stores it, nobody waits for its ack (pull events). */
  publishUnacknowledged(subject: string, event: RegistryEvent): void {
    if (!this.isConnected()) throw new Error('NATS is not connected');
    const { natsSubject, data } = this.encodeForPublish(subject, event);
    this.nc.publish(natsSubject, data);
  }

  /** The NATS subject and bytes of an event; EventRejectedError when no retry could ever publish it. */
  private encodeForPublish(subject: string, event: RegistryEvent): { natsSubject: string; data: Uint8Array } {
    let natsSubject: string;
    try {
      natsSubject = this.toNats(subject);
    } catch (err) {
      throw new EventRejectedError((err as Error).message);
    }
    const data = jc.encode(event);
    const max = this.nc.info?.max_payload;
    // Headers (Nats-Msg-Id) count against max_payload too: leave them room.
    if (max !== undefined && data.length + 256 > max) {
      throw new EventRejectedError(`event ${event.id} is ${data.length} bytes, over the NATS server's max_payload of ${max}`);
    }
    return { natsSubject, data };
  }

  /**
   * In-process listener: an ordered, ephemeral consumer that sees events published from now on
   * (deliver policy "new"). The handler gets the public `wharf.events...` subject; its errors go
   * to onError. `ready` resolves once the consumer exists: events published before may be missed.
   */
  subscribe(pattern: string, handler: EventHandler): NatsUnsubscribe {
    const filter = this.patternToNats(pattern);
    let stopped = false;
    let messages: ConsumerMessages | undefined;
    let deleteConsumer: (() => Promise<unknown>) | undefined;
    const ready = (async () => {
      // The ordered consumer is created on the server only once consume() runs, after `ready`
      // could resolve; "deliver new" would then miss what was published in between. Starting at
      // the sequence after the stream's last one, read now, misses nothing published after ready.
      const { last_seq: lastSeq } = (await this.jsm.streams.info(this.stream)).state;
      const consumer = await this.js.consumers.get(this.stream, {
        filterSubjects: filter, // a string, not an array: 2.9 has no multi-filter consumers
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: lastSeq + 1,
      });
      deleteConsumer = () => consumer.delete();
      const iter = await consumer.consume({ max_messages: 256 });
      messages = iter;
      if (stopped) {
        iter.stop();
        await consumer.delete().catch(() => {});
        return;
      }
      void (async () => {
        for await (const m of iter) {
          let event: RegistryEvent;
          try {
            event = m.json<RegistryEvent>();
          } catch (err) {
            this.onError(err);
            continue;
          }
          try {
            await handler(this.fromNats(m.subject), event);
          } catch (err) {
            this.onError(err);
          }
        }
      })().catch((err) => this.onError(err));
    })();
    ready.catch((err) => this.onError(err));
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      this.stoppers.delete(stop);
      messages?.stop();
      await deleteConsumer?.().catch(() => {});
    };
    this.stoppers.add(stop);
    const unsubscribe = (() => void stop()) as NatsUnsubscribe;
    unsubscribe.ready = ready;
    return unsubscribe;
  }

  /**
   * A durable pull consumer shared by all replicas of a role (same `durable`): each message goes
   * to one replica, is acked after the handler resolves, nak'ed with backoff when it throws, and
   * terminated (and handed to onDeadLetter) after maxDeliver attempts.
   */
  async consumeDurable(options: DurableConsumerOptions): Promise<StopConsumer> {
    const ackWaitMs = options.ackWaitMs ?? 30_000;
    const maxDeliver = options.maxDeliver ?? 5;
    const backoffMs = options.backoffMs?.length ? options.backoffMs : [1_000, 5_000, 30_000];
    const filterSubject = this.patternToNats(options.filterSubject);
    const config: Partial<ConsumerConfig> = {
      durable_name: options.durable,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(ackWaitMs),
      max_deliver: maxDeliver,
      deliver_policy: options.deliverPolicy === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
      filter_subject: filterSubject,
      ...(await this.startOf(options)),
    };
    try {
      // On 2.9 this creates the durable, or updates it when its editable fields changed.
      await this.jsm.consumers.add(this.stream, config);
    } catch (err) {
      // Another replica may have created it with a config this one cannot change: use theirs.
      const existing = await this.jsm.consumers.info(this.stream, options.durable).catch(() => undefined);
      if (!existing) throw err;
      this.onError(new Error(`durable consumer ${options.durable} exists with another config; using it`, { cause: err }));
    }
    const consumer = await this.js.consumers.get(this.stream, options.durable);
    this.durables.add(options.durable);
    const messages = await consumer.consume({ max_messages: options.batch ?? 10 });
    let stopping = false;
    // Acks of one event-loop turn go out together: the client writes to its socket once per
    // turn it has something to send, and a write per message was most of a worker's CPU while a
    // backlog drained. A lost ack only means a redelivery, which consumers tolerate; not
    // ackAck(), which made every message a request of its own.
    const acks: JsMsg[] = [];
    const sendAcks = () => {
      for (const m of acks.splice(0)) m.ack();
    };
    const ack = (m: JsMsg) => {
      if (acks.push(m) === 1) setImmediate(sendAcks);
    };

    const handle = async (m: JsMsg): Promise<void> => {
      const deliveryCount = m.info.deliveryCount; // 1 on the first delivery
      const subject = this.fromNats(m.subject);
      let event: RegistryEvent | undefined;
      try {
        event = m.json<RegistryEvent>();
        await options.handler(subject, event, { deliveryCount, streamSequence: m.seq });
      } catch (err) {
        if (event === undefined || deliveryCount >= maxDeliver) {
          try {
            await options.onDeadLetter?.(subject, event, err);
          } catch (dlErr) {
            // Could not record it: leave it to the server's redelivery, if any attempts remain.
            this.onError(dlErr);
            m.nak(backoffMs[backoffMs.length - 1]);
            return;
          }
          m.term();
          return;
        }
        this.onError(err);
        m.nak(backoffMs[Math.min(deliveryCount, backoffMs.length) - 1]);
        return;
      }
      ack(m);
    };

    const concurrency = Math.max(1, options.concurrency ?? 1);
    const pullSize = options.batch ?? 10;

    /**
     * Messages received together, first deliveries in one handleBatch call (acked together);
     * redeliveries, unparsable ones, and all of them when the batch call throws go through
     * handle() one by one, with its retries and dead letters.
     */
    const handleTogether = async (batch: JsMsg[]): Promise<void> => {
      const fresh: Array<{ m: JsMsg; subject: string; event: RegistryEvent }> = [];
      const alone: JsMsg[] = [];
      for (const m of batch) {
        if (m.info.deliveryCount > 1) {
          alone.push(m);
          continue;
        }
        try {
          fresh.push({ m, subject: this.fromNats(m.subject), event: m.json<RegistryEvent>() });
        } catch {
          alone.push(m);
        }
      }
      if (fresh.length > 1) {
        try {
          await options.handleBatch!(fresh.map(({ subject, event }) => ({ subject, event })));
          for (const { m } of fresh) ack(m);
        } catch (err) {
          this.onError(err);
          alone.push(...fresh.map((f) => f.m));
        }
      } else alone.push(...fresh.map((f) => f.m));
      for (const m of alone) await handle(m).catch((err) => this.onError(err));
    };

    // One at a time with a batch handler: what arrived while the previous batch ran is handled in one call.
    const batchedLoop = async () => {
      const buffer: JsMsg[] = [];
      let pump: Promise<void> | undefined;
      const runPump = async () => {
        // Let the client hand over what it already holds, so it joins this batch.
        await new Promise((resolve) => setImmediate(resolve));
        while (buffer.length > 0) await handleTogether(buffer.splice(0, pullSize));
        pump = undefined;
      };
      for await (const m of messages) {
        if (stopping) {
          m.nak();
          continue;
        }
        buffer.push(m);
        pump ??= runPump();
        // Iterating on lets the client pull more: not while a whole pull waits here.
        if (buffer.length >= pullSize) await pump;
      }
      await pump;
    };

    const loop = (async () => {
      if (options.handleBatch && concurrency === 1) return batchedLoop();
      const running = new Set<Promise<void>>();
      for await (const m of messages) {
        // Pulled but not started when stop() came: hand it straight back for another replica.
        if (stopping) {
          m.nak();
          continue;
        }
        const run: Promise<void> = handle(m)
          .catch((err) => this.onError(err))
          .finally(() => running.delete(run));
        running.add(run);
        if (running.size >= concurrency) await Promise.race(running);
      }
      await Promise.all(running);
    })().catch((err) => this.onError(err));

    const stop = async () => {
      if (stopping) return;
      stopping = true;
      this.stoppers.delete(stop);
      this.durables.delete(options.durable);
      messages.stop(); // no new pulls; the buffered messages are still iterated, then the loop ends
      await loop;
      sendAcks();
    };
    this.stoppers.add(stop);
    return stop;
  }

  /**
   * Where the durable starts: an existing one keeps its start (not editable, so asking for
   * another would refuse the update); a new one taking over from an old durable starts after the
   * old one's ack floor (what is acked past it is delivered again: at least once).
   */
  private async startOf(options: DurableConsumerOptions): Promise<Partial<ConsumerConfig>> {
    const existing = await this.consumerInfo(options.durable);
    if (existing) return { deliver_policy: existing.config.deliver_policy, opt_start_seq: existing.config.opt_start_seq };
    const old = options.takeOverFrom === undefined ? undefined : await this.consumerInfo(options.takeOverFrom);
    if (!old) return {};
    return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: old.ack_floor.stream_seq + 1 };
  }

  private async consumerInfo(durable: string): Promise<ConsumerInfo | undefined> {
    try {
      return await this.jsm.consumers.info(this.stream, durable);
    } catch (err) {
      if (consumerNotFound(err)) return undefined;
      throw err;
    }
  }

  async deleteDurable(durable: string): Promise<boolean> {
    try {
      return await this.jsm.consumers.delete(this.stream, durable);
    } catch (err) {
      if (consumerNotFound(err)) return false;
      throw err;
    }
  }

  /** num_pending and num_ack_pending of each durable this bus consumes; a durable NATS cannot describe now is left out. */
  async consumerLag(): Promise<ConsumerLag[]> {
    if (!this.connected) return [];
    const infos = await Promise.all(
      [...this.durables].map((durable) =>
        this.jsm.consumers.info(this.stream, durable).then(
          (info) => ({ durable, pending: info.num_pending, ackPending: info.num_ack_pending }),
          () => undefined,
        ),
      ),
    );
    return infos.filter((i): i is ConsumerLag => i !== undefined);
  }

  isConnected(): boolean {
    return this.connected && !this.nc.isClosed();
  }

  watchConnection(listener: () => void): () => void {
    this.connectionListeners.add(listener);
    return () => this.connectionListeners.delete(listener);
  }

  private connectionChanged(connected: boolean): void {
    this.connected = connected;
    for (const listener of this.connectionListeners) {
      try {
        listener();
      } catch (err) {
        this.onError(err);
      }
    }
  }

  status(): NatsBusStatus {
    return { connected: this.connected && !this.nc.isClosed(), closed: this.nc.isClosed(), server: this.nc.getServer() };
  }

  /** Stops consumers and subscriptions, then drains the connection. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await Promise.all([...this.stoppers].map((stop) => stop().catch((err) => this.onError(err))));
    if (!this.nc.isClosed()) {
      try {
        await this.nc.drain();
      } catch {
        await this.nc.close().catch(() => {});
      }
    }
    this.publisher.close();
    await this.statusLoop;
  }

  /** `wharf.events.a.b` → `<prefix>.a.b`; subjects already under the prefix pass through. */
  toNats(subject: string): string {
    if (subject.startsWith(`${PUBLIC_PREFIX}.`)) return this.subjectPrefix + subject.slice(PUBLIC_PREFIX.length);
    if (subject.startsWith(`${this.subjectPrefix}.`)) return subject;
    throw new Error(`subject ${subject} is not under ${PUBLIC_PREFIX}`);
  }

  /** `<prefix>.a.b` → `wharf.events.a.b`. */
  fromNats(subject: string): string {
    if (subject.startsWith(`${this.subjectPrefix}.`)) return PUBLIC_PREFIX + subject.slice(this.subjectPrefix.length);
    return subject;
  }

  /** Maps a public subject filter onto the stream: `>`, `wharf.>`, `*.events.x` and the like included. */
  patternToNats(pattern: string): string {
    const p = pattern.split('.');
    const fixed = PUBLIC_PREFIX.split('.');
    for (let i = 0; i < fixed.length; i++) {
      if (p[i] === '>') return `${this.subjectPrefix}.>`;
      if (p[i] !== '*' && p[i] !== fixed[i]) throw new Error(`pattern ${pattern} matches no ${PUBLIC_PREFIX} subject`);
    }
    const rest = p.slice(fixed.length);
    if (rest.length === 0) throw new Error(`pattern ${pattern} matches no ${PUBLIC_PREFIX} subject`);
    return `${this.subjectPrefix}.${rest.join('.')}`;
  }

  private async watchStatus(): Promise<void> {
    const statuses = this.nc.status();
    const closed = this.nc.closed().then((err) => {
      this.connectionChanged(false);
      if (err && !this.closing) this.onError(err);
      // nats.js never ends nc.status() iterators on close: end this one or the loop waits forever.
      (statuses as unknown as { stop?: () => void }).stop?.();
    });
    for await (const s of statuses) {
      if (s.type === Events.Disconnect) this.connectionChanged(false);
      else if (s.type === Events.Reconnect) this.connectionChanged(true);
    }
    await closed;
  }
}

interface StreamSpec {
  name: string;
  subjects: string[];
  duplicateWindowMs: number;
  maxAgeMs: number;
}

/** Creates the stream, or fixes its subjects; other settings an operator changed are left alone. */
async function ensureStream(jsm: JetStreamManager, spec: StreamSpec): Promise<void> {
  const existing = await streamInfo(jsm, spec.name);
  if (!existing) {
    const config: Partial<StreamConfig> = {
      name: spec.name,
      subjects: spec.subjects,
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: nanos(spec.maxAgeMs),
      duplicate_window: nanos(Math.min(spec.duplicateWindowMs, spec.maxAgeMs)),
      num_replicas: 1,
    };
    try {
      await jsm.streams.add(config);
      return;
    } catch (err) {
      // Another node created it first (with a different config, else add would have succeeded).
      if (!(await streamInfo(jsm, spec.name))) throw err;
      return ensureStream(jsm, spec);
    }
  }
  const current = [...(existing.subjects ?? [])].sort();
  const wanted = [...spec.subjects].sort();
  if (current.length !== wanted.length || current.some((s, i) => s !== wanted[i])) {
    await jsm.streams.update(spec.name, { subjects: spec.subjects });
  }
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamConfig | undefined> {
  try {
    return (await jsm.streams.info(name)).config;
  } catch (err) {
    if (err instanceof NatsError && err.jsError()?.err_code === 10059) return undefined; // stream not found
    throw err;
  }
}

/** JetStream's answer for a durable that does not exist (err_code 10014). */
function consumerNotFound(err: unknown): boolean {
  return err instanceof NatsError && err.jsError()?.err_code === 10014;
}
