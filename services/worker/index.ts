import type { Config } from '../../libs/config/index.js';
import type { EventBus } from '../../libs/events/index.js';
import type { Logger } from '../../libs/log/index.js';
import type { Database } from '../../libs/metadata/index.js';
import type { BlobStore } from '../../libs/storage/index.js';
import { gcRole } from './gc.js';
import { webhooksRole } from './webhooks.js';
import { catalogIndexer, manifestLister } from './read-model-roles.js';

/** What a worker role gets: the process's drivers, its config and a logger named after the role. */
export interface WorkerContext {
  config: Config;
  database: Database;
  store: BlobStore;
  bus: EventBus;
  logger: Logger;
}

/**
 * One kind of worker (webhooks, catalog-indexer, manifest-lister, gc). Replicas of a role share
 * its durable consumer or its queue, so any number of them may run. start() returns a stop
 * function that finishes or hands back the work in flight.
 */
export interface WorkerRole {
  name: string;
  start(context: WorkerContext): Promise<() => Promise<void>>;
}

/** Every role, in start order. `worker.roles` picks a subset for a process. */
export const ROLES: WorkerRole[] = [webhooksRole(), catalogIndexer, manifestLister, gcRole];

export interface RunningWorkers {
  roles: string[];
  close(): Promise<void>;
}

export function selectRoles(wanted: string[], roles: WorkerRole[] = ROLES): WorkerRole[] {
  if (wanted.length === 0) return roles;
  const unknown = wanted.filter((name) => !roles.some((r) => r.name === name));
  if (unknown.length > 0) throw new Error(`worker.roles: unknown role ${unknown.join(', ')} (known: ${roles.map((r) => r.name).join(', ') || 'none'})`);
  return roles.filter((r) => wanted.includes(r.name));
}

/** Starts the roles `worker.roles` names (all when empty); stops the started ones if one fails to start. */
export async function startWorkers(context: Omit<WorkerContext, 'logger'> & { logger: Logger }, roles = selectRoles(context.config['worker.roles'])): Promise<RunningWorkers> {
  const stops: Array<() => Promise<void>> = [];
  try {
    for (const role of roles) stops.push(await role.start({ ...context, logger: context.logger.child({ worker: role.name }) }));
  } catch (err) {
    await Promise.allSettled(stops.map((stop) => stop()));
    throw err;
  }
  return {
    roles: roles.map((r) => r.name),
    async close() {
      await Promise.allSettled(stops.reverse().map((stop) => stop()));
    },
  };
}
