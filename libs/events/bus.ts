import type { RegistryEvent } from './event.js';

export type EventHandler = (subject: string, event: RegistryEvent) => void | Promise<void>;

export interface DurableDelivery {
  /** 1 on the first delivery. */
  deliveryCount: number;
  streamSequence: number;
}

export interface DurableConsumerOptions {
  /** Shared by every replica of a role: JetStream hands each message to one of them. */
  durable: string;
  /** One subject filter in the public `wharf.events...` form (nats-server 2.9: a single filter only). */
  filterSubject: string;
  handler: (subject: string, event: RegistryEvent, delivery: DurableDelivery) => Promise<void> | void;
  /** Redelivered if not acked in this time (e.g. the replica died mid-handler). */
  ackWaitMs?: number;
  /** Deliveries before giving up on a message (the server stops redelivering too). */
  maxDeliver?: number;
  /** nak delay after the n-th failure is backoffMs[n-1]; the last entry repeats. */
  backoffMs?: number[];
  /** Called when a message is given up on (last attempt failed, or unparsable): record it as dead letter. */
  onDeadLetter?: (subject: string, event: RegistryEvent | undefined, err: unknown) => Promise<void> | void;
  /** Where a newly created durable starts: 'all' retained events (default) or only 'new' ones. */
  deliverPolicy?: 'all' | 'new';
  /**
   * A durable this one replaces (e.g. one with an older filter). When this one does not exist yet
   * and that one does, this one starts where that one's acknowledgements end instead of at
   * deliverPolicy; the caller deletes the old one (deleteDurable) once all its replacements exist.
   */
  takeOverFrom?: string;
  /** Messages pulled per request; small keeps work spread across replicas. */
  batch?: number;
  /** Handlers running at once in this replica (default 1: in stream order). Above 1, order is not kept. */
  concurrency?: number;
  /**
   * Handles several events in one call, where the bus can (the in-process bus hands over what
   * queued up while the previous call ran, in order; NATS, with concurrency 1, the first
   * deliveries of what arrived while the previous call ran, up to `batch`). It must have the effect of `handler` on
   * each; when it throws, each event goes through `handler` alone, with the usual retries.
   */
  handleBatch?: (events: Array<{ subject: string; event: RegistryEvent }>) => Promise<void>;
}

/** Stops pulling, lets the running handler finish, releases buffered messages, and resolves. */
export type StopConsumer = () => Promise<void>;

/** How far behind one durable consumer is (JetStream's consumer info). */
export interface ConsumerLag {
  durable: string;
  /** Messages in the stream the consumer has not been handed yet. */
  pending: number;
  /** Messages handed out and not yet acknowledged. */
  ackPending: number;
}

/** Carries events to subscribers; `id` lets a bus drop duplicates (JetStream's Nats-Msg-Id). */
export interface EventBus {
  publish(subject: string, event: RegistryEvent): Promise<void>;
  /** `pattern` is a NATS-style subject filter: `*` matches one token, a final `>` the rest. */
  subscribe(pattern: string, handler: EventHandler): () => void;
  /**
   * A durable consumer shared by every replica of a role: each event reaches the role at least
   * once, retried with backoff while the handler throws, and handed to onDeadLetter after the
   * last attempt. Handlers must be idempotent.
   */
  consumeDurable(options: DurableConsumerOptions): Promise<StopConsumer>;
  /**
   * Deletes a durable consumer kept by the bus (one no longer used); resolves with whether it
   * existed. Absent: the bus keeps no durable state across restarts (the in-process bus).
   */
  deleteDurable?(durable: string): Promise<boolean>;
  /** Lag of every durable consumer this process runs (for /metrics). */
  consumerLag?(): Promise<ConsumerLag[]>;
  /**
   * Publishes without waiting for any acknowledgement (fire and forget), where the bus can:
   * for best-effort events only. Throws when it cannot even send.
   */
  publishUnacknowledged?(subject: string, event: RegistryEvent): void;
  /** Whether the bus can publish right now; absent means always (the in-process bus). */
  isConnected?(): boolean;
  /**
   * Calls `listener` whenever the connection drops or comes back (then read isConnected); absent:
   * the bus never disconnects. Returns the function that stops the calls.
   */
  watchConnection?(listener: () => void): () => void;
  /** Publishes a relay should keep awaiting acknowledgement at once; absent: a whole batch. */
  readonly maxPublishesInFlight?: number;
  close(): Promise<void>;
}

export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

/**
 * Thrown by publish when the bus will never take this event as it is (e.g. larger than NATS's
 * max_payload): the outbox relay sets the row aside instead of retrying it in front of the rest.
 */
export class EventRejectedError extends Error {
  override readonly name = 'EventRejectedError';
}
