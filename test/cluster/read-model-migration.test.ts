/**
 * A deployment upgraded from one read-model durable per role on every subject (`catalog-indexer`,
 * `manifest-lister` on `wharf.events.>`) to one per change subject: the worker's first start
 * takes over where the old durables' acknowledgements end, deletes them, and the listings follow.
 */
import assert from 'node:assert/strict';
import { AckPolicy } from 'nats';
import { describe, it } from 'node:test';
import { NatsBus } from '../../libs/events/nats-bus.js';
import { Subjects, buildEvent } from '../../libs/events/index.js';
import { createLogger } from '../../libs/log/index.js';
import { startServe, startWorker, type RunningWharf } from '../../services/cli/start.js';
import { clusterConfig } from '../helpers/cluster.js';
import { pushImage } from '../helpers/oci.js';
import { clusterSuite, migrateDatabase, type ClusterServices } from '../helpers/services.js';
import { eventually } from '../helpers/wait.js';

let node: RunningWharf | undefined;
let worker: { close(): Promise<void> } | undefined;
let bus: NatsBus | undefined;
let config: ReturnType<typeof clusterConfig>;

const suite = clusterSuite({ setup, teardown });

async function setup(services: ClusterServices): Promise<void> {
  config = clusterConfig(services);
  await migrateDatabase(config['database.url']);
  bus = await NatsBus.connect({ servers: services.natsUrl, stream: config['nats.stream'], subjectPrefix: config['nats.subjectprefix'] });
  const context = { request: { id: 'old', addr: '', host: '', method: 'PUT', useragent: '' }, actor: {}, source: { addr: '', instanceID: 'old' } };
  for (let i = 0; i < 3; i++) await bus.publish(Subjects.manifestPush, buildEvent('push', { repository: `old/${i}` }, context));
  // The old manifest-lister had handled (acked) those three; the old catalog-indexer none.
  const stop = await bus.consumeDurable({ durable: 'manifest-lister', filterSubject: 'wharf.events.>', handler: () => {} });
  await eventually(async () => assert.deepEqual(await bus!.consumerLag(), [{ durable: 'manifest-lister', pending: 0, ackPending: 0 }]));
  await stop();
  await bus.jsm.consumers.add(config['nats.stream'], { durable_name: 'catalog-indexer', ack_policy: AckPolicy.Explicit, filter_subject: `${config['nats.subjectprefix']}.>` });
  const logger = createLogger(process.env.WHARF_TEST_LOG_LEVEL ?? 'silent');
  node = await startServe(config, logger.child({ node: 'api' }));
  worker = await startWorker(config, logger.child({ node: 'worker' }));
}

async function teardown(): Promise<void> {
  await worker?.close();
  await node?.close();
  await bus?.close();
}

describe('read-model durables, upgraded from one on every subject', () => {
  it('start where the old durables acked up to, replace them, and keep the listings current', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const names = (await bus!.jsm.consumers.list(config['nats.stream']).next()).flatMap((c) => (c.config.durable_name && c.name !== 'webhooks' ? [c.name] : []));
    assert.deepEqual(names.sort(), ['catalog-indexer-delete', 'catalog-indexer-push', 'manifest-lister-delete', 'manifest-lister-push'], 'the old durables are gone');
    const start = async (durable: string) => {
      const info = await bus!.jsm.consumers.info(config['nats.stream'], durable);
      return { policy: info.config.deliver_policy, seq: info.config.opt_start_seq };
    };
    assert.deepEqual(await start('manifest-lister-push'), { policy: 'by_start_sequence', seq: 4 }, 'after the three the old lister acked');
    assert.deepEqual(await start('catalog-indexer-push'), { policy: 'by_start_sequence', seq: 1 }, 'the old indexer had acked nothing');
    await pushImage(node!.url, 'migrated/app', 'v1');
    await eventually(async () => {
      const res = await fetch(`${node!.url}/v2/migrated/app/_wharf/manifests`);
      const body = (await res.json()) as { manifests: Array<{ tags: string[] }> };
      assert.ok(
        body.manifests.some((m) => m.tags.includes('v1')),
        'the push is in the listing',
      );
    }, 30_000);
  });
});
