/**
 * The outbox relay's batches, on the real outbox table: many rows per claim, publishes in
 * flight together, one UPDATE to mark them; what a failure in the middle of a batch, a row the
 * bus refuses for good, and two relays at once do; and the in-process bus's batch hand-over.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import {
  EventRejectedError,
  MAX_EVENT_BYTES,
  MemoryBus,
  OutboxRelay,
  PartialPublishError,
  BestEffortPublisher,
  buildEvent,
  type EventBus,
  type RegistryEvent,
  type RelayPace,
} from '../libs/events/index.js';
import { Activity } from '../libs/async/activity.js';
import { outbox } from '../libs/metadata/index.js';
import { NatsBus } from '../libs/events/nats-bus.js';
import { deleteStream, natsUnavailable, natsUrl, uniqueStreamNames } from './helpers/nats.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { readStream } from './helpers/stream.js';
import { eventually } from './helpers/wait.js';

const context = { request: { id: 'r', addr: '', host: '', method: 'PUT', useragent: '' }, actor: {}, source: { addr: '', instanceID: 'test' } };
const event = (repository: string) => buildEvent('push', { repository }, context);

/** A bus that records what it was handed, in call order, and fails as `fail` says. */
function recordingBus(fail: (event: RegistryEvent, attempt: number) => Error | undefined = () => undefined) {
  const calls: string[] = [];
  const attempts = new Map<string, number>();
  const bus: EventBus = {
    async publish(_subject, e) {
      const attempt = (attempts.get(e.id) ?? 0) + 1;
      attempts.set(e.id, attempt);
      calls.push(e.id);
      await new Promise((r) => setImmediate(r)); // an acknowledgement arrives later, as from NATS
      const err = fail(e, attempt);
      if (err) throw err;
    },
    subscribe: () => () => {},
    consumeDurable: async () => async () => {},
    close: async () => {},
  };
  return { bus, calls, attempts };
}

let wharf: TestWharf;

before(async () => {
  wharf = await startTestWharf();
  // This file drives its own relays over the table: the registry's must not take the rows.
  for (const relay of wharf.relays) await relay.stop();
});
after(() => wharf?.close());

async function writeEvents(n: number, prefix: string): Promise<RegistryEvent[]> {
  const events = Array.from({ length: n }, (_, i) => event(`${prefix}/r${i}`));
  await outbox.appendOutbox(
    wharf.database.db,
    events.map((e) => ({ eventId: e.id, subject: 'wharf.events.manifest.push', payload: e })),
  );
  return events;
}

async function unpublishedIds(): Promise<string[]> {
  const rows = await wharf.database.db.selectFrom('outbox').select('event_id').where('published_at', 'is', null).where('dead_lettered_at', 'is', null).orderBy('id').execute();
  return rows.map((r) => r.event_id);
}

