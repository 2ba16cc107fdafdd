import { errorText } from '../api.js';
import { bytes, h, notice, replace, table, time } from '../dom.js';
import type { ViewContext } from '../context.js';
import { failure, heading } from './common.js';

interface EndpointStatus {
  name: string;
  url?: string;
  disabled?: boolean;
  configured: boolean;
  delivered: number;
  pending: number;
  failing: number;
  deadLettered: number;
  oldestPending: string | null;
  lastError: { message: string; status: number | null; eventId: string; at: string } | null;
}

interface Queue {
  queued: number;
  due: number;
  oldestDue: string | null;
}

interface Status {
  gc: { manifestReviews: Queue; blobReviews: Queue; storageDeletions: Queue & { bytes: number } };
  outbox: { unpublished: number; oldestUnpublished: string | null };
  readModels: { catalog: { repositoriesBehind: number } };
  consumers: Array<{ durable: string; pending: number; ackPending: number }>;
}

async function redrive(ctx: ViewContext, endpoint: string | undefined, out: HTMLElement): Promise<void> {
  const answer = await ctx.api.request<{ redriven: number }>('POST', '/_wharf/admin/webhooks/redrive', {
    body: JSON.stringify(endpoint ? { endpoint } : {}),
    contentType: 'application/json',
  });
  replace(
    out,
    answer.ok
      ? notice('info', `${answer.body.redriven} dead-lettered deliver${answer.body.redriven === 1 ? 'y' : 'ies'} back to pending.`)
      : notice('error', `Redrive failed: ${answer.refused ?? errorText(answer)}`),
  );
  if (answer.ok) await adminView(ctx, out.textContent ?? undefined);
}

export async function adminView(ctx: ViewContext, message?: string): Promise<void> {
  const [hooks, status] = await Promise.all([ctx.api.get<{ endpoints: EndpointStatus[] }>('/_wharf/admin/webhooks'), ctx.api.get<Status>('/_wharf/admin/status')]);
  if (!ctx.current()) return;
  const head = heading('Operations');
  if (!hooks.ok) {
    replace(ctx.main, head, failure(ctx, hooks, 'The operations page'), hooks.refused ? h('p', {}, 'Admin access comes from an admin rule in auth.policy (docs/auth.md).') : null);
    return;
  }
  const out = h('div', { id: 'admin-messages' }, message ? notice('info', message) : null);
  const rows = hooks.body.endpoints.map((e) => [
    h('strong', {}, e.name),
    e.url ? h('code', {}, e.url) : h('em', {}, 'no longer configured'),
    e.disabled ? 'disabled' : 'enabled',
    String(e.delivered),
    String(e.pending),
    String(e.failing),
    String(e.deadLettered),
    time(e.oldestPending),
    e.lastError ? [e.lastError.message, e.lastError.status !== null ? ` (HTTP ${e.lastError.status})` : '', h('br'), time(e.lastError.at)] : '–',
    h('button', { type: 'button', 'aria-label': `Redrive dead letters of ${e.name}`, disabled: e.deadLettered === 0, onclick: () => redrive(ctx, e.name, out) }, 'Redrive'),
  ]);
  const queueRow = (label: string, q: Queue, extra = '') => [label, String(q.queued), String(q.due), time(q.oldestDue), extra];
  replace(
    ctx.main,
    head,
    out,
    h(
      'section',
      { 'aria-labelledby': 'hooks-title' },
      h('h2', { id: 'hooks-title' }, 'Webhooks'),
      table('Webhook endpoints', ['Endpoint', 'URL', 'State', 'Delivered', 'Pending', 'Failing', 'Dead', 'Oldest pending', 'Last error', ''], rows, {
        empty: 'No webhook endpoints are configured (notifications.endpoints).',
        id: 'webhooks',
      }),
      rows.length ? h('button', { type: 'button', onclick: () => redrive(ctx, undefined, out) }, 'Redrive all dead letters') : null,
    ),
    status.ok
      ? [
          h(
            'section',
            { 'aria-labelledby': 'gc-title' },
            h('h2', { id: 'gc-title' }, 'Garbage collection'),
            table(
              'GC queues',
              ['Queue', 'Queued', 'Due now', 'Oldest due', ''],
              [
                queueRow('Manifest reviews', status.body.gc.manifestReviews),
                queueRow('Blob reviews', status.body.gc.blobReviews),
                queueRow('Storage deletions', status.body.gc.storageDeletions, bytes(status.body.gc.storageDeletions.bytes)),
              ],
              { id: 'gc' },
            ),
          ),
          h(
            'section',
            { 'aria-labelledby': 'lag-title' },
            h('h2', { id: 'lag-title' }, 'Events and read models'),
            h(
              'dl',
              { class: 'facts', id: 'lag' },
              h(
                'div',
                {},
                h('dt', {}, 'Outbox not yet published'),
                h('dd', {}, String(status.body.outbox.unpublished), status.body.outbox.oldestUnpublished ? [' since ', time(status.body.outbox.oldestUnpublished)] : null),
              ),
              h('div', {}, h('dt', {}, 'Repositories the catalog has not caught up with'), h('dd', {}, String(status.body.readModels.catalog.repositoriesBehind))),
            ),
            table(
              'Consumers in the serving process',
              ['Consumer', 'Pending', 'Being handled'],
              status.body.consumers.map((c) => [c.durable, String(c.pending), String(c.ackPending)]),
              {
                empty: 'This node runs no consumers (they run in wharf worker); see wharf_read_model_lag_seconds on the worker’s /metrics.',
                id: 'consumers',
              },
            ),
          ),
        ]
      : failure(ctx, status, 'Queue status'),
  );
}
