/** PullCoalescer: identical pulls within the window become one event with a count; nothing else is merged. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EventContext, type EventTarget, type RegistryEvent, Subjects } from '../../libs/events/index.js';
import { PullCoalescer } from '../../libs/events/pull-coalescer.js';
import { eventually } from '../helpers/wait.js';

let requests = 0;
const client = (addr: string, useragent = 'skopeo/1.9'): EventContext => ({
  request: { id: `req-${++requests}`, addr, host: 'registry:5000', method: 'GET', useragent },
  actor: {},
  source: { addr: '127.0.0.1:5000', instanceID: 'node-a' },
});
const A: EventTarget = { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, repository: 'team/app', digest: 'sha256:aa', tag: 'v1' };

function recordingSink() {
  const offered: Array<{ subject: string; event: RegistryEvent }> = [];
  return { offered, offer: (subject: string, event: RegistryEvent) => void offered.push({ subject, event }) };
}

describe('PullCoalescer', () => {
  it("holds identical pulls as the first one's event, counted, until the window ends", () => {
    const sink = recordingSink();
    const coalescer = new PullCoalescer(sink, { windowMs: 60_000 });
    const first = client('10.0.0.1:40000');
    coalescer.offer(Subjects.manifestPull, { ...A }, first);
    // Another connection of the same client (another port) is the same client.
    for (let i = 0; i < 4; i++) coalescer.offer(Subjects.manifestPull, { ...A }, client(`10.0.0.1:${40001 + i}`));
    assert.equal(sink.offered.length, 0, 'nothing leaves before the window ends');
    coalescer.flush();
    assert.equal(sink.offered.length, 1);
    const { subject, event } = sink.offered[0]!;
    assert.equal(subject, Subjects.manifestPull);
    assert.equal(event.action, 'pull');
    assert.equal(event.request.id, first.request.id, "the first pull's request");
    assert.equal(event.request.addr, '10.0.0.1:40000');
    assert.equal(event.target.digest, 'sha256:aa');
    assert.equal(event.count, 5);
    coalescer.flush();
    assert.equal(sink.offered.length, 1, 'a flush hands each event over once');
  });

  it('keeps pulls apart that differ in subject, object, tag, actor or client', () => {
    const sink = recordingSink();
    const coalescer = new PullCoalescer(sink, { windowMs: 60_000 });
    const distinct: Array<[string, EventTarget, EventContext]> = [
      [Subjects.manifestPull, A, client('10.0.0.1:1')],
      [Subjects.blobPull, A, client('10.0.0.1:1')],
      [Subjects.manifestPull, { ...A, repository: 'team/other' }, client('10.0.0.1:1')],
      [Subjects.manifestPull, { ...A, digest: 'sha256:bb' }, client('10.0.0.1:1')],
      [Subjects.manifestPull, { ...A, tag: undefined }, client('10.0.0.1:1')],
      [Subjects.manifestPull, A, client('10.0.0.2:1')],
      [Subjects.manifestPull, A, client('[::1]:1')],
      [Subjects.manifestPull, A, client('10.0.0.1:1', 'containerd/2.0')],
      [Subjects.manifestPull, A, { ...client('10.0.0.1:1'), actor: { name: 'alice' } }],
    ];
    for (const [subject, target, context] of distinct) coalescer.offer(subject, { ...target }, context);
    coalescer.offer(Subjects.manifestPull, { ...A }, client('10.0.0.1:2'));
    coalescer.flush();
    assert.deepEqual(
      sink.offered.map((o) => o.event.count),
      [2, 1, 1, 1, 1, 1, 1, 1, 1],
    );
    assert.deepEqual(
      sink.offered.map((o) => o.event.request.id),
      distinct.map(([, , c]) => c.request.id),
    );
  });

  it('with a window of 0 passes every pull straight through, count 1', () => {
    const sink = recordingSink();
    const coalescer = new PullCoalescer(sink, { windowMs: 0 });
    coalescer.offer(Subjects.manifestPull, { ...A }, client('10.0.0.1:1'));
    coalescer.offer(Subjects.manifestPull, { ...A }, client('10.0.0.1:1'));
    assert.deepEqual(
      sink.offered.map((o) => o.event.count),
      [1, 1],
    );
    assert.notEqual(sink.offered[0]!.event.id, sink.offered[1]!.event.id);
  });

  it('hands everything held over when it holds its most distinct pulls, so memory stays bounded', () => {
    const sink = recordingSink();
    const coalescer = new PullCoalescer(sink, { windowMs: 60_000, maxHeld: 3 });
    for (let i = 0; i < 3; i++) coalescer.offer(Subjects.manifestPull, { ...A, digest: `sha256:${i}` }, client('10.0.0.1:1'));
    assert.equal(sink.offered.length, 0);
    coalescer.offer(Subjects.manifestPull, { ...A, digest: 'sha256:3' }, client('10.0.0.1:1'));
    assert.deepEqual(
      sink.offered.map((o) => o.event.target.digest),
      ['sha256:0', 'sha256:1', 'sha256:2'],
    );
    coalescer.flush();
    assert.equal(sink.offered.length, 4);
  });

  it('publishes on its own once the window has passed', async () => {
    const sink = recordingSink();
    const coalescer = new PullCoalescer(sink, { windowMs: 5 });
    coalescer.offer(Subjects.manifestPull, { ...A }, client('10.0.0.1:1'));
    coalescer.offer(Subjects.manifestPull, { ...A }, client('10.0.0.1:1'));
    await eventually(() => assert.equal(sink.offered.length, 1, 'published after the window'));
    assert.equal(sink.offered[0]!.event.count, 2);
  });
});
