import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildEvent, CHANGE_SUBJECT_FILTERS, MemoryBus, Subjects, subjectMatches, type RegistryEvent } from '../libs/events/index.js';

const context = { request: { id: 'r', addr: '', host: '', method: 'PUT', useragent: '' }, actor: {}, source: { addr: '', instanceID: 'test' } };
const event = (repository: string) => buildEvent('push', { repository }, context);

describe('in-process bus, durable consumers (embedded mode)', () => {
  it('hands each event to the consumer before publish resolves, in order, once per id', async () => {
    const bus = new MemoryBus();
    const seen: string[] = [];
    await bus.consumeDurable({ durable: 'd', filterSubject: 'wharf.events.manifest.*', handler: (_s, e) => void seen.push(e.target.repository) });
    const a = event('a');
    await bus.publish('wharf.events.manifest.push', a);
    assert.deepEqual(seen, ['a']);
    await bus.publish('wharf.events.manifest.push', a); // a re-relayed row: dropped like a duplicate Nats-Msg-Id
    await bus.publish('wharf.events.blob.push', event('not-matched'));
    await bus.publish('wharf.events.manifest.delete', event('b'));
    assert.deepEqual(seen, ['a', 'b']);
    await bus.close();
  });

  it('retries a failing handler with backoff, then hands the event to onDeadLetter', async () => {
    const bus = new MemoryBus();
    let calls = 0;
    const dead: Array<RegistryEvent | undefined> = [];
    await bus.consumeDurable({
      durable: 'd',
      filterSubject: 'wharf.events.>',
      maxDeliver: 3,
      backoffMs: [5],
      handler: () => {
        calls++;
        throw new Error('receiver down');
      },
      onDeadLetter: (_s, e) => void dead.push(e),
    });
    const e = event('x');
    await bus.publish('wharf.events.manifest.push', e);
    assert.equal(calls, 3);
    assert.equal(dead[0]?.id, e.id);
    await bus.close();
  });

  it('rejects publish when the dead letter cannot be recorded, so the outbox keeps the row', async () => {
    const bus = new MemoryBus();
    let databaseUp = false;
    const handled: string[] = [];
    await bus.consumeDurable({
      durable: 'd',
      filterSubject: 'wharf.events.>',
      maxDeliver: 1,
      handler: (_s, e) => {
        if (!databaseUp) throw new Error('failed');
        handled.push(e.id);
      },
      onDeadLetter: () => {
        throw new Error('database down');
      },
    });
    const e = event('y');
    await assert.rejects(bus.publish('wharf.events.manifest.push', e), /database down/);
    databaseUp = true;
    await bus.publish('wharf.events.manifest.push', e); // the relay's next pass
    assert.deepEqual(handled, [e.id]);
    await bus.close();
  });
});

describe('change subject filters (the read-model consumers)', () => {
  it('match every subject but the pulls, each exactly once', () => {
    for (const subject of Object.values(Subjects)) {
      const matching = CHANGE_SUBJECT_FILTERS.filter((f) => subjectMatches(f, subject));
      assert.equal(matching.length, subject.endsWith('.pull') ? 0 : 1, `${subject}: ${matching}`);
    }
  });

  it('keep pull events from a consumer per filter on the in-process bus, each change reaching one of them', async () => {
    const bus = new MemoryBus();
    const seen: string[] = [];
    for (const filterSubject of CHANGE_SUBJECT_FILTERS) {
      await bus.consumeDurable({ durable: filterSubject, filterSubject, handler: (s) => void seen.push(s) });
    }
    for (const subject of Object.values(Subjects)) await bus.publish(subject, event(subject));
    assert.deepEqual(
      seen.sort(),
      Object.values(Subjects)
        .filter((s) => !s.endsWith('.pull'))
        .sort(),
    );
    await bus.close();
  });
});
