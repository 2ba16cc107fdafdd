import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NatsBus } from '../libs/events/nats-bus.js';
import { Subjects, buildEvent, type RegistryEvent } from '../libs/events/event.js';
import { canRunPrivateNatsServer, deleteStream, natsUnavailable, natsUrl, startPrivateNatsServer, uniqueStreamNames, type PrivateNatsServer } from './helpers/nats.js';
import { eventually } from './helpers/wait.js';

const url = natsUrl();
const unavailable = await natsUnavailable(url);
if (unavailable) console.warn(`skipping NatsBus tests: ${unavailable}`);

function event(repository: string, tag?: string): RegistryEvent {
  return buildEvent(
    'push',
    { repository, tag, digest: `sha256:${'0'.repeat(64)}`, size: 10, mediaType: 'application/vnd.oci.image.manifest.v1+json' },
    {
      request: { id: 'req', addr: '127.0.0.1', host: 'localhost', method: 'PUT', useragent: 'test' },
      actor: { name: 'tester' },
      source: { addr: 'localhost:5000', instanceID: 'test' },
    },
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('NatsBus', { skip: unavailable ?? false }, () => {
  const names = uniqueStreamNames();
  const errors: unknown[] = [];
  let bus: NatsBus;
  let bus2: NatsBus;

  before(async () => {
    bus = await NatsBus.connect({ servers: url, ...names, name: 'wharf-test-1', onError: (e) => errors.push(e) });
    bus2 = await NatsBus.connect({ servers: url, ...names, name: 'wharf-test-2', onError: (e) => errors.push(e) });
  });
  after(async () => {
    await bus?.close();
    await bus2?.close();
    await deleteStream(url, names.stream);
  });

  it('creates the stream with the prefix subjects, file storage and the duplicate window', async () => {
    const info = await bus.jsm.streams.info(names.stream);
    assert.deepEqual(info.config.subjects, [`${names.subjectPrefix}.>`]);
    assert.equal(info.config.storage, 'file');
    assert.equal(info.config.retention, 'limits');
    assert.equal(info.config.duplicate_window, 120_000 * 1e6);
    assert.equal(info.config.max_age, 7 * 24 * 3600_000 * 1e6);
    assert.deepEqual(bus.status().connected, true);
  });

  it('updates an existing stream only when its subjects differ', async () => {
    const other = uniqueStreamNames();
    const a = await NatsBus.connect({ servers: url, ...other, duplicateWindowMs: 60_000 });
    try {
      // Same subjects, another window: left alone.
      const b = await NatsBus.connect({ servers: url, ...other, duplicateWindowMs: 30_000 });
      await b.close();
      let info = await a.jsm.streams.info(other.stream);
      assert.equal(info.config.duplicate_window, 60_000 * 1e6);
      // Another prefix: the subjects are rewritten.
      const c = await NatsBus.connect({ servers: url, stream: other.stream, subjectPrefix: `${other.subjectPrefix}2` });
      await c.close();
      info = await a.jsm.streams.info(other.stream);
      assert.deepEqual(info.config.subjects, [`${other.subjectPrefix}2.>`]);
    } finally {
      await a.close();
      await deleteStream(url, other.stream);
    }
  });

  it('maps public subjects and patterns onto the configured prefix', () => {
    const p = names.subjectPrefix;
    assert.equal(bus.toNats(Subjects.manifestPush), `${p}.manifest.push`);
    assert.equal(bus.fromNats(`${p}.blob.delete`), Subjects.blobDelete);
    assert.equal(bus.patternToNats('wharf.events.>'), `${p}.>`);
    assert.equal(bus.patternToNats('wharf.>'), `${p}.>`);
    assert.equal(bus.patternToNats('>'), `${p}.>`);
    assert.equal(bus.patternToNats('wharf.events.*.push'), `${p}.*.push`);
    assert.throws(() => bus.patternToNats('other.events.>'));
    assert.throws(() => bus.toNats('other.subject'));
  });

  it('delivers 20 published events to a subscriber with their subjects and payloads', async () => {
    const got: Array<{ subject: string; event: RegistryEvent }> = [];
    const unsubscribe = bus2.subscribe('wharf.events.>', (subject, e) => {
      got.push({ subject, event: e });
    });
    await unsubscribe.ready;
    const sent: Array<{ subject: string; event: RegistryEvent }> = [];
    const subjects = [Subjects.manifestPush, Subjects.blobPush, Subjects.tagDelete, Subjects.repositoryDelete];
    for (let i = 0; i < 20; i++) {
      const s = { subject: subjects[i % subjects.length]!, event: event(`sub/repo${i}`, `t${i}`) };
      sent.push(s);
      await bus.publish(s.subject, s.event);
    }
    await eventually(() => assert.equal(got.length, 20));
    assert.deepEqual(got, sent); // same order: an ordered consumer
    unsubscribe();
  });

  it('only delivers subjects matching the pattern', async () => {
    const got: string[] = [];
    const unsubscribe = bus.subscribe('wharf.events.blob.*', (subject) => {
      got.push(subject);
    });
    await unsubscribe.ready;
    await bus.publish(Subjects.manifestPush, event('filter/a'));
    await bus.publish(Subjects.blobDelete, event('filter/b'));
    await eventually(() => assert.deepEqual(got, [Subjects.blobDelete]));
    unsubscribe();
  });

  it('delivers an event published twice with the same id once (Nats-Msg-Id)', async () => {
    const got: RegistryEvent[] = [];
    const unsubscribe = bus.subscribe('wharf.events.>', (_s, e) => {
      got.push(e);
    });
    await unsubscribe.ready;
    const before = (await bus.jsm.streams.info(names.stream)).state.messages;
    const dup = event('dedupe/app');
    await bus.publish(Subjects.manifestPush, dup);
    await bus.publish(Subjects.manifestPush, dup); // the relay re-sending after a crash
    await bus2.publish(Subjects.manifestPush, dup); // …or another node's relay
    const marker = event('dedupe/marker');
    await bus.publish(Subjects.manifestPush, marker);
    await eventually(() =>
      assert.ok(
        got.some((e) => e.id === marker.id),
        'the marker arrived',
      ),
    );
    assert.deepEqual(
      got.map((e) => e.id),
      [dup.id, marker.id],
    );
    assert.equal((await bus.jsm.streams.info(names.stream)).state.messages, before + 2);
    unsubscribe();
  });

  it('shares a durable consumer between two replicas: each event handled exactly once', async () => {
    const handled = new Map<string, number>();
    const byReplica = [0, 0];
    const replica = (i: number) => async (_subject: string, e: RegistryEvent) => {
      await sleep(5);
      handled.set(e.id, (handled.get(e.id) ?? 0) + 1);
      byReplica[i]!++;
    };
    const common = { durable: 'shared-worker', filterSubject: 'wharf.events.manifest.*', batch: 2 };
    const stopA = await bus.consumeDurable({ ...common, handler: replica(0) });
    const stopB = await bus2.consumeDurable({ ...common, handler: replica(1) });
    const sent: RegistryEvent[] = [];
    for (let i = 0; i < 40; i++) {
      const e = event(`durable/repo${i}`);
      sent.push(e);
      await bus.publish(i % 2 ? Subjects.manifestPush : Subjects.manifestDelete, e);
    }
    await bus.publish(Subjects.blobPush, event('durable/not-for-this-filter'));
    // Earlier tests published manifest events too: the new durable starts from the stream's start.
    await eventually(() => {
      for (const e of sent) assert.equal(handled.get(e.id), 1, e.id);
    });
    // Stopping one replica leaves the work to the other.
    await stopA();
    const later: RegistryEvent[] = [];
    for (let i = 0; i < 10; i++) {
      const e = event(`durable/later${i}`);
      later.push(e);
      await bus.publish(Subjects.manifestPush, e);
    }
    await eventually(() => {
      for (const e of later) assert.equal(handled.get(e.id), 1, e.id);
    });
    await sleep(300);
    assert.ok(
      [...handled.values()].every((n) => n === 1),
      'no event handled twice',
    );
    assert.ok(byReplica[0]! > 0 && byReplica[1]! > 0, `both replicas worked: ${byReplica}`);
    await stopB();
  });

  it('starts a durable taking over from an old one where its acks end, keeps that start on a restart, and deletes the old one', async () => {
    const own = uniqueStreamNames();
    const ownErrors: unknown[] = [];
    const b = await NatsBus.connect({ servers: url, ...own, onError: (e) => ownErrors.push(e) });
    try {
      const seen: string[] = [];
      const record = (_s: string, e: RegistryEvent) => void seen.push(e.target.repository);
      for (let i = 0; i < 3; i++) await b.publish(Subjects.manifestPush, event(`takeover/old${i}`));
      // The old durable (every subject) handles these three, then is stopped (a worker upgraded).
      const stopOld = await b.consumeDurable({ durable: 'indexer', filterSubject: 'wharf.events.>', handler: record });
      await eventually(async () => assert.deepEqual(await b.consumerLag(), [{ durable: 'indexer', pending: 0, ackPending: 0 }]));
      await stopOld();
      await b.publish(Subjects.manifestPull, { ...event('takeover/pull'), action: 'pull' });
      await b.publish(Subjects.manifestPush, event('takeover/new'));
      seen.length = 0;
      const replacement = { durable: 'indexer-push', filterSubject: 'wharf.events.*.push', takeOverFrom: 'indexer', handler: record };
      let stop = await b.consumeDurable(replacement);
      await eventually(async () => assert.deepEqual(await b.consumerLag(), [{ durable: 'indexer-push', pending: 0, ackPending: 0 }]));
      assert.deepEqual(seen, ['takeover/new'], 'only what the old durable had not acked, and of it only the pushes');
      assert.equal(await b.deleteDurable('indexer'), true);
      assert.equal(await b.deleteDurable('indexer'), false, 'already gone');
      await stop();
      // Restarted with the same options (the old one gone): the durable keeps its start, no config conflict, no redelivery.
      await b.publish(Subjects.blobPush, event('takeover/later'));
      stop = await b.consumeDurable(replacement);
      await eventually(async () => assert.deepEqual(await b.consumerLag(), [{ durable: 'indexer-push', pending: 0, ackPending: 0 }]));
      await stop();
      assert.deepEqual(seen, ['takeover/new', 'takeover/later']);
      assert.deepEqual(ownErrors, []);
      // Without an old durable to take over from, a new one starts at the stream's start.
      const fromStart: string[] = [];
      stop = await b.consumeDurable({
        durable: 'fresh-push',
        filterSubject: 'wharf.events.*.push',
        takeOverFrom: 'never-existed',
        handler: (_s, e) => void fromStart.push(e.target.repository),
      });
      await eventually(() => assert.equal(fromStart.length, 5));
      await stop();
    } finally {
      await b.close();
      await deleteStream(url, own.stream);
    }
  });

  it('hands what arrived together to handleBatch in one call, and each event to the handler when it throws', async () => {
    const own = uniqueStreamNames();
    const b = await NatsBus.connect({ servers: url, ...own });
    try {
      for (let i = 0; i < 30; i++) await b.publish(Subjects.manifestPush, event(`batch/repo${i}`));
      const batches: string[][] = [];
      const one: string[] = [];
      let stop = await b.consumeDurable({
        durable: 'batched',
        filterSubject: 'wharf.events.>',
        batch: 100,
        handler: (_s, e) => void one.push(e.target.repository),
        handleBatch: async (events) => void batches.push(events.map((e) => e.event.target.repository)),
      });
      await eventually(async () => assert.deepEqual(await b.consumerLag(), [{ durable: 'batched', pending: 0, ackPending: 0 }]));
      await stop();
      assert.equal(batches.flat().length + one.length, 30, 'each event handled once');
      assert.ok(
        batches.some((batch) => batch.length > 1),
        `events that were waiting came together: ${batches.map((x) => x.length)}`,
      );
      // A batch handler that throws: the same events go through the handler one by one.
      for (let i = 0; i < 30; i++) await b.publish(Subjects.manifestPush, event(`batch/again${i}`));
      one.length = 0;
      stop = await b.consumeDurable({
        durable: 'batched',
        filterSubject: 'wharf.events.>',
        batch: 100,
        handler: (_s, e) => void one.push(e.target.repository),
        handleBatch: async () => {
          throw new Error('batch refused');
        },
      });
      await eventually(async () => assert.deepEqual(await b.consumerLag(), [{ durable: 'batched', pending: 0, ackPending: 0 }]));
      await stop();
      assert.deepEqual(new Set(one), new Set(Array.from({ length: 30 }, (_, i) => `batch/again${i}`)));
      assert.equal(one.length, 30);
    } finally {
      await b.close();
      await deleteStream(url, own.stream);
    }
  });

  it('redelivers a message whose handler throws, with backoff, until it succeeds', async () => {
    const attempts: Array<{ count: number; at: number }> = [];
    const e = event('flaky/app');
    const stop = await bus.consumeDurable({
      durable: 'flaky-worker',
      filterSubject: Subjects.blobPush,
      deliverPolicy: 'new',
      maxDeliver: 5,
      backoffMs: [200, 400],
      handler: async (_s, got, delivery) => {
        if (got.id !== e.id) return;
        attempts.push({ count: delivery.deliveryCount, at: Date.now() });
        if (delivery.deliveryCount < 3) throw new Error('transient');
      },
    });
    await bus.publish(Subjects.blobPush, e);
    await eventually(() => assert.equal(attempts.length, 3));
    assert.deepEqual(
      attempts.map((a) => a.count),
      [1, 2, 3],
    );
    assert.ok(attempts[1]!.at - attempts[0]!.at >= 180, 'first nak delayed by backoffMs[0]');
    assert.ok(attempts[2]!.at - attempts[1]!.at >= 380, 'second nak delayed by backoffMs[1]');
    await sleep(500);
    assert.equal(attempts.length, 3, 'acked after success: not redelivered');
    await stop();
  });

  it('gives up after maxDeliver attempts and hands the event to onDeadLetter', async () => {
    const dead: Array<{ subject: string; id?: string; err: unknown }> = [];
    let attempts = 0;
    const e = event('dead/app');
    const stop = await bus.consumeDurable({
      durable: 'dead-worker',
      filterSubject: Subjects.blobDelete,
      deliverPolicy: 'new',
      maxDeliver: 2,
      backoffMs: [50],
      handler: async () => {
        attempts++;
        throw new Error('permanent');
      },
      onDeadLetter: (subject, got, err) => {
        dead.push({ subject, id: got?.id, err });
      },
    });
    await bus.publish(Subjects.blobDelete, e);
    await eventually(() => assert.equal(dead.length, 1));
    assert.equal(dead[0]!.subject, Subjects.blobDelete);
    assert.equal(dead[0]!.id, e.id);
    assert.equal((dead[0]!.err as Error).message, 'permanent');
    await sleep(300);
    assert.equal(attempts, 2);
    await stop();
  });
});

describe('NatsBus across a NATS restart', { skip: unavailable ? unavailable : canRunPrivateNatsServer() ? false : 'no nats-server binary to run a private server' }, () => {
  let server: PrivateNatsServer;
  let bus: NatsBus;

  before(async () => {
    server = await startPrivateNatsServer();
  });
  after(async () => {
    await bus?.close();
    await server?.dispose();
  });

  it('rejects publishes while NATS is down and publishes again after it is back, without a manual reconnect', async () => {
    const names = uniqueStreamNames();
    bus = await NatsBus.connect({ servers: server.url, ...names, publishTimeoutMs: 2_000 });
    const got: string[] = [];
    const unsubscribe = bus.subscribe('wharf.events.>', (_s, e) => {
      got.push(e.id);
    });
    await unsubscribe.ready;
    const first = event('restart/before');
    await bus.publish(Subjects.manifestPush, first);

    await server.stop();
    await eventually(() => assert.equal(bus.status().connected, false));
    await assert.rejects(bus.publish(Subjects.manifestPush, event('restart/down')));

    await server.start();
    await eventually(() => assert.equal(bus.status().connected, true), 15_000);
    const second = event('restart/after');
    // JetStream may need a moment after the listener is up to recover the stream.
    await eventually(() => bus.publish(Subjects.manifestPush, second), 15_000, 200);
    const info = await bus.jsm.streams.info(names.stream);
    assert.equal(info.state.messages, 2, 'the stream survived the restart (file storage)');
    // The ordered consumer recovered as well.
    await eventually(() => assert.ok(got.includes(second.id), 'the event after the restart arrived'), 15_000);
    assert.deepEqual(got, [first.id, second.id]);
    unsubscribe();
  });
});
