import { CHANGE_SUBJECT_FILTERS, type RegistryEvent, type StopConsumer } from '../../libs/events/index.js';
import { counter, histogram } from '../../libs/metrics/index.js';
import { CatalogIndexer, ManifestLister } from '../../libs/registry/index.js';
import type { WorkerContext, WorkerRole } from './role.js';

/*
 * catalog-indexer and manifest-lister: durable consumers of every event but the pulls, one per
 * filter of CHANGE_SUBJECT_FILTERS (a push waits behind other changes only, never behind the
 * pulls of a busy read load; nats-server 2.9 has one filter a consumer). Their handlers
 * recompute the rows an event affects from the source tables (libs/registry/read-model-indexers),
 * so at-least-once delivery and any order (across the consumers too) are safe. An event that keeps failing is logged and
 * dropped: the next event of that repository, or `wharf reindex`, brings its rows right again.
 */

const lag = histogram<'model'>({
  name: 'wharf_read_model_lag_seconds',
  help: 'Seconds from an event (its timestamp, taken just before the change committed) to its change being applied to a read model',
  labelNames: ['model'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
});

const applied = counter<'model' | 'outcome'>({
  name: 'wharf_read_model_events_total',
  help: 'Events handled by the read-model workers, by outcome: applied, ignored (pulls), failed (will be retried), dropped (gave up)',
  labelNames: ['model', 'outcome'],
});

interface Applier {
  apply(subject: string, event: RegistryEvent): Promise<boolean>;
  applyBatch(events: Array<{ subject: string; event: RegistryEvent }>): Promise<number>;
}

function observeLag(model: string, event: RegistryEvent): void {
  const at = Date.parse(event.timestamp);
  if (Number.isFinite(at)) lag.observe({ model }, Math.max(0, (Date.now() - at) / 1000));
}

/** The durable consuming one filter of CHANGE_SUBJECT_FILTERS for a role: `catalog-indexer-push`, ... */
function durableName(role: string, filter: string): string {
  return `${role}-${filter.split('.').at(-1)}`;
}

function readModelRole(name: 'catalog-indexer' | 'manifest-lister', model: string, make: (context: WorkerContext) => Applier): WorkerRole {
  return {
    name,
    async start(context) {
      const applier = make(context);
      const consume = (filterSubject: string) =>
        context.bus.consumeDurable({
          durable: durableName(name, filterSubject),
          filterSubject,
          // Before these, one durable named after the role took `wharf.events.>`: carry on from it.
          takeOverFrom: name,
          // A pull of up to 256 is handled in one handleBatch call: each repository in it recomputed once.
          batch: 256,
          maxDeliver: 8,
          backoffMs: [200, 1_000, 5_000, 15_000],
          handler: async (subject, event) => {
            try {
              if (!(await applier.apply(subject, event))) {
                applied.inc({ model, outcome: 'ignored' });
                return;
              }
            } catch (err) {
              applied.inc({ model, outcome: 'failed' });
              throw err;
            }
            applied.inc({ model, outcome: 'applied' });
            observeLag(model, event);
          },
          handleBatch: async (events) => {
            const n = await applier.applyBatch(events);
            applied.inc({ model, outcome: 'applied' }, n);
            if (events.length > n) applied.inc({ model, outcome: 'ignored' }, events.length - n);
            for (const { event } of events) if (event.action !== 'pull') observeLag(model, event);
          },
          onDeadLetter: (subject, event, err) => {
            applied.inc({ model, outcome: 'dropped' });
            context.logger.error(
              { err, subject, eventId: event?.id, repository: event?.target?.repository },
              `${name} gave up on an event; run wharf reindex if its repository's listing looks wrong`,
            );
          },
        });
      const stops: StopConsumer[] = [];
      try {
        for (const filter of CHANGE_SUBJECT_FILTERS) stops.push(await consume(filter));
        // Only once every replacement exists: each started where the old durable's acks end.
        if (await context.bus.deleteDurable?.(name)) context.logger.info({ durable: name }, `replaced durable consumer ${name} (all events) by one per change subject`);
      } catch (err) {
        await Promise.allSettled(stops.map((stop) => stop()));
        throw err;
      }
      return async () => {
        await Promise.all(stops.map((stop) => stop()));
      };
    },
  };
}

export const catalogIndexer = readModelRole('catalog-indexer', 'catalog', (context) => new CatalogIndexer(context.database.db));
export const manifestLister = readModelRole('manifest-lister', 'manifests', (context) => new ManifestLister(context.database.db));
