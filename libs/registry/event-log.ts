import { buildEvent, Subjects, type EventTarget, type RegistryEvent } from '../events/index.js';
import { outbox, type Executor } from '../metadata/index.js';
import type { RequestContext } from './context.js';
import type { RegistryDeps } from './deps.js';

export type DurableAction = { subject: string; action: RegistryEvent['action']; target: EventTarget };

/** Writes events into the outbox inside the caller's transaction: they commit or vanish with the change. */
export async function recordEvents(trx: Executor, context: RequestContext, actions: DurableAction[]): Promise<void> {
  await outbox.appendOutbox(
    trx,
    actions.map((a) => {
      const event = buildEvent(a.action, a.target, context);
      return { eventId: event.id, subject: a.subject, payload: event };
    }),
  );
}

/** Pull events skip the outbox: high volume, best effort (dropped and counted when they cannot keep up), and they can be switched off. */
export function publishPull(deps: RegistryDeps, context: RequestContext, kind: 'manifest' | 'blob', target: EventTarget): void {
  if (!deps.options.pullEvents) return;
  deps.pullEvents.offer(kind === 'manifest' ? Subjects.manifestPull : Subjects.blobPull, target, context);
}

export function manifestUrl(context: RequestContext, repository: string, digest: string): string {
  return `${context.urlBase}/v2/${repository}/manifests/${digest}`;
}

export function blobUrl(context: RequestContext, repository: string, digest: string): string {
  return `${context.urlBase}/v2/${repository}/blobs/${digest}`;
}