describe('outbox relay batches', () => {
  it('hands rows to the bus in outbox order, across batches, and marks every one', async () => {
    const events = await writeEvents(40, 'order');
    const { bus, calls } = recordingBus();
    const n = await new OutboxRelay(outbox.outboxSource(wharf.database.db), bus, { batchSize: 7, maxInFlight: 3, passes: 1 }).drain();
    assert.equal(n, 40);
    assert.deepEqual(
      calls,
      events.map((e) => e.id),
    );
    assert.deepEqual(await unpublishedIds(), []);
  });

  it('a publish failing in the middle of a batch keeps only that row for the next pass', async () => {
    const events = await writeEvents(25, 'middle');
    const flaky = events[12]!.id;
    const { bus, attempts } = recordingBus((e, attempt) => (e.id === flaky && attempt === 1 ? new Error('no ack in time') : undefined));
    // One batch at a time: with two, the other loop may already retry the row within this drain.
    const relay = new OutboxRelay(outbox.outboxSource(wharf.database.db), bus, { batchSize: 100, passes: 1 });
    await assert.rejects(relay.drain(), (err) => err instanceof PartialPublishError && /^1 of \d+ outbox events not published/.test(err.message));
    assert.deepEqual(await unpublishedIds(), [flaky], 'the 24 others are marked published in the same pass');
    assert.equal(await relay.drain(), 1);
    assert.deepEqual(await unpublishedIds(), []);
    for (const e of events) assert.equal(attempts.get(e.id), e.id === flaky ? 2 : 1, 'no row published twice');
  });

  it('a row the bus refuses for good is dead-lettered, counted, and the rows after it flow', async () => {
    const events = await writeEvents(10, 'refused');
    const bad = events[3]!.id;
    const { bus, attempts } = recordingBus((e) => (e.id === bad ? new EventRejectedError('over max_payload') : undefined));
    const dead: string[] = [];
    const relay = new OutboxRelay(outbox.outboxSource(wharf.database.db), bus, { onDeadLetter: (m) => void dead.push(m.eventId) });
    assert.equal(await relay.drain(), 9);
    assert.deepEqual(dead, [bad]);
    assert.equal(await relay.drain(), 0, 'a dead-lettered row is not claimed again');
    assert.equal(attempts.get(bad), 1);
    const row = await wharf.database.db.selectFrom('outbox').selectAll().where('event_id', '=', bad).executeTakeFirstOrThrow();
    assert.equal(row.published_at, null);
    assert.ok(row.dead_lettered_at);
    assert.equal(row.dead_letter_error, 'over max_payload');
    assert.equal(await outbox.outboxDeadLetters(wharf.database.db), 1);
    assert.equal((await outbox.outboxStats(wharf.database.db)).backlog, 0, 'a dead letter is not backlog');
  });

  it('the whole batch failing (bus down) publishes nothing and loses nothing', async () => {
    const events = await writeEvents(5, 'down');
    const { bus } = recordingBus(() => new Error('NATS is not connected'));
    await assert.rejects(new OutboxRelay(outbox.outboxSource(wharf.database.db), bus).drain(), PartialPublishError);
    assert.deepEqual(
      await unpublishedIds(),
      events.map((e) => e.id),
    );
    assert.equal(await new OutboxRelay(outbox.outboxSource(wharf.database.db), recordingBus().bus).drain(), 5);
  });

  it('two relays at once hand each row to the bus once', async () => {
    const events = await writeEvents(300, 'two');
    const { bus, attempts } = recordingBus();
    const relays = [0, 1].map(() => new OutboxRelay(outbox.outboxSource(wharf.database.db), bus, { batchSize: 10, passes: 3 }));
    const counts = await Promise.all(relays.map((r) => r.drain()));
    assert.equal(counts[0]! + counts[1]!, 300);
    for (const e of events) assert.equal(attempts.get(e.id), 1);
    assert.deepEqual(await unpublishedIds(), []);
  });

  it('while requests are in progress, one short batch at a time, and the whole backlog still drains', async () => {
    const events = await writeEvents(60, 'busy');
    const { bus, attempts } = recordingBus();
    const source = outbox.outboxSource(wharf.database.db);
    let claiming = 0;
    let most = 0;
    let largest = 0;
    const counting: typeof source = {
      async withClaimed(limit, fn) {
        largest = Math.max(largest, limit);
        most = Math.max(most, ++claiming);
        try {
          return await source.withClaimed(limit, fn);
        } finally {
          claiming--;
        }
      },
    };
    const activity = new Activity();
    activity.enter();
    assert.equal(await new OutboxRelay(counting, bus, { batchSize: 10, busyBatchSize: 4, passes: 3, activity }).drain(), 60);
    assert.equal(most, 1, 'one batch in flight while busy');
    assert.equal(largest, 4, 'batches of busyBatchSize while busy');
    for (const e of events) assert.equal(attempts.get(e.id), 1);
    assert.deepEqual(await unpublishedIds(), []);
    activity.leave();
    assert.equal(activity.busy, false);
  });

  it('on the in-process bus, a batch reaches each durable consumer in order, in one handleBatch call', async () => {
    const events = await writeEvents(30, 'memory');
    const bus = new MemoryBus();
    const batches: string[][] = [];
    const single: string[] = [];
    await bus.consumeDurable({
      durable: 'batched',
      filterSubject: 'wharf.events.>',
      handler: (_s, e) => void single.push(e.id),
      handleBatch: async (items) => void batches.push(items.map((i) => i.event.id)),
    });
    const plain: string[] = [];
    await bus.consumeDurable({ durable: 'plain', filterSubject: 'wharf.events.>', handler: (_s, e) => void plain.push(e.id) });
    assert.equal(await new OutboxRelay(outbox.outboxSource(wharf.database.db), bus, { batchSize: 100, passes: 1 }).drain(), 30);
    assert.deepEqual(
      batches.flat(),
      events.map((e) => e.id),
    );
    assert.ok(batches.length < 30, `handed over in batches, not one by one (${batches.length} calls)`);
    assert.deepEqual(single, []);
    assert.deepEqual(
      plain,
      events.map((e) => e.id),
      'a consumer without handleBatch gets them one by one, in order',
    );
    await bus.close();
  });

  it('when handleBatch throws, each event of the batch goes through the handler, failures retried', async () => {
    const events = await writeEvents(6, 'fallback');
    const bus = new MemoryBus();
    const handled = new Map<string, number>();
    await bus.consumeDurable({
      durable: 'fallback',
      filterSubject: 'wharf.events.>',
      backoffMs: [1],
      handler: (_s, e, d) => {
        handled.set(e.id, (handled.get(e.id) ?? 0) + 1);
        if (e.id === events[2]!.id && d.deliveryCount === 1) throw new Error('transient');
      },
      handleBatch: async () => {
        throw new Error('batch failed');
      },
    });
    assert.equal(await new OutboxRelay(outbox.outboxSource(wharf.database.db), bus).drain(), 6);
    for (const e of events) assert.equal(handled.get(e.id), e.id === events[2]!.id ? 2 : 1);
    await bus.close();
  });

  it('a duplicate of an event already handled is not handed to consumers again (same id)', async () => {
    const bus = new MemoryBus();
    const seen: string[] = [];
    await bus.consumeDurable({
      durable: 'd',
      filterSubject: 'wharf.events.>',
      handler: (_s, e) => void seen.push(e.id),
      handleBatch: async (items) => void seen.push(...items.map((i) => i.event.id)),
    });
    const e = event('dup');
    await Promise.all([bus.publish('wharf.events.manifest.push', e), bus.publish('wharf.events.manifest.push', e)]);
    await bus.publish('wharf.events.manifest.push', e);
    assert.deepEqual(seen, [e.id]);
    await bus.close();
  });
});

