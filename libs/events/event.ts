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

export type Subject = (typeof Subjects)[keyof typeof Subjects];

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
  return {
    id: randomUUID(),
    timestamp: new Date().toISOString(),
    action,
    target,
    request: context.request,
    actor: context.actor,
    source: context.source,
  };
}
