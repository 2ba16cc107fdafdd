import { randomUUID } from 'node:crypto';

/** NATS subjects: a public contract, see docs/events.md. */
export const Subjects = {
  manifestPush: 'wharf.events.manifest.push',
  manifestPull: 'wharf.events.manifest.pull',
  manifestDelete: 'wharf.events.manifest.delete',
  blobPush: 'wharf.events.blob.push',
  blobPull: 'wharf.events.blob.pull',
  blobDelete: 'wharf.events.blob.delete',
  tagDelete: 'wharf.events.tag.delete',
  repositoryDelete: 'wharf.events.repository.delete',
} as const;

/**
 * Subject filters that together match every event that changes something, each subject exactly
 * once: every subject but the pulls (`*.pull`), which are most of the stream under read load.
 * A consumer that only cares about changes runs one durable per filter (nats-server 2.9 allows
 * one filter a consumer) instead of wading through the pulls behind `wharf.events.>`.
 */
export const CHANGE_SUBJECT_FILTERS = ['wharf.events.*.push', 'wharf.events.*.delete'] as const;

/** Who asked, as Distribution's notification events carry it. */
export interface RequestInfo {
  id: string;
  addr: string;
  host: string;
  method: string;
  useragent: string;
}

export interface EventTarget {
  mediaType?: string;
  size?: number;
  digest?: string;
  length?: number;
  repository: string;
  fromRepository?: string;
  url?: string;
  tag?: string;
  references?: Array<{ mediaType: string; digest: string; size: number }>;
  /** Set only when `references` was cut to keep the event under MAX_EVENT_BYTES: how many the manifest has. */
  referencesTotal?: number;
}

/** One event in CNCF Distribution's notification shape, so its webhook consumers work unchanged. */
export interface RegistryEvent {
  id: string;
  timestamp: string;
  action: 'push' | 'pull' | 'delete' | 'mount';
  target: EventTarget;
  request: RequestInfo;
  actor: { name?: string };
  source: { addr: string; instanceID: string };
  /** Pull events only: how many identical pulls this event stands for (events.pullwindow gathers them). */
  count?: number;
}

export interface EventSource {
  addr: string;
  instanceID: string;
}

export interface EventContext {
  request: RequestInfo;
  actor: { name?: string };
  source: EventSource;
}

export function buildEvent(action: RegistryEvent['action'], target: EventTarget, context: EventContext): RegistryEvent {
  if (target.size !== undefined && target.length === undefined) target.length = target.size;
  return boundEvent({
    id: randomUUID(),
    timestamp: new Date().toISOString(),
    action,
    target,
    request: context.request,
    actor: context.actor,
    source: context.source,
  });
}

/**
 * The most bytes an event takes as JSON. Far under NATS's default max_payload (1 MiB), so one
 * event can never be refused for its size there, and webhook bodies stay small.
 */
export const MAX_EVENT_BYTES = 64 * 1024;
/** Longest `request` field kept (user agent, host, ...): they come from request headers. */
export const MAX_REQUEST_FIELD_CHARS = 1024;

const bytesOf = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

/**
 * Keeps an event within MAX_EVENT_BYTES. What can grow without bound is a manifest push's
 * `target.references` (a manifest of up to 4 MiB may list thousands): they are cut to the first
 * ones that fit, and `target.referencesTotal` says how many there are; the full list is the
 * manifest itself, at `target.url`. `request` fields are cut to MAX_REQUEST_FIELD_CHARS.
 */
export function boundEvent(event: RegistryEvent): RegistryEvent {
  const request = event.request as unknown as Record<string, unknown>;
  if (Object.values(request).some((v) => typeof v === 'string' && v.length > MAX_REQUEST_FIELD_CHARS)) {
    event.request = Object.fromEntries(Object.entries(request).map(([k, v]) => [k, typeof v === 'string' ? v.slice(0, MAX_REQUEST_FIELD_CHARS) : v])) as unknown as RequestInfo;
  }
  const references = event.target.references;
  if (!references || references.length === 0 || bytesOf(event) <= MAX_EVENT_BYTES) return event;
  const total = references.length;
  // The event without references, plus room for `"referencesTotal":N,` and the list's brackets.
  let size = bytesOf({ ...event, target: { ...event.target, references: [], referencesTotal: total } });
  let kept = 0;
  for (; kept < total; kept++) {
    size += bytesOf(references[kept]) + 1;
    if (size > MAX_EVENT_BYTES) break;
  }
  event.target = { ...event.target, references: references.slice(0, kept), referencesTotal: total };
  return event;
}