describe("the relays' pace while an API node serves requests (events.busyrate)", () => {
  const setPace = (busyUntil: string, nextAt: string) =>
    sql`update outbox_pace set busy_until = ${busyUntil}::timestamptz, next_at = ${nextAt}::timestamptz`.execute(wharf.database.db);
  const paceRow = async () =>
    (await sql<{ busy: boolean; booked: boolean }>`select busy_until > clock_timestamp() as busy, next_at > '-infinity' as booked from outbox_pace`.execute(wharf.database.db))
      .rows[0]!;

  it('no node busy: nothing is booked and nothing waits', async () => {
    await setPace('-infinity', '-infinity');
    assert.equal(await outbox.outboxPace(wharf.database.db, 1, 250).charge(100), undefined);
    assert.equal((await paceRow()).booked, false);
  });

  it('a node busy: a burst goes at once, then every booking adds events / rate to the wait', async () => {
    await setPace('-infinity', '-infinity');
    await outbox.markRelaysBusy(wharf.database.db, 600_000);
    try {
      assert.equal((await paceRow()).busy, true);
      // 1 event a second: each booking of 10 is 10 s of the pace; the first goes at once.
      const pace = outbox.outboxPace(wharf.database.db, 1, 250);
      assert.equal(await pace.charge(10), 0);
      const second = (await pace.charge(10))!;
      const third = (await pace.charge(10))!;
      assert.ok(second > 0 && second <= 9_750, `second booking waits for the first's 10 s less the burst: ${second} ms`);
      assert.ok(third > second + 5_000, `third waits for both: ${third} ms against ${second}`);
    } finally {
      await setPace('-infinity', '-infinity');
    }
  });

  /** A pace that answers `wait` (undefined: no node busy) and records the bookings. */
  const recordingPace = (wait: number | undefined) => {
    const charged: number[] = [];
    const pace: RelayPace = {
      async charge(events) {
        charged.push(events);
        return wait;
      },
    };
    return { pace, charged };
  };

  it('paced: one short batch at a time, every row published booked, and the backlog drains', async () => {
    const events = await writeEvents(30, 'paced');
    const { bus, attempts } = recordingBus();
    const source = outbox.outboxSource(wharf.database.db);
    const limits: number[] = [];
    let claiming = 0;
    let most = 0;
    const counting: typeof source = {
      async withClaimed(limit, fn) {
        limits.push(limit);
        most = Math.max(most, ++claiming);
        try {
          return await source.withClaimed(limit, fn);
        } finally {
          claiming--;
        }
      },
    };
    const { pace, charged } = recordingPace(0);
    assert.equal(await new OutboxRelay(counting, bus, { batchSize: 10, busyBatchSize: 4, passes: 3, pace }).drain(), 30);
    assert.equal(most, 1, 'one batch in flight while paced');
    assert.ok(
      limits.every((l) => l === 4),
      `batches of busyBatchSize: ${limits}`,
    );
    assert.equal(
      charged.reduce((a, b) => a + b, 0),
      30,
    );
    for (const e of events) assert.equal(attempts.get(e.id), 1);
  });

  it('no node busy: a backlog starts with one short batch, then full ones', async () => {
    await writeEvents(33, 'unpaced');
    const source = outbox.outboxSource(wharf.database.db);
    const limits: number[] = [];
    const counting: typeof source = {
      withClaimed(limit, fn) {
        limits.push(limit);
        return source.withClaimed(limit, fn);
      },
    };
    const { pace } = recordingPace(undefined);
    assert.equal(await new OutboxRelay(counting, recordingBus().bus, { batchSize: 10, busyBatchSize: 4, passes: 1, pace }).drain(), 33);
    assert.deepEqual(limits, [4, 10, 10, 10]);
  });

  it('stop() ends a wait for the pace, and the flush at shutdown is not paced', async () => {
    await writeEvents(40, 'stop');
    const { pace, charged } = recordingPace(3_600_000);
    const relay = new OutboxRelay(outbox.outboxSource(wharf.database.db), recordingBus().bus, { batchSize: 10, busyBatchSize: 4, pace });
    relay.start();
    await eventually(() => assert.ok(charged.length > 0));
    // The pace asked for an hour (10 s at most): stop() ends the wait, and the pass under way
    // publishes the rest unbooked, as the flush at shutdown does.
    await relay.stop();
    assert.deepEqual(charged, [4], 'one short pass booked, none while stopping');
    assert.deepEqual(await unpublishedIds(), []);
    assert.equal(await relay.drain(), 0);
  });

  it('Activity wakes its listeners on the first request after a look that found it idle, not on the ones after', () => {
    const activity = new Activity();
    let wakes = 0;
    activity.onWake(() => wakes++);
    activity.enter();
    assert.equal(wakes, 1, 'the first request ever wakes');
    activity.enter();
    activity.leave();
    activity.leave();
    activity.enter();
    activity.leave();
    assert.equal(wakes, 1, 'requests before the next look do not');
    assert.equal(activity.busySinceLastLook(), true);
    activity.enter();
    activity.leave();
    assert.equal(wakes, 1, 'nor after a look that found requests');
    assert.equal(activity.busySinceLastLook(), true);
    assert.equal(activity.busySinceLastLook(), false);
    activity.enter();
    assert.equal(wakes, 2, 'the first after an idle look does');
    assert.equal(activity.busySinceLastLook(), true, 'still in progress');
    activity.leave();
    assert.equal(activity.busySinceLastLook(), false);
    activity.enter();
    assert.equal(wakes, 3);
  });

  it('a request in progress marks the cluster busy; health probes and scrapes do not', { timeout: 60_000 }, async () => {
    await setPace('-infinity', '-infinity');
    // Probes for more than two marking periods (1 s each): none may mark.
    const until = Date.now() + 2_500;
    while (Date.now() < until) for (const path of ['/healthz', '/readyz', '/metrics']) await (await fetch(new URL(path, wharf.url))).arrayBuffer();
    assert.equal((await paceRow()).busy, false, 'probes marked the cluster busy');
    const post = await fetch(`${wharf.base}/v2/pace/busy/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 202);
    // An upload body that stays open: a request in progress until destroyed.
    const patch = request(new URL(post.headers.get('location')!, wharf.base), { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' } });
    patch.on('error', () => {});
    patch.write('x');
    try {
      await eventually(async () => assert.equal((await paceRow()).busy, true), 10_000);
    } finally {
      patch.destroy();
      await setPace('-infinity', '-infinity');
    }
  });
});

describe('bounded events', () => {
  const references = Array.from({ length: 8000 }, (_, i) => ({
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    digest: `sha256:${i.toString(16).padStart(64, '0')}`,
    size: i,
  }));

  it('a manifest push listing thousands of references is cut to MAX_EVENT_BYTES, saying how many there are', () => {
    const e = buildEvent(
      'push',
      { repository: 'big/app', digest: `sha256:${'a'.repeat(64)}`, url: 'http://x/v2/big/app/manifests/sha256:aa', references: [...references] },
      context,
    );
    const bytes = Buffer.byteLength(JSON.stringify(e));
    assert.ok(bytes <= MAX_EVENT_BYTES, `${bytes} bytes`);
    assert.ok(bytes > MAX_EVENT_BYTES - 200, 'as many references kept as fit');
    assert.equal(e.target.referencesTotal, 8000);
    assert.deepEqual(e.target.references, references.slice(0, e.target.references!.length), 'the first ones, in manifest order');
  });

  it('a small event is left as it is', () => {
    const e = buildEvent('push', { repository: 'small/app', references: references.slice(0, 3) }, context);
    assert.equal(e.target.references!.length, 3);
    assert.equal(e.target.referencesTotal, undefined);
  });

  it('request fields taken from headers are cut to 1,024 characters', () => {
    const e = buildEvent('push', { repository: 'ua/app' }, { ...context, request: { ...context.request, useragent: 'u'.repeat(20_000) } });
    assert.equal(e.request.useragent.length, 1024);
    assert.ok(Buffer.byteLength(JSON.stringify(e)) <= MAX_EVENT_BYTES);
  });
});

describe('pull events off the request path', () => {
  it('offer never waits; past the bound, events are dropped and counted', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    const published: string[] = [];
    const bus: EventBus = {
      publish: async (_s, e) => {
        await held;
        published.push(e.id);
      },
      subscribe: () => () => {},
      consumeDurable: async () => async () => {},
      close: async () => {},
    };
    const dropped: string[] = [];
    const publisher = new BestEffortPublisher(bus, { maxQueued: 5, maxInFlight: 2, onDropped: (reason) => void dropped.push(reason) });
    const events = Array.from({ length: 8 }, (_, i) => event(`pull/r${i}`));
    for (const e of events) publisher.offer('wharf.events.manifest.pull', e);
    assert.deepEqual(dropped, ['full', 'full', 'full'], 'the queue holds 5 until the pump runs');
    release();
    await publisher.close();
    assert.deepEqual(
      published,
      events.slice(0, 5).map((e) => e.id),
    );
  });

  it('drops (and counts) what a disconnected bus or a failed publish cannot take', async () => {
    let connected = false;
    const bus: EventBus = {
      publish: async () => {
        throw new Error('no');
      },
      isConnected: () => connected,
      subscribe: () => () => {},
      consumeDurable: async () => async () => {},
      close: async () => {},
    };
    const dropped: string[] = [];
    const publisher = new BestEffortPublisher(bus, { onDropped: (reason) => void dropped.push(reason) });
    publisher.offer('wharf.events.manifest.pull', event('a'));
    await new Promise((r) => setImmediate(r));
    connected = true;
    publisher.offer('wharf.events.manifest.pull', event('b'));
    await publisher.close();
    assert.deepEqual(dropped, ['disconnected', 'failed']);
  });

  it('on NATS, pull events go onto the stream without waiting for acknowledgements', async (t) => {
    const unavailable = await natsUnavailable();
    if (unavailable) return t.skip(unavailable);
    const names = uniqueStreamNames();
    const bus = await NatsBus.connect({ servers: natsUrl(), ...names });
    try {
      const dropped: string[] = [];
      const publisher = new BestEffortPublisher(bus, { onDropped: (reason) => void dropped.push(reason) });
      const events = Array.from({ length: 50 }, (_, i) => event(`pullnats/r${i}`));
      for (const e of events) publisher.offer('wharf.events.manifest.pull', e);
      await publisher.close();
      const inStream = await eventually(async () => {
        const messages = await readStream(natsUrl(), names.stream);
        assert.equal(messages.length, 50);
        return messages;
      });
      assert.deepEqual(
        inStream.map((m) => m.id),
        events.map((e) => e.id),
        'in the order offered',
      );
      assert.deepEqual(dropped, []);
    } finally {
      await bus.close();
      await deleteStream(natsUrl(), names.stream);
    }
  });
});
