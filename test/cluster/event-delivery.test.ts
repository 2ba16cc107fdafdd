import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutboxRelay, buildEvent, type EventBus } from '../../libs/events/index.js';
import { NatsBus } from '../../libs/events/nats-bus.js';
import { createLogger } from '../../libs/log/index.js';
import { migrate, openDatabase, outbox } from '../../libs/metadata/index.js';
import { startServe, type RunningWharf } from '../../services/cli/start.js';
import { clusterConfig } from '../helpers/cluster.js';
import { startPrivateNatsServer, type PrivateNatsServer } from '../helpers/nats.js';
import { pushImage } from '../helpers/oci.js';
import { clusterSuite } from '../helpers/services.js';
import { readStream } from '../helpers/stream.js';
import { eventually } from '../helpers/wait.js';

let nats: PrivateNatsServer | undefined;

const suite = clusterSuite({
  async setup() {
    nats = await startPrivateNatsServer();
  },
  async teardown() {
    await nats?.dispose();
  },
});

function countById(messages: Array<{ id: string }>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of messages) counts.set(m.id, (counts.get(m.id) ?? 0) + 1);
  return counts;
}

describe('events while NATS is down', () => {
  it('API writes keep succeeding and every outbox event reaches the stream exactly once when NATS returns', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const config = clusterConfig(suite.services!, { 'nats.url': nats!.url, 'events.pull': false });
    const admin = openDatabase({ url: config['database.url'], poolSize: 2, uploadPoolSize: 1 });
    await migrate(admin.db);
    let node: RunningWharf | undefined;
    try {
      node = await startServe(config, createLogger('silent'));
      await nats!.stop();
      for (let i = 0; i < 50; i++) await pushImage(node.url, `outage/app${i % 5}`, `v${i}`);
      const written = await admin.db.selectFrom('outbox').select(['event_id']).execute();
      assert.equal(written.length, 150, '2 blob pushes and 1 manifest push per image');

      await nats!.start();
      node.relay.wake();
      await eventually(
        async () => {
          const left = await admin.db.selectFrom('outbox').select('id').where('published_at', 'is', null).execute();
          assert.equal(left.length, 0);
        },
        60_000,
        200,
      );
      const messages = await readStream(nats!.url, config['nats.stream']);
      const counts = countById(messages);
      assert.equal(counts.size, 150);
      for (const row of written) assert.equal(counts.get(row.event_id), 1, `event ${row.event_id} published once`);
      assert.equal(messages.length, 150);
    } finally {
      await node?.close();
      await admin.close();
    }
  });
});

describe('two relays at once', () => {
  it('publish each event once between them', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const config = clusterConfig(suite.services!, { 'nats.url': nats!.url });
    const admin = openDatabase({ url: config['database.url'], poolSize: 4, uploadPoolSize: 1 });
    await migrate(admin.db);
    const bus = await NatsBus.connect({ servers: nats!.url, stream: config['nats.stream'], subjectPrefix: config['nats.subjectprefix'] });
    const published = new Map<string, number>();
    // Counts what each relay hands to the bus, so JetStream's own de-duplication cannot hide a double publish.
    const counting: EventBus = {
      publish: async (subject, event) => {
        published.set(event.id, (published.get(event.id) ?? 0) + 1);
        await bus.publish(subject, event);
      },
      subscribe: (p, h) => bus.subscribe(p, h),
      consumeDurable: (options) => bus.consumeDurable(options),
      close: async () => {},
    };
    const context = { request: { id: 'r', addr: '', host: '', method: 'PUT', useragent: '' }, actor: {}, source: { addr: '', instanceID: 'test' } };
    const events = Array.from({ length: 300 }, (_, i) => buildEvent('push', { repository: `relay/r${i}` }, context));
    await outbox.appendOutbox(
      admin.db,
      events.map((e) => ({ eventId: e.id, subject: 'wharf.events.manifest.push', payload: e })),
    );
    const relays = [0, 1].map(() => new OutboxRelay(outbox.outboxSource(admin.db), counting, { batchSize: 10 }));
    try {
      for (const r of relays) r.start();
      await eventually(
        async () => {
          const left = await admin.db.selectFrom('outbox').select('id').where('published_at', 'is', null).execute();
          assert.equal(left.length, 0);
        },
        30_000,
        100,
      );
      for (const e of events) assert.equal(published.get(e.id), 1, `event ${e.id} handed to the bus once`);
      const inStream = countById(await readStream(nats!.url, config['nats.stream']));
      for (const e of events) assert.equal(inStream.get(e.id), 1);
    } finally {
      for (const r of relays) await r.stop();
      await bus.close();
      await admin.close();
    }
  });
});
