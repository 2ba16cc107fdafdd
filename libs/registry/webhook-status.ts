import type { Kysely } from 'kysely';
import { webhooks, type Schema } from '../metadata/index.js';

export interface WebhookEndpointInfo {
  name: string;
  url: string;
  disabled: boolean;
}

export interface WebhookEndpointStatus {
  name: string;
  /** Undefined for an endpoint that has rows in the queue but is no longer configured. */
  url?: string;
  disabled?: boolean;
  configured: boolean;
  /** Delivered within notifications.retention (older delivered rows are pruned). */
  delivered: number;
  pending: number;
  failing: number;
  deadLettered: number;
  oldestPending: string | null;
  lastError: { message: string; status: number | null; eventId: string; at: string } | null;
}

/** What GET /_wharf/admin/webhooks shows: per endpoint, the queue's counts and the last error. */
export class WebhookStatusService {
  constructor(
    private readonly db: Kysely<Schema>,
    private readonly endpoints: WebhookEndpointInfo[],
  ) {}

  /** Moves dead letters (all, one endpoint's, one event's) back to pending with their attempts reset; returns how many. */
  redrive(filter: { endpoint?: string; eventId?: string }): Promise<number> {
    return webhooks.redrive(this.db, filter);
  }

  async status(): Promise<{ endpoints: WebhookEndpointStatus[] }> {
    const counts = new Map((await webhooks.endpointCounts(this.db)).map((c) => [c.endpoint, c]));
    const names = [...new Set([...this.endpoints.map((e) => e.name), ...counts.keys()])];
    return {
      endpoints: names.map((name) => {
        const c = counts.get(name);
        const configured = this.endpoints.find((e) => e.name === name);
        return {
          name,
          ...(configured ? { url: configured.url, disabled: configured.disabled } : {}),
          configured: configured !== undefined,
          delivered: c?.delivered ?? 0,
          pending: c?.pending ?? 0,
          failing: c?.failing ?? 0,
          deadLettered: c?.deadLettered ?? 0,
          oldestPending: c?.oldestPending ? new Date(c.oldestPending).toISOString() : null,
          lastError: c?.lastError ? { ...c.lastError, at: new Date(c.lastError.at).toISOString() } : null,
        };
      }),
    };
  }
}
