/** Consumer lag, as /metrics reports it per worker role: JetStream's counts on NATS, the queue in process. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MemoryBus, Subjects, buildEvent, type RegistryEvent } from '../libs/events/index.js';
import { NatsBus } from '../libs/events/nats-bus.js';
import { deleteStream, natsUnavailable, natsUrl, uniqueStreamNames } from './helpers/nats.js';
import { eventually } from './helpers/wait.js';

function event(repository: string): RegistryEvent {
  return buildEvent(
    'push',
    { repository, digest: `sha256:${'1'.repeat(64)}`, size: 1, mediaType: 'application/vnd.oci.image.manifest.v1+json' },
    { request: { id: 'lag', addr: '127.0.0.1', host: 'localhost', method: 'PUT', useragent: 'test' }, actor: {}, source: { addr: 'localhost:5000', instanceID: 'test' } },
  );
}

/** A handler that holds every event until released. */
function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { handler: async () => opened, open: () => open() };
}

const unavailable = await natsUnavailable();

describe('consumer lag on NATS', { skip: unavailable ?? false }, () => {
  const names = uniqueStreamNames();
  let bus: NatsBus | undefined;
  after(async () => {
    await bus?.close();
    await deleteStream(natsUrl(), names.stream);
  });

  it('reports num_pending and num_ack_pending of each durable this process consumes', async () => {
    bus = await NatsBus.connect({ servers: natsUrl(), ...names });
    for (let i = 0; i < 5; i++) await bus.publish(Subjects.manifestPush, event(`lag/${i}`));
    const held = gate();
    const stop = await bus.consumeDurable({ durable: 'lagrole', filterSubject: 'wharf.events.>', handler: held.handler, batch: 2, ackWaitMs: 30_000 });
    const lag = await eventually(async () => {
      const [l] = await bus!.consumerLag();
      assert.ok(l);
      assert.equal(l.pending + l.ackPending, 5);
      assert.ok(l.ackPending >= 1);
      return l;
    });
    assert.equal(lag.durable, 'lagrole');
    held.open();
    await eventually(async () => assert.deepEqual(await bus!.consumerLag(), [{ durable: 'lagrole', pending: 0, ackPending: 0 }]));
    await stop();
    assert.deepEqual(await bus.consumerLag(), [], 'a stopped consumer is no longer reported');
  });
});

describe('consumer lag in process', () => {
  it('counts the events queued for a durable consumer', async () => {
    const bus = new MemoryBus();
    const held = gate();
    await bus.consumeDurable({ durable: 'lagrole', filterSubject: 'wharf.events.>', handler: held.handler });
    const published = [1, 2, 3].map((i) => bus.publish(Subjects.manifestPush, event(`lag/${i}`)));
    assert.deepEqual(await bus.consumerLag(), [{ durable: 'lagrole', pending: 2, ackPending: 1 }]);
    held.open();
    await Promise.all(published);
    assert.deepEqual(await bus.consumerLag(), [{ durable: 'lagrole', pending: 0, ackPending: 0 }]);
    await bus.close();
  });
});
