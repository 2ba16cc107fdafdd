import type { Logger } from '../../libs/log/index.js';
import { gcRole } from './gc.js';
import { webhooksRole } from './webhooks.js';
import { catalogIndexer, manifestLister } from './read-model-roles.js';
import type { WorkerContext, WorkerRole } from './role.js';

export type { WorkerContext, WorkerRole } from './role.js';

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
